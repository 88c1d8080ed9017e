#!/usr/bin/env bash
# The real flows on a local AWS (DynamoDB Local + extended moto, Helm and tenant health
# stand-ins): provision four tenants in two regions, upgrade them, watch one upgrade
# fail verification and roll back, deprovision one, publish a platform version and
# reconcile a tenant on its own release, then roll a release across the
# fleet in staggered waves over both regions: one tenant's verify fails, the failure
# budget halts the rollout and rolls the wave back, and after the fix a retry
# completes it. Then a platform fix: published, previewed (change set per group),
# rolled out like a release; and a tenant changed out of band found by a drift check
# and put back by a reconcile rollout of the drifted tenants; a Stripe-signed
# subscription event creates a tenant. Ends with every tenant's state and the
# rollouts' per-tenant summaries. Along the way the halt arrives as a signed event
# at a local webhook receiver.
# Everything it starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tenant-orchestrator/target}"
cache="${TENANT_ORCHESTRATOR_CACHE:-$HOME/.cache/tenant-orchestrator}"
export DYNAMODB_PORT="${DEMO_DYNAMODB_PORT:-38000}"
export MOTO_PORT="${DEMO_MOTO_PORT:-38566}"
export TENANT_ORCHESTRATOR_RUN="$cache/run-demo"
health_port="${DEMO_HEALTH_PORT:-38089}"
api_port="${DEMO_API_PORT:-38080}"
webhook_port="${DEMO_WEBHOOK_PORT:-38090}"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "installing and starting the local AWS"
localstack/install.sh
work="$(mktemp -d)"
worker_pid=""
receiver_pid=""
cleanup() {
  if [[ -n "$worker_pid" ]]; then
    kill -TERM "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
  fi
  if [[ -n "$receiver_pid" ]]; then
    kill -TERM "$receiver_pid" 2>/dev/null || true
    wait "$receiver_pid" 2>/dev/null || true
  fi
  localstack/stop.sh >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM
eval "$(localstack/start.sh)"

say "building tenantctl"
cargo build --quiet --bin tenantctl
bin="$CARGO_TARGET_DIR/debug/tenantctl"
tenantctl() { "$bin" "$@"; }
python="$cache/localstack/venv/bin/python"

say "creating the shared platform: ECR images 1.0.0 1.1.0 1.2.0 1.3.0, VPC, ALB listeners, hosted zone"
export HELM_STANDIN_STATE="$work/helm"
mkdir -p "$HELM_STANDIN_STATE"
"$python" localstack/demo_platform.py --regions us-east-1,eu-west-1 --releases 1.0.0,1.1.0,1.2.0,1.3.0 \
  --zone example.com >"$work/platform.json"
# It answers behind the ALBs' listener rules, so a tenant in maintenance shows its page.
HEALTH_STANDIN_MOTO_ENDPOINT="$AWS_ENDPOINT_URL" HEALTH_STANDIN_REGIONS="us-east-1 eu-west-1" \
  localstack/start-health-standin.sh "$health_port" "$HELM_STANDIN_STATE" >/dev/null
"$python" - "$work/platform.json" "$health_port" >"$work/steps.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config.update({
    "artifact": {"repository": "tenant-app"},
    "helm": {"helm_bin": "localstack/helm-standin", "chart": "charts/tenant"},
    # The tenant health stand-in answers for every hostname on loopback.
    "verify": {"scheme": "http", "port": int(sys.argv[2]), "resolve_to": "127.0.0.1",
               "required_passes": 2, "interval_ms": 200, "deadline_seconds": 20},
    # moto does not implement UpdateTerminationProtection.
    "infra": {"poll_seconds": 1, "termination_protection": False},
    "backup": {"poll_seconds": 1},
    "certificates": {"poll_seconds": 1, "gather_seconds": 1},
    # Every upgrade puts the tenant behind a maintenance page until it is verified.
    "maintenance": {"quiesce": "always"},
})
json.dump(config, sys.stdout, indent=2)
PY

export TENANTCTL_TABLE=demo-tenants TENANTCTL_ACTOR=demo TENANTCTL_LOG=warn
say "tenantctl table create"
tenantctl table create
# Published platform versions (template + chart) live here; the server and its
# workers read them from the same bucket.
export TENANTCTL_PLATFORM_BUCKET=demo-platform
tenantctl platform create-bucket

