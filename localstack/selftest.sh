#!/usr/bin/env bash
# Self-test of localstack/: installs (twice), starts the local AWS on its own
# ports and run dir, checks DynamoDB Local and moto (selftest_aws.py), the
# Helm stand-in, the health stand-in and the fault proxy
# (selftest_fault_proxy.py), then stops everything and checks
# nothing is left running. Exits non-zero on any failure. Used by CI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Own run dir and ports: a local AWS already running for a developer is left alone.
TENANT_ORCHESTRATOR_RUN="$(mktemp -d "${TMPDIR:-/tmp}/localstack-selftest-run.XXXXXX")"
export TENANT_ORCHESTRATOR_RUN
export DYNAMODB_PORT="${SELFTEST_DYNAMODB_PORT:-18000}"
export MOTO_PORT="${SELFTEST_MOTO_PORT:-14566}"
health_port="${SELFTEST_HEALTH_PORT:-18089}"
fault_port="${SELFTEST_FAULT_PROXY_PORT:-14567}" # and the next port, in front of DynamoDB Local
work="$(mktemp -d "${TMPDIR:-/tmp}/localstack-selftest.XXXXXX")"
export PYTHONDONTWRITEBYTECODE=1

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok - %s\n' "$1"; }
not_ok() { failed=$((failed + 1)); printf 'not ok - %s\n' "$1"; [[ -z "${2:-}" ]] || printf '    %s\n' "$2"; }
expect() { # expect NAME COMMAND... : passes when the command succeeds
  local name="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then ok "$name"; else not_ok "$name" "$out"; fi
}

cleanup() {
  "$here/stop.sh" >/dev/null 2>&1 || true
  rm -rf "$work" "$TENANT_ORCHESTRATOR_RUN"
}
trap cleanup EXIT

# --- install ------------------------------------------------------------------------
"$here/install.sh" 2>"$work/install1.err" || { cat "$work/install1.err" >&2; not_ok "install.sh"; }
start_s=$SECONDS
"$here/install.sh" 2>"$work/install2.err"
if grep -qiE 'fetching|installing|compiling' "$work/install2.err" || ((SECONDS - start_s > 10)); then
  not_ok "install.sh second run is a no-op" "$(cat "$work/install2.err")"
else
  ok "install.sh second run is a no-op"
fi
venv_python="${TENANT_ORCHESTRATOR_CACHE:-$HOME/.cache/tenant-orchestrator}/localstack/venv/bin/python"
expect "venv has the pinned tools" "$venv_python" -c \
  'import moto, cfnlint, kubernetes_validate, schemathesis, helm_python; assert moto.__version__ == "5.2.5", moto.__version__'

# --- start ------------------------------------------------------------------------------
if ! "$here/start.sh" >"$work/env.out" 2>"$work/start.err"; then
  cat "$work/start.err" >&2
  not_ok "start.sh"
  echo "$passed passed, $failed failed"
  exit 1
fi
ok "start.sh"
if grep -qvE '^export [A-Z0-9_]+=[^ ]+$' "$work/env.out"; then
  not_ok "start.sh prints only export lines" "$(cat "$work/env.out")"
else
  ok "start.sh prints only export lines"
fi
eval "$(cat "$work/env.out")"
expect "exports point at the local ports" test "$AWS_ENDPOINT_URL" = "http://127.0.0.1:$MOTO_PORT" \
  -a "$AWS_ENDPOINT_URL_DYNAMODB" = "http://127.0.0.1:$DYNAMODB_PORT" -a "$AWS_ACCESS_KEY_ID" = test
pids_before="$(cat "$TENANT_ORCHESTRATOR_RUN"/*.pid)"
# shellcheck disable=SC2016  # expanded by the inner bash
expect "start.sh again is idempotent" bash -c '"$1/start.sh" >/dev/null 2>&1 && [[ "$(cat "$2"/*.pid)" == "$3" ]]' _ \
  "$here" "$TENANT_ORCHESTRATOR_RUN" "$pids_before"
# shellcheck disable=SC2016  # expanded by the inner bash
expect "env.sh prints the same exports" bash -c 'diff <("$1/env.sh") "$2"' _ "$here" "$work/env.out"

# --- AWS checks ---------------------------------------------------------------------------
"$venv_python" "$here/selftest_aws.py" >"$work/aws.out" 2>&1 || true
while IFS= read -r line; do
  case "$line" in
    "ok - "*) ok "${line#ok - }" ;;
    "not ok - "*) not_ok "${line#not ok - }" ;;
    *) printf '    %s\n' "$line" ;;
  esac
