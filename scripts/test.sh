#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the local AWS into the cache,
# starts it on its own ports, runs formatting, lint and layering checks, the dependency
# advisory check (offline, against ../shared/advisory-db), the Rust unit and
# integration tests, the template and chart checks, the Dockerfile check, the local AWS self-test and the
# Azure Pipelines check (every tenantctl command and flag the pipelines use exists in
# the binary just built), then stops what it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tenant-orchestrator/target}"
cache="${TENANT_ORCHESTRATOR_CACHE:-$HOME/.cache/tenant-orchestrator}"

# Ports and run dir of this test run, apart from a demo that may be running.
export DYNAMODB_PORT="${TEST_DYNAMODB_PORT:-28000}"
export MOTO_PORT="${TEST_MOTO_PORT:-24566}"
export TENANT_ORCHESTRATOR_RUN="$cache/run-tests"

step() { printf '\n==> %s\n' "$*" >&2; }

step "installing the local AWS (cached after the first run)"
localstack/install.sh

step "checking formatting and lints"
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
python3 scripts/check_layers.py # docs/ARCHITECTURE.md, Layers

step "dependency advisories (offline RustSec snapshot, deny.toml)"
scripts/audit-deps.sh

step "starting the local AWS on ports $DYNAMODB_PORT and $MOTO_PORT"
trap 'localstack/stop.sh >/dev/null 2>&1 || true' EXIT
eval "$(localstack/start.sh)"

eval "$(scripts/install-browser.sh)" # headless Chromium + chromedriver for tests/dashboard.rs
step "Rust unit and integration tests"
cargo nextest run --locked --no-fail-fast

step "HTTP API: OpenAPI validation and schemathesis fuzzing (all checks, warnings fail)"
scripts/fuzz-api.sh

step "CloudFormation template and Helm chart"
TENANT_ORCHESTRATOR_PYTHON="$cache/localstack/venv/bin/python" scripts/check-templates.sh

step "Dockerfile (static: pinned bases and Helm, non-root, health check)"
python3 scripts/check_dockerfile.py

step "local AWS self-test"
localstack/selftest.sh

step "Azure Pipelines: templates, and every tenantctl command and flag they use"
"$cache/localstack/venv/bin/python" scripts/check-pipelines.py --tenantctl "$CARGO_TARGET_DIR/debug/tenantctl"
