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
start_detached "fault-proxy-$port" "$upstream" "http://127.0.0.1:$port/__faults" \
  "${PYTHON:-python3}" "$LOCALSTACK_DIR/fault_proxy.py" --port "$port" --upstream "$upstream" --seed "$seed"
