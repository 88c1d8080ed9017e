#!/usr/bin/env bash
# Starts the fault-injecting proxy (fault_proxy.py) in the background on
# 127.0.0.1:PORT in front of UPSTREAM_URL (moto or DynamoDB Local); waits until
# its control endpoint answers and prints its pid on stdout (nothing else).
#   pid="$(localstack/start-fault-proxy.sh http://127.0.0.1:4566 14567)"
#   curl -X POST -d '{"rules":[{"fault":"throttle","service":"ssm","probability":0.3}]}' \
#     http://127.0.0.1:14567/__faults
# Stop it with `kill "$pid"` (localstack/stop.sh stops it too).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 UPSTREAM_URL PORT [SEED]" >&2
  exit 2
fi
upstream="$1"
port="$2"
seed="${3:-0}"
[[ "$upstream" =~ ^http://[^/]+:[0-9]+/?$ ]] || { log "UPSTREAM_URL must be http://HOST:PORT: $upstream"; exit 2; }
[[ "$port" =~ ^[0-9]+$ ]] || { log "PORT must be a number: $port"; exit 2; }
[[ "$seed" =~ ^[0-9]+$ ]] || { log "SEED must be a whole number: $seed"; exit 2; }
mkdir -p "$RUN_DIR"
name="fault-proxy-$port"
log_file="$RUN_DIR/$name.log"

if pid="$(service_pid "$name" fault_proxy.py)"; then
  if [[ "$(cat "$RUN_DIR/$name.conf" 2>/dev/null)" != "$upstream" ]]; then
    log "$name already runs (pid $pid) in front of another upstream: $(cat "$RUN_DIR/$name.conf" 2>/dev/null)"
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
"$detach" "${PYTHON:-python3}" "$LOCALSTACK_DIR/fault_proxy.py" --port "$port" --upstream "$upstream" --seed "$seed" \
  </dev/null >>"$log_file" 2>&1 &
pid=$!
printf '%s\n' "$pid" >"$RUN_DIR/$name.pid"
printf '%s\n' "$upstream" >"$RUN_DIR/$name.conf"

deadline=$((SECONDS + ${LOCALSTACK_START_TIMEOUT:-30}))
until python3 "$LOCALSTACK_DIR/probe.py" http "http://127.0.0.1:$port/__faults" >/dev/null 2>&1; do
  if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
    log "$name did not come up; last lines of $log_file:"
    tail -n 20 "$log_file" >&2 || true
    kill "$pid" 2>/dev/null || true
    rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.conf"
    exit 1
  fi
  sleep 0.1
done
log "$name forwarding http://127.0.0.1:$port to $upstream (pid $pid)"
printf '%s\n' "$pid"
