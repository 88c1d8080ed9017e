#!/usr/bin/env bash
# Stops DynamoDB Local and moto started by start.sh (and health stand-ins and
# fault proxies started by start-health-standin.sh and start-fault-proxy.sh), by
# their pid files.
# Does nothing (successfully) when they are not running.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_service() {
  local name="$1" marker="$2" pid
  if ! pid="$(service_pid "$name" "$marker")"; then
    rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.conf"
    return 0
  fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  # Give it 10 s to exit cleanly (DynamoDB Local flushes -dbPath), then insist.
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not exit, killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.conf"
}

stop_service moto moto_server.py
stop_service dynamodb DynamoDBLocal.jar
# Health stand-ins started by start-health-standin.sh, if any are left.
for pid_file in "$RUN_DIR"/fleet-health-*.pid; do
  [[ -e "$pid_file" ]] || continue
  stop_service "$(basename "$pid_file" .pid)" fleet_health_standin.py
done
# Fault proxies started by start-fault-proxy.sh, if any are left.
for pid_file in "$RUN_DIR"/fault-proxy-*.pid; do
  [[ -e "$pid_file" ]] || continue
  stop_service "$(basename "$pid_file" .pid)" fault_proxy.py
done
