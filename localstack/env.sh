#!/usr/bin/env bash
# Prints the export lines that point AWS clients at the local AWS, without
# starting anything:  eval "$(localstack/env.sh)"
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
print_env
