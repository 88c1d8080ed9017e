#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document: validates /openapi.json
# (openapi-spec-validator), then lets schemathesis send generated requests with an
# admin token, running every check (status codes, response schemas, rejection of
# invalid data, acceptance of valid data, auth, ...) in every phase, stateful too
# (the document's links lead from a created tenant or rollout to its operations).
# Any failed check or any warning fails the run (scripts/schemathesis.toml). Seeded
# and bounded to stay under five minutes. Extra arguments go to schemathesis (e.g.
# --include-operation-id tenant_create). Needs the local AWS running (DynamoDB) and the venv from
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

# The binary as the test suite builds it (features resolved with the dev-dependencies):
# after `cargo nextest run` this is a no-op, where a plain `--bin tenantctl` build would
# resolve the features anew and compile the AWS SDK a second time.
cargo build --locked --tests --bin tenantctl >&2
tenantctl="$CARGO_TARGET_DIR/debug/tenantctl"
export TENANTCTL_TABLE="fuzz-$(date +%s)-$$"
"$tenantctl" table create >&2

token="fuzz-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
printf -- '- {name: fuzz, scope: admin, sha256: %s}\n' "$(printf '%s' "$token" | "$tenantctl" token hash)" >"$work/tokens.yaml"

# The Stripe intake is configured, so its operation answers from the signature check
# (a generated request cannot sign) rather than 404 intake_not_configured.
export FUZZ_STRIPE_SECRET="whsec_fuzz_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
printf 'environment: prod\nsecret_env: FUZZ_STRIPE_SECRET\nprices: {price_fuzz: small}\ndefaults: {region: eu-west-1}\n' \
  >"$work/stripe-intake.yaml"

"$tenantctl" serve --no-worker --listen "127.0.0.1:$port" --tokens-file "$work/tokens.yaml" \
  --stripe-intake "$work/stripe-intake.yaml" \
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

# A tenant and a rollout with the ids (and the rollout with the spec) of the document's
# examples, so operations on an existing id answer from a real record, not only 404.
api() {
  curl -fsS -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "http://127.0.0.1:$port$1" -d "$2" >/dev/null
}
api /v1/tenants '{"id": "acme-corp", "region": "eu-west-1", "environment": "prod", "hostnames": ["acme.example.com"], "release": "1.4.2"}'
api /v1/rollouts '{"id": "r-2026-11-21-1-4-2", "spec": {"release": "1.4.2", "selector": {"regions": ["eu-west-1"]}, "strategy": {"waves": ["1", "50%", "100%"], "bake_time": "0s", "bake_checks": 0}}}'
# Event ids are made by the server, one per change: the tenant's creation wrote one,
# and redelivery is fuzzed on it (scripts/schemathesis.toml reads FUZZ_EVENT_ID).
FUZZ_EVENT_ID="$(curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/events?limit=1" |
  "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["events"][0]["id"])')"
export FUZZ_EVENT_ID
# A freeze to remove, of an environment no fixture is in and far enough ahead to hold
# nothing the fuzzing does (scripts/schemathesis.toml reads FUZZ_FREEZE_ID).
freeze_from="$(date -u -d '+300 days' +%Y-%m-%dT00:00:00Z)"
freeze_until="$(date -u -d '+301 days' +%Y-%m-%dT00:00:00Z)"
FUZZ_FREEZE_ID="$(curl -fsS -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  "http://127.0.0.1:$port/v1/freezes" \
  -d "{\"environment\": \"fuzz-frozen\", \"from\": \"$freeze_from\", \"until\": \"$freeze_until\", \"reason\": \"fuzz\"}" |
  "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
export FUZZ_FREEZE_ID
# A promotion rule with the document's example name, so the operations on one rule
# answer from a real item (the fuzz hooks send valid requests to it).
# Another one for the removals, so the first stays.
for rule in staging-to-prod fuzz-removable; do
  curl -fsS -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "http://127.0.0.1:$port/v1/promotions/$rule" \
    -d '{"from": "staging", "to": "prod", "soak": "2h", "template": {}}' >/dev/null
done

echo "fuzz-api: schemathesis, all checks, $examples examples per operation" >&2
status=0
# One worker: with two, Hypothesis' source cache is shared between threads and now and
# then crashes the fuzzer itself (a KeyError in lambda_sources), failing CI on a bug
# that is not the server's. One worker is as fast here.
SCHEMATHESIS_HOOKS=scripts/fuzz_hooks.py \
  timeout 300 "$venv/bin/schemathesis" --config-file scripts/schemathesis.toml run \
  "http://127.0.0.1:$port/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $token" \
  --max-examples "$examples" \
  --workers 1 \
  --no-color "$@" || status=$?
if [[ $status -ne 0 ]]; then
  echo "fuzz-api: failed (exit $status); server log:" >&2
  grep -E '"level":"(ERROR|WARN)"' "$work/serve.log" | tail -20 >&2 || true
fi
exit $status
