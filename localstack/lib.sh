# Shared settings for the localstack/ scripts (sourced, not executed).
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are for the scripts that source this

LOCALSTACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${TENANT_ORCHESTRATOR_CACHE:-$HOME/.cache/tenant-orchestrator}"
LOCALSTACK_CACHE="$CACHE_ROOT/localstack"
RUN_DIR="${TENANT_ORCHESTRATOR_RUN:-$CACHE_ROOT/run}"
VENV="$LOCALSTACK_CACHE/venv"
DYNAMODB_HOME="$LOCALSTACK_CACHE/dynamodb-local-2.9.30"
DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"
MOTO_PORT="${MOTO_PORT:-4566}"
LOCAL_AWS_REGION="${AWS_REGION:-us-east-1}"

log() { printf 'localstack: %s\n' "$*" >&2; }

# The export lines for clients of the local AWS (stdout, for `eval`).
# AWS_DEFAULT_REGION too: boto3 and the AWS CLI do not read AWS_REGION.
print_env() {
  cat <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DYNAMODB_PORT
export AWS_REGION=$LOCAL_AWS_REGION
export AWS_DEFAULT_REGION=$LOCAL_AWS_REGION
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_EC2_METADATA_DISABLED=true
ENV
}

# Is the pid in NAME.pid alive and still the process we started?
# (Guards against a recycled pid.) Prints the pid when it is.
service_pid() {
  local name="$1" marker="$2" pid
  [[ -f "$RUN_DIR/$name.pid" ]] || return 1
  pid="$(cat "$RUN_DIR/$name.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$marker" || return 1
  printf '%s\n' "$pid"
}