done <"$work/aws.out"
grep -q '^ok - ' "$work/aws.out" || not_ok "selftest_aws.py ran" "$(tail -n 20 "$work/aws.out")"

# --- Helm stand-in ---------------------------------------------------------------------
export HELM_STANDIN_STATE="$work/helm"
helm="$here/helm-standin"
mkdir -p "$work/chart"
printf 'apiVersion: v2\nname: tenant\nversion: 0.1.0\nappVersion: "1.0.0"\n' >"$work/chart/Chart.yaml"
printf '{"release":"1.0.0","hostnames":["acme.tenants.test"]}\n' >"$work/v1.json"
printf '{"release":"1.1.0","hostnames":["acme.tenants.test"]}\n' >"$work/v2.json"
common=(-n tenant-acme --kube-context local-eu --wait --timeout 5m0s)

json_get() { # json_get EXPR: evaluates EXPR on the JSON on stdin (as `d`)
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

out="$("$helm" upgrade --install acme "$work/chart" "${common[@]}" --create-namespace -f "$work/v1.json" --atomic -o json)"
expect "helm: install is revision 1, deployed" test "$(json_get '(d["version"], d["info"]["status"], d["config"]["release"])' <<<"$out")" = "(1, 'deployed', '1.0.0')"
out="$("$helm" upgrade --install acme "$work/chart" "${common[@]}" --values "$work/v2.json" -o json)"
expect "helm: upgrade is revision 2" test "$(json_get '(d["version"], d["info"]["status"], d["config"]["release"])' <<<"$out")" = "(2, 'deployed', '1.1.0')"
out="$("$helm" history acme -n tenant-acme --kube-context local-eu -o json)"
expect "helm: history supersedes revision 1" test "$(json_get '[r["status"] for r in d]' <<<"$out")" = "['superseded', 'deployed']"
expect "helm: rollback" "$helm" rollback acme 1 "${common[@]}"
out="$("$helm" get values acme -n tenant-acme --kube-context local-eu -o json)"
expect "helm: rollback copies revision 1 values into revision 3" test "$(json_get 'd["release"]' <<<"$out")" = "1.0.0"
out="$("$helm" status acme -n tenant-acme --kube-context local-eu -o json)"
expect "helm: status shows revision 3" test "$(json_get '(d["version"], d["info"]["description"])' <<<"$out")" = "(3, 'Rollback to 1')"
out="$("$helm" get values acme -n tenant-acme --kube-context local-eu -o json --revision 2)"
expect "helm: get values --revision" test "$(json_get 'd["release"]' <<<"$out")" = "1.1.0"
if "$helm" rollback acme 42 "${common[@]}" 2>"$work/err"; then not_ok "helm: rollback to a missing revision fails"
else expect "helm: rollback to a missing revision fails" grep -qx 'Error: release has no 42 version' "$work/err"; fi
if "$helm" upgrade --install acme "$work/chart" "${common[@]}" --timeout 5 2>"$work/err"; then not_ok "helm: bad --timeout refused"
else expect "helm: bad --timeout refused" grep -q 'missing unit in duration' "$work/err"; fi

mkdir -p "$HELM_STANDIN_STATE/fail"
echo 'UPGRADE FAILED: context deadline exceeded' >"$HELM_STANDIN_STATE/fail/acme.upgrade"
if "$helm" upgrade --install acme "$work/chart" "${common[@]}" -f "$work/v2.json" -o json >/dev/null 2>"$work/err"; then
  not_ok "helm: fail file makes upgrade fail"
else
  expect "helm: fail file makes upgrade fail" grep -qx 'Error: UPGRADE FAILED: context deadline exceeded' "$work/err"
fi
out="$("$helm" history acme -n tenant-acme --kube-context local-eu -o json)"
expect "helm: failed upgrade leaves a failed revision, revision 3 still deployed" \
  test "$(json_get '[r["status"] for r in d][-2:]' <<<"$out")" = "['deployed', 'failed']"
rm "$HELM_STANDIN_STATE/fail/acme.upgrade"
expect "helm: calls are recorded" test "$(grep -c '"upgrade"' "$HELM_STANDIN_STATE/calls.jsonl")" -ge 4
"$helm" upgrade --install acme "$work/chart" "${common[@]}" -f "$work/v2.json" -o json >/dev/null

# --- health stand-in -----------------------------------------------------------------------
http_status() { # http_status HOST -> "<code> <body>"
  python3 - "$health_port" "$1" <<'PY'
import sys, urllib.request, urllib.error
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/healthz", headers={"Host": sys.argv[2]})
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
PY
}
if health_pid="$("$here/start-health-standin.sh" "$health_port" "$HELM_STANDIN_STATE" 2>"$work/health.err")"; then
  ok "health stand-in started (pid $health_pid)"
  expect "health: deployed tenant answers 200 with its release" \
    test "$(http_status acme.tenants.test)" = '200 {"status": "ok", "release": "1.1.0"}'
  expect "health: unknown host answers 404" test "$(http_status nobody.tenants.test | cut -d' ' -f1)" = 404
  echo 1.1.0 >"$HELM_STANDIN_STATE/broken-releases"
  expect "health: broken release answers 503" \
    test "$(http_status acme.tenants.test)" = '503 {"status": "unhealthy", "release": "1.1.0"}'
  rm "$HELM_STANDIN_STATE/broken-releases"
  mkdir -p "$HELM_STANDIN_STATE/unhealthy"
  touch "$HELM_STANDIN_STATE/unhealthy/acme.tenants.test"
  expect "health: unhealthy/<hostname> answers 503" test "$(http_status acme.tenants.test | cut -d' ' -f1)" = 503
  rm "$HELM_STANDIN_STATE/unhealthy/acme.tenants.test"
  if command -v curl >/dev/null 2>&1; then
    expect "health: curl -H 'Host: ...'" test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: acme.tenants.test' \
      "http://127.0.0.1:$health_port/healthz")" = 200
  fi
else
  not_ok "health stand-in started" "$(cat "$work/health.err")"
  health_pid=""
fi

expect "helm: uninstall" "$helm" uninstall acme -n tenant-acme --kube-context local-eu --wait
if "$helm" uninstall acme -n tenant-acme --kube-context local-eu --wait 2>"$work/err"; then
  not_ok "helm: uninstall of a missing release fails"
else
  expect "helm: uninstall of a missing release fails" grep -q 'release: not found' "$work/err"
fi
expect "helm: --ignore-not-found" "$helm" uninstall acme -n tenant-acme --kube-context local-eu --ignore-not-found
[[ -z "$health_pid" ]] || expect "health: uninstalled tenant answers 404" test "$(http_status acme.tenants.test | cut -d' ' -f1)" = 404

# --- fault proxy -------------------------------------------------------------------------
if "$here/start-fault-proxy.sh" "localhost:$MOTO_PORT" "$fault_port" >/dev/null 2>"$work/fault.err"; then
  not_ok "fault proxy: a bad upstream is refused"
else
  expect "fault proxy: a bad upstream is refused" grep -q 'UPSTREAM_URL must be http://HOST:PORT' "$work/fault.err"
fi
if "$here/start-fault-proxy.sh" "$AWS_ENDPOINT_URL" "$fault_port" 3 >"$work/fault-moto.pid" 2>"$work/fault.err" &&
  "$here/start-fault-proxy.sh" "$AWS_ENDPOINT_URL_DYNAMODB" "$((fault_port + 1))" 3 >"$work/fault-ddb.pid" 2>>"$work/fault.err"; then
  ok "fault proxies started (pids $(cat "$work/fault-moto.pid") $(cat "$work/fault-ddb.pid"))"
  # shellcheck disable=SC2016  # expanded by the inner bash
  expect "fault proxy: starting again prints the same pid" bash -c '[[ "$("$1/start-fault-proxy.sh" "$2" "$3" 2>/dev/null)" == "$(cat "$4")" ]]' _ \
    "$here" "$AWS_ENDPOINT_URL" "$fault_port" "$work/fault-moto.pid"
  "$venv_python" "$here/selftest_fault_proxy.py" "$fault_port" "$((fault_port + 1))" "$MOTO_PORT" >"$work/fault.out" 2>&1 || true
  while IFS= read -r line; do
    case "$line" in
      "ok - "*) ok "${line#ok - }" ;;
      "not ok - "*) not_ok "${line#not ok - }" ;;
      *) printf '    %s\n' "$line" ;;
    esac
  done <"$work/fault.out"
  grep -q '^ok - ' "$work/fault.out" || not_ok "selftest_fault_proxy.py ran" "$(tail -n 20 "$work/fault.out")"
else
  not_ok "fault proxies started" "$(cat "$work/fault.err")"
fi

# --- stop -------------------------------------------------------------------------------------
all_pids="$(cat "$TENANT_ORCHESTRATOR_RUN"/*.pid 2>/dev/null || true)"
expect "stop.sh" "$here/stop.sh"
left=""
for pid in $all_pids; do
  if kill -0 "$pid" 2>/dev/null; then left="$left $pid"; fi
done
if [[ -z "$left" ]]; then ok "nothing left running"; else not_ok "nothing left running" "still alive:$left"; fi
expect "stop.sh when nothing runs" "$here/stop.sh"

echo "$passed passed, $failed failed"
((failed == 0))
