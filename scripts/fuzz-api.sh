#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document: validates /openapi.json
# (openapi-spec-validator), then lets schemathesis send generated requests with an
# admin token and fails on any 5xx (check not_a_server_error). Bounded to stay well
# under two minutes. Needs the local AWS running (DynamoDB) and the venv from
# localstack/install.sh; scripts/test.sh runs it after the Rust tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tenant-orchestrator/target}"
cache="${TENANT_ORCHESTRATOR_CACHE:-$HOME/.cache/tenant-orchestrator}"
venv="$cache/localstack/venv"
port="${FUZZ_API_PORT:-$(( ${DYNAMODB_PORT:-28000} + 80 ))}"
examples="${FUZZ_API_MAX_EXAMPLES:-25}"

: "${AWS_ENDPOINT_URL_DYNAMODB:?start the local AWS first: eval \"\$(localstack/start.sh)\"}"

work="$(mktemp -d)"
server=""
cleanup() {
  if [[ -n "$server" ]]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --locked --bin tenantctl >&2
tenantctl="$CARGO_TARGET_DIR/debug/tenantctl"
export TENANTCTL_TABLE="fuzz-$(date +%s)-$$"
"$tenantctl" table create >&2

token="fuzz-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
printf -- '- {name: fuzz, scope: admin, sha256: %s}\n' "$(printf '%s' "$token" | "$tenantctl" token hash)" >"$work/tokens.yaml"

"$tenantctl" serve --no-worker --listen "127.0.0.1:$port" --tokens-file "$work/tokens.yaml" \
  --log-format json >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; echo "fuzz-api: server exited" >&2; exit 1; }
  sleep 0.1
done

echo "fuzz-api: validating the OpenAPI document" >&2
curl -fsS "http://127.0.0.1:$port/openapi.json" -o "$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

echo "fuzz-api: schemathesis, $examples examples per operation, failing on any 5xx" >&2
status=0
# One worker: with two, Hypothesis' source cache is shared between threads and now and
# then crashes the fuzzer itself (a KeyError in lambda_sources), failing CI on a bug
# that is not the server's. One worker is as fast here.
timeout 150 "$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error \
  --header "Authorization: Bearer $token" \
  --max-examples "$examples" \
  --request-timeout 10 \
  --workers 1 \
  --no-color || status=$?
if [[ $status -ne 0 ]]; then
  echo "fuzz-api: failed (exit $status); server log:" >&2
  grep -E '"level":"(ERROR|WARN)"' "$work/serve.log" | tail -20 >&2 || true
fi
exit $status
