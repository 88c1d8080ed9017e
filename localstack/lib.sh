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

# Starts a helper server detached, once: NAME (its pid, conf and log files in
# RUN_DIR), CONF (what it was started for; a running one started for anything else
# is refused), READY_URL (answers once it is up), then the command. Prints the pid
# on stdout (nothing else); a second start for the same CONF prints the running pid.
start_detached() {
  local name="$1" conf="$2" ready_url="$3" marker pid log_file deadline detach=nohup arg
  shift 3
  marker="$(basename "$1")" # the program, or the script python runs
  for arg in "$@"; do [[ "$arg" == *.py ]] && marker="$(basename "$arg")" && break; done
  log_file="$RUN_DIR/$name.log"
  mkdir -p "$RUN_DIR"
  if pid="$(service_pid "$name" "$marker")"; then
    if [[ "$(cat "$RUN_DIR/$name.conf" 2>/dev/null)" != "$conf" ]]; then
      log "$name already runs (pid $pid) for $(cat "$RUN_DIR/$name.conf" 2>/dev/null), not $conf; stop it first (localstack/stop.sh)"
      return 1
    fi
    log "$name already running (pid $pid)"
    printf '%s\n' "$pid"
    return 0
  fi
  : >"$log_file"
  command -v setsid >/dev/null 2>&1 && detach=setsid
  # Detached, with no shared stdout, so `$(...)` returns at once.
  "$detach" "$@" </dev/null >>"$log_file" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$RUN_DIR/$name.pid"
  printf '%s\n' "$conf" >"$RUN_DIR/$name.conf"
  deadline=$((SECONDS + ${LOCALSTACK_START_TIMEOUT:-30}))
  until python3 "$LOCALSTACK_DIR/probe.py" http "$ready_url" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
      log "$name did not come up; last lines of $log_file:"
      tail -n 20 "$log_file" >&2 || true
      kill "$pid" 2>/dev/null || true
      rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.conf"
      return 1
    fi
    sleep 0.1
  done
  log "$name answering on $ready_url (pid $pid)"
  printf '%s\n' "$pid"
}