# Events: the outbox delivers every rollout event, signed, to a receiver on loopback
# that verifies the signature and keeps what it got (scripts/webhook_receiver.py).
start_webhook_receiver() {
  say "starting a webhook receiver on 127.0.0.1:$webhook_port: it checks each event's Standard-Webhooks signature"
  DEMO_WEBHOOK_SECRET="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  export DEMO_WEBHOOK_SECRET
  : >"$work/webhook-events.jsonl"
  python3 scripts/webhook_receiver.py --port "$webhook_port" --secret-env DEMO_WEBHOOK_SECRET \
    --out "$work/webhook-events.jsonl" 2>"$work/webhook.log" &
  receiver_pid=$!
  for _ in $(seq 1 50); do
    grep -q listening "$work/webhook.log" 2>/dev/null && break
    sleep 0.1
  done
  grep -q listening "$work/webhook.log" || { cat "$work/webhook.log" >&2; exit 1; }
  # The secret is named, never written into the file.
  cat >"$work/events.json" <<EOT
{
  "sinks": [{
    "name": "demo-receiver",
    "webhook": {"url": "http://127.0.0.1:$webhook_port/events", "secret_env": "DEMO_WEBHOOK_SECRET", "timeout": "5s"},
    "types": ["io.tenant-orchestrator.rollout."]
  }],
  "backoff_base": "1s", "backoff_cap": "5s"
}
EOT
  cat "$work/events.json"
}

# Waits (bounded) for rollout $1's halted event at the receiver and prints it.
show_halted_event() {
  say "the halt as an event: io.tenant-orchestrator.rollout.halted, delivered signed to the webhook receiver"
  local event=""
  for _ in $(seq 1 60); do
    event="$(python3 - "$work/webhook-events.jsonl" "rollout/$1" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    event = json.loads(line)
    if event["type"] == "io.tenant-orchestrator.rollout.halted" and event["subject"] == sys.argv[2]:
        print(json.dumps(event, indent=2))
        break
PY
)"
    [[ -n "$event" ]] && break
    sleep 0.5
  done
  if [[ -z "$event" ]]; then
    echo "the webhook receiver got no halted event for rollout $1 within 30 s; it logged:" >&2
    cat "$work/webhook.log" >&2
    exit 1
  fi
  echo "$event"
}

start_webhook_receiver

say "starting tenantctl serve: the API on 127.0.0.1:$api_port, with the workers and the rollout controller"
# API tokens: only their SHA-256 is configured; the demo keeps the tokens in files.
for scope in read deploy admin; do
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/$scope.token"
done
cat >"$work/tokens.yaml" <<EOT
- {name: demo-viewer, scope: read, sha256: $(tenantctl token hash <"$work/read.token")}
- {name: demo-pipeline, scope: deploy, sha256: $(tenantctl token hash <"$work/deploy.token")}
- {name: demo-operator, scope: admin, sha256: $(tenantctl token hash <"$work/admin.token")}
EOT
# Stripe's subscription webhooks: prices map to tiers, the subscription's metadata
# names the tenant; the endpoint secret is read from the environment, never the file.
export DEMO_STRIPE_SECRET="whsec_demo_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat >"$work/stripe-intake.yaml" <<'EOT'
environment: demo
secret_env: DEMO_STRIPE_SECRET
release: 1.0.0
grace_period: 7d
prices: {price_demo_basic: small, price_demo_pro: large}
defaults: {region: us-east-1, group: default}
EOT
# The binary itself in the background (not the shell function), so $! is its pid and
# SIGTERM at the end reaches it.
"$bin" serve --listen "127.0.0.1:$api_port" --tokens-file "$work/tokens.yaml" \
  --stripe-intake "$work/stripe-intake.yaml" \
  --steps-config "$work/steps.json" --lease-ttl 9s --heartbeat 3s --poll-interval 200ms \
  --backoff-base 200ms --backoff-cap 2s --rollout-tick 500ms \
  --events-config "$work/events.json" --outbox-poll-interval 200ms 2>"$work/worker.log" &
