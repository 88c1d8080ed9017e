#!/usr/bin/env bash
# Installs (if needed) and starts the local AWS on loopback:
#   DynamoDB Local on 127.0.0.1:$DYNAMODB_PORT (default 8000)
#   moto server with our extensions on 127.0.0.1:$MOTO_PORT (default 4566)
# Waits until both answer, then prints ONLY export lines on stdout:
#   eval "$(localstack/start.sh)"            # in-memory DynamoDB
#   eval "$(localstack/start.sh --db-path DIR)"  # DynamoDB kept on disk
# Already running and healthy: just prints the exports. Stop with stop.sh.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

db_path=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --db-path) db_path="${2:?--db-path needs a directory}"; shift 2 ;;
    --db-path=*) db_path="${1#--db-path=}"; shift ;;
    -h|--help) sed -n '2,9p' "$0" >&2; exit 0 ;;
    *) log "unknown argument: $1"; exit 2 ;;
  esac
done

timeout_s="${LOCALSTACK_START_TIMEOUT:-90}"
# Certificates turn ISSUED after this many seconds (moto's default is 60).
export MOTO_ACM_VALIDATION_WAIT="${MOTO_ACM_VALIDATION_WAIT:-2}"
# No telemetry from DynamoDB Local (the flag alone still writes it as enabled),
# no bytecode files next to the sources.
export DDB_LOCAL_TELEMETRY=0 PYTHONDONTWRITEBYTECODE=1

"$LOCALSTACK_DIR/install.sh"
mkdir -p "$RUN_DIR"

probe() { "$VENV/bin/python" "$LOCALSTACK_DIR/probe.py" "$@" >/dev/null 2>&1; }

fail_with_log() {
  local name="$1" reason="$2"
  log "$name $reason; last lines of $RUN_DIR/$name.log:"
  tail -n 30 "$RUN_DIR/$name.log" >&2 || true
  exit 1
}

# Starts a service unless ours already runs with the same settings, then
# waits (bounded) until its probe passes.
ensure_service() {
  local name="$1" marker="$2" conf="$3" probe_kind="$4" url="$5"
  shift 5
  local pid
  if pid="$(service_pid "$name" "$marker")"; then
    if [[ "$(cat "$RUN_DIR/$name.conf" 2>/dev/null)" != "$conf" ]]; then
      log "$name already runs (pid $pid) with other settings: $(cat "$RUN_DIR/$name.conf" 2>/dev/null); run localstack/stop.sh first"
      exit 1
    fi
    if probe "$probe_kind" "$url"; then
      log "$name already running (pid $pid) on $url"
      return 0
    fi
  else
    : >"$RUN_DIR/$name.log"
    # New session and no shared stdout: the caller's $(...) must not wait on
    # it, and a Ctrl-C in the caller's terminal must not reach it. Runs in the
    # run dir, where DynamoDB Local drops its metadata file.
    local detach="nohup"
    command -v setsid >/dev/null 2>&1 && detach=setsid
    (cd "$RUN_DIR" && exec "$detach" "$@") </dev/null >>"$RUN_DIR/$name.log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$RUN_DIR/$name.pid"
    printf '%s\n' "$conf" >"$RUN_DIR/$name.conf"
    log "started $name (pid $pid), log $RUN_DIR/$name.log"
  fi
  local deadline=$((SECONDS + timeout_s))
  until probe "$probe_kind" "$url"; do
    kill -0 "$pid" 2>/dev/null || { rm -f "$RUN_DIR/$name.pid"; fail_with_log "$name" "exited during start-up"; }
    ((SECONDS < deadline)) || fail_with_log "$name" "not healthy after ${timeout_s}s (pid $pid still running)"
    sleep 0.3
  done
  log "$name healthy on $url"
}

ddb_args=(-inMemory)
if [[ -n "$db_path" ]]; then
  mkdir -p "$db_path"
  db_path="$(cd "$db_path" && pwd)"
  ddb_args=(-dbPath "$db_path")
fi

# Both start in parallel (JVM and moto each take a few seconds), then we wait.
start_both() {
  ensure_service dynamodb DynamoDBLocal.jar "port=$DYNAMODB_PORT ${ddb_args[*]}" \
    dynamodb "http://127.0.0.1:$DYNAMODB_PORT" \
    java "-Djava.library.path=$DYNAMODB_HOME/DynamoDBLocal_lib" \
    -cp "$DYNAMODB_HOME/DynamoDBLocal.jar:$DYNAMODB_HOME/DynamoDBLocal_lib/*:$DYNAMODB_HOME/loopback" \
    DynamoDBLocalLoopback -host 127.0.0.1 -port "$DYNAMODB_PORT" "${ddb_args[@]}" -disableTelemetry &
  local ddb_waiter=$!
  ensure_service moto moto_server.py "port=$MOTO_PORT acm_wait=$MOTO_ACM_VALIDATION_WAIT" \
    moto "http://127.0.0.1:$MOTO_PORT" \
    "$VENV/bin/python" "$LOCALSTACK_DIR/moto_server.py" --host 127.0.0.1 --port "$MOTO_PORT"
  wait "$ddb_waiter"
}

start_both
print_env
