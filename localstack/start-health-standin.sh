#!/usr/bin/env bash
# Starts the tenant health test double (fleet_health_standin.py) in the
# background on 127.0.0.1:PORT, reading the Helm stand-in's STATE_DIR; waits
# until it answers and prints its pid on stdout (nothing else).
#   pid="$(localstack/start-health-standin.sh 8089 "$HELM_STANDIN_STATE")"
# Stop it with `kill "$pid"` (localstack/stop.sh stops it too).
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
name="fleet-health-$port"
log_file="$RUN_DIR/$name.log"

if pid="$(service_pid "$name" fleet_health_standin.py)"; then
  if [[ "$(cat "$RUN_DIR/$name.conf" 2>/dev/null)" != "$state" ]]; then
    log "$name already runs (pid $pid) on another state dir: $(cat "$RUN_DIR/$name.conf" 2>/dev/null)"
    exit 1
  fi
  log "$name already running (pid $pid)"
  printf '%s\n' "$pid"
  exit 0
fi

: >"$log_file"
detach="nohup"
command -v setsid >/dev/null 2>&1 && detach=setsid
# Detached, with no shared stdout, so `$(...)` returns at once.
"$detach" python3 "$LOCALSTACK_DIR/fleet_health_standin.py" --port "$port" --state "$state" \
  </dev/null >>"$log_file" 2>&1 &
pid=$!
printf '%s\n' "$pid" >"$RUN_DIR/$name.pid"
printf '%s\n' "$state" >"$RUN_DIR/$name.conf"

deadline=$((SECONDS + ${LOCALSTACK_START_TIMEOUT:-30}))
until python3 "$LOCALSTACK_DIR/probe.py" http "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
  if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
    log "$name did not come up; last lines of $log_file:"
    tail -n 20 "$log_file" >&2 || true
    kill "$pid" 2>/dev/null || true
    rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.conf"
    exit 1
  fi
  sleep 0.2
done
log "$name answering on http://127.0.0.1:$port/healthz (pid $pid)"
printf '%s\n' "$pid"