worker_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$api_port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$api_port/readyz"; echo

say "provisioning four tenants in two regions on 1.0.0"
for t in acme:us-east-1 globex:us-east-1 initech:eu-west-1 umbrella:eu-west-1; do
  id="${t%%:*}" region="${t##*:}"
  tenantctl tenant create --id "$id" --region "$region" --environment demo --tier small \
    --hostname "$id.example.com" --release 1.0.0 >/dev/null
  echo "created $id in $region"
done
tenantctl tenant wait acme globex initech umbrella --timeout 5m
tenantctl tenant list

# The outage each tenant's last completed upgrade or rollback recorded, as the product
# measured it (from its history), one line per tenant.
outages() {
  for id in "$@"; do
    tenantctl --output json tenant history "$id" | "$python" -c '
import json, sys
events = [e for e in json.load(sys.stdin) if e.get("outage_seconds") is not None]
e = events[-1]
cause = (e.get("outage_cause") or "no failed probe").replace("_", " ")
print("%-10s %-26s -> %-46s outage %3d s (%s)"
      % (sys.argv[1], e["from"], e["revision"], e["outage_seconds"], cause))
' "$id"
  done
}

say "upgrading every tenant to 1.1.0; globex starts slowly: 503 for its first 5 s of verify"
mkdir -p "$HELM_STANDIN_STATE/unhealthy"
touch "$HELM_STANDIN_STATE/unhealthy/globex.example.com"
for id in acme globex initech umbrella; do tenantctl tenant upgrade "$id" --release 1.1.0 >/dev/null; done
(
  until tenantctl --output json tenant get globex | "$python" -c \
    'import json,sys; t=json.load(sys.stdin); sys.exit(0 if (t["state"], t["step"]) == ("Upgrading", "Verify") else 1)'; do
    sleep 0.2
  done
  sleep 5
  rm -f "$HELM_STANDIN_STATE/unhealthy/globex.example.com"
) &
recover_pid=$!
tenantctl tenant wait acme globex initech umbrella --timeout 5m
wait "$recover_pid"
tenantctl tenant list
echo "outage per tenant, measured by tenantctl (maintenance page up to down, or first failed verify round to first healthy one):"
outages acme globex initech umbrella

say "upgrading initech to 1.2.0, a release whose health check fails: verify fails, the upgrade rolls back"
echo 1.2.0 >"$HELM_STANDIN_STATE/broken-releases"
tenantctl tenant upgrade initech --release 1.2.0 >/dev/null
tenantctl tenant wait initech --timeout 5m
tenantctl tenant get initech
tenantctl tenant history initech
echo "the rollback's outage, from the maintenance page going up for 1.2.0 until it came down over 1.1.0:"
outages initech

say "an unknown release is refused before anything is touched"
tenantctl tenant upgrade acme --release 9.9.9 >/dev/null
tenantctl tenant wait acme --timeout 2m
tenantctl tenant get acme | grep -E 'state|release|last error'

say "deprovisioning umbrella: final backup, uninstall, certificates, config, stack"
tenantctl tenant deprovision umbrella >/dev/null
tenantctl tenant wait umbrella --state Deleted --timeout 5m
tenantctl tenant history umbrella

say "a platform version: the template and chart published to S3 by version and digest"
tenantctl platform publish --version 2026.12.1
tenantctl platform publish --version 2026.12.1   # the same content again: nothing changes
tenantctl platform list

say "acme moves to platform 2026.12.1: a spec change, then a reconcile applies it on the release it runs"
tenantctl tenant update acme --platform 2026.12.1 >/dev/null
tenantctl --output json tenant get acme | "$python" -c 'import json,sys; r=json.load(sys.stdin)["revision"]; print("differs before the reconcile:", r["differs"])'
tenantctl tenant reconcile acme | grep -E '^(state|release|target):'
tenantctl tenant wait acme --timeout 5m
tenantctl --output json tenant get acme | "$python" -c 'import json,sys; r=json.load(sys.stdin)["revision"]; print("differs after:", r["differs"], "applied:", r["applied"])'
tenantctl tenant history acme | tail -n 9
echo "an unpublished platform version is refused at the door:"
set +e
tenantctl tenant update acme --platform 2026.12.9
echo "exit $?"
set -e
tenantctl policy set-default --environment demo --region eu-west-1 --platform 2026.12.1

