#!/usr/bin/env bash
# Starts the tenant health test double (fleet_health_standin.py) in the
# background on 127.0.0.1:PORT, reading the Helm stand-in's STATE_DIR; waits
# until it answers and prints its pid on stdout (nothing else).
#   pid="$(localstack/start-health-standin.sh 8089 "$HELM_STANDIN_STATE")"
# Stop it with `kill "$pid"` (localstack/stop.sh stops it too).
# With HEALTH_STANDIN_MOTO_ENDPOINT set it answers as the listener rules of that
# moto's load balancers say first (in HEALTH_STANDIN_REGIONS, space-separated;
# default $AWS_REGION): a maintenance page, say.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ $# -ne 2 ]]; then
  echo "usage: $0 PORT STATE_DIR" >&2
  exit 2
fi
port="$1"
state="$2"
[[ "$port" =~ ^[0-9]+$ ]] || { log "PORT must be a number: $port"; exit 2; }
mkdir -p "$state" "$RUN_DIR"
state="$(cd "$state" && pwd)"
rules=()
if [[ -n "${HEALTH_STANDIN_MOTO_ENDPOINT:-}" ]]; then
  rules=(--moto-endpoint "$HEALTH_STANDIN_MOTO_ENDPOINT")
  for region in ${HEALTH_STANDIN_REGIONS:-${AWS_REGION:-us-east-1}}; do
    rules+=(--region "$region")
  done
fi
start_detached "fleet-health-$port" "$state" "http://127.0.0.1:$port/healthz" \
  python3 "$LOCALSTACK_DIR/fleet_health_standin.py" --port "$port" --state "$state" "${rules[@]}"