say "provisioning four more tenants on 1.1.0 for the fleet rollout"
for t in hooli:us-east-1 stark:us-east-1 wayne:eu-west-1 wonka:eu-west-1; do
  id="${t%%:*}" region="${t##*:}"
  tenantctl tenant create --id "$id" --region "$region" --environment demo --tier small \
    --hostname "$id.example.com" --release 1.1.0 >/dev/null
  echo "created $id in $region"
done
tenantctl tenant wait hooli stark wayne wonka --timeout 5m
tenantctl tenant list

cat >"$work/rollout.json" <<'JSON'
{
  "release": "1.3.0",
  "strategy": {
    "region_order": ["eu-west-1", "us-east-1"],
    "waves": ["1", "100%"],
    "max_in_flight_per_region": 2,
    "bake_time": "4s", "bake_checks": 2, "bake_check_interval": "2s",
    "failure_budget": 0,
    "on_breach": {"action": "halt", "rollback": "wave"},
    "approvals": {"after_canary": false, "between_regions": false}
  }
}
JSON
say "from here on tenantctl is a client of the API (--server, a token per scope), as a pipeline uses it"
api() { TENANTCTL_TOKEN="$(cat "$work/$1.token")" "$bin" --server "http://127.0.0.1:$api_port" "${@:2}"; }
api read tenant list
echo "a read token cannot start anything:"
set +e
api read rollout start --spec "$work/rollout.json"
echo "exit $?"
set -e

say "rollout plan (dry run): 1.3.0, eu-west-1 first, a canary then the rest of each region"
cat "$work/rollout.json"
api read rollout plan --spec "$work/rollout.json"

say "a rollout of a release that was never published is refused before anything starts"
sed 's/"1.3.0"/"1.4.0"/' "$work/rollout.json" >"$work/unpublished.json"
set +e
api deploy rollout start --spec "$work/unpublished.json"
code=$?
set -e
echo "tenantctl rollout start exited $code (2: invalid input)"
[[ "$code" == 2 ]] || { echo "expected exit code 2" >&2; exit 1; }

say "rollout start --wait: stark's health check fails on 1.3.0, so its wave breaches the budget of 0"
mkdir -p "$HELM_STANDIN_STATE/broken-for"
echo 1.3.0 >"$HELM_STANDIN_STATE/broken-for/stark.example.com"
set +e
api deploy rollout start --spec "$work/rollout.json" --id r-demo-1-3-0 --wait --poll 1s
code=$?
set -e
echo "tenantctl rollout start --wait exited $code (5: halted by the failure budget, wave rolled back)"
[[ "$code" == 5 ]] || { echo "expected exit code 5" >&2; exit 1; }
show_halted_event r-demo-1-3-0

say "the cause is fixed; retrying the wave the breach rolled back"
rm "$HELM_STANDIN_STATE/broken-for/stark.example.com"
api deploy rollout retry r-demo-1-3-0
api read rollout status r-demo-1-3-0 --wait --poll 1s

say "the fleet"
tenantctl tenant list
for id in acme initech stark; do
  echo
  echo "-- $id"
  tenantctl tenant history "$id"
done

say "the rollout, tenant by tenant"
api read rollout status r-demo-1-3-0

say "the fleet through the API: summary by region, state and release; deployments today"
curl -fsS -H "Authorization: Bearer $(cat "$work/read.token")" "http://127.0.0.1:$api_port/v1/fleet/summary"; echo
today="$(date -u +%F)"
curl -fsS -H "Authorization: Bearer $(cat "$work/read.token")" \
  "http://127.0.0.1:$api_port/v1/reports/deployments?from=$today&to=$today"; echo

say "a platform fix: the template's database CPU alarm threshold lowered, published as 2026.12.2"
sed 's/      Threshold: 90$/      Threshold: 85/' templates/cloudformation/tenant.yaml >"$work/tenant-2026.12.2.yaml"
tenantctl platform publish --version 2026.12.2 --template "$work/tenant-2026.12.2.yaml"
cat >"$work/platform.rollout.json" <<'JSON'
{
  "platform": "2026.12.2",
  "strategy": {
    "region_order": ["eu-west-1", "us-east-1"],
    "waves": ["1", "100%"],
    "max_in_flight_per_region": 2,
    "bake_time": "2s", "bake_checks": 1, "bake_check_interval": "1s",
    "failure_budget": 0,
    "approvals": {"after_canary": false, "between_regions": false}
  }
}
JSON

say "preview before change: per (region, tier, platform) group, one tenant's stack change set"
api read rollout plan --spec "$work/platform.rollout.json" --diff

say "the platform fix rolled out like a release: waves, bake, budget; no new application release"
api deploy rollout start --spec "$work/platform.rollout.json" --id r-demo-platform --wait --poll 1s
api read rollout status r-demo-platform
tenantctl tenant list

say "drift: someone changes wonka's tier in SSM by hand; the drift check finds it"
"$python" - <<'PY'
import boto3
boto3.client("ssm", region_name="eu-west-1").put_parameter(
    Name="/demo/tenants/wonka/config/tier", Value="large", Type="String", Overwrite=True)
PY
set +e
api read tenant drift wonka
code=$?
set -e
echo "tenantctl tenant drift exited $code (8: drifted)"
[[ "$code" == 8 ]] || { echo "expected exit code 8" >&2; exit 1; }
tenantctl fleet drift

say "a reconcile rollout of the drifted tenants puts wonka back"
cat >"$work/reconcile.rollout.json" <<'JSON'
{
  "reconcile": true,
  "selector": {"drifted": true},
  "strategy": {"waves": ["100%"], "bake_time": "1s", "bake_checks": 1, "bake_check_interval": "1s",
               "approvals": {"after_canary": false, "between_regions": false}}
}
JSON
api deploy rollout start --spec "$work/reconcile.rollout.json" --id r-demo-reconcile --wait --poll 1s
api read tenant drift wonka
tenantctl tenant history wonka | tail -n 12

# Stripe posts a signed customer.subscription.created; the intake verifies the
# signature and creates the tenant the mapping file describes.
stripe_intake_section() {
  say "subscription intake: a Stripe-signed customer.subscription.created creates tenant vandelay"
  local event ts signature
  event='{"id":"evt_demo_vandelay_1","object":"event","type":"customer.subscription.created","data":{"object":{"id":"sub_demo_vandelay","object":"subscription","status":"active","metadata":{"tenant_id":"vandelay","hostnames":"vandelay.example.com"},"items":{"object":"list","data":[{"price":{"id":"price_demo_pro"}}]}}}}'
  ts="$(date +%s)"
  signature="$(printf '%s.%s' "$ts" "$event" | openssl dgst -sha256 -hmac "$DEMO_STRIPE_SECRET" | sed 's/^.*= //')"
  local reply
  reply="$(curl -sS -X POST "http://127.0.0.1:$api_port/v1/intake/stripe" -H 'Content-Type: application/json' \
    -H "Stripe-Signature: t=$ts,v1=$signature" -d "$event")"
  echo "$reply"
  grep -q '"status":"created"' <<<"$reply" || { echo "demo: the subscription created no tenant" >&2; exit 1; }
  echo "the same delivery again (Stripe retries) changes nothing:"
  curl -sS -X POST "http://127.0.0.1:$api_port/v1/intake/stripe" -H 'Content-Type: application/json' \
    -H "Stripe-Signature: t=$ts,v1=$signature" -d "$event"; echo
  echo "a forged signature is refused:"
  curl -sS -X POST "http://127.0.0.1:$api_port/v1/intake/stripe" -H 'Content-Type: application/json' \
    -H "Stripe-Signature: t=$ts,v1=$(printf '0%.0s' $(seq 64))" -d "$event"; echo
  tenantctl tenant wait vandelay --state Active --timeout 5m
  tenantctl tenant history vandelay | sed -n '1,4p'
}
stripe_intake_section

say "tenantctl fleet check: no tenant stranded, no stale lease, no history gap, rollout holds consistent"
tenantctl fleet check
