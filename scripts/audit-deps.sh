#!/usr/bin/env bash
# Checks the dependencies in Cargo.lock against the RustSec advisory database, fully
# offline: cargo-deny (installed, pinned, only if missing) reads the snapshot in
# ../shared/advisory-db (or TENANTCTL_ADVISORY_DB) and fetches nothing. Any
# vulnerability, or an unsound, unmaintained or yanked crate that deny.toml does not
# accept with a reason, fails the check.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'audit-deps: %s\n' "$*" >&2; }

deny_version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $deny_version"; then
  log "installing cargo-deny $deny_version (cached in ~/.cargo/bin afterwards)"
  cargo install --locked "cargo-deny@$deny_version"
fi

snapshot="${TENANTCTL_ADVISORY_DB:-../shared/advisory-db}"
if [[ ! -d "$snapshot/crates" ]]; then
  log "no advisory database at $snapshot (expected its crates/ folder);"
  log "set TENANTCTL_ADVISORY_DB to a copy of the RustSec advisory-db"
  exit 1
fi

# cargo-deny reads a database only from a git checkout, in a folder named after the
# URL in deny.toml (name and hash as cargo-deny $deny_version derives them). The
# snapshot is plain files, so it gets a throwaway checkout there.
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
checkout="$root/advisory-db-3157b0e258782691"
mkdir -p "$checkout"
cp -R "$snapshot/." "$checkout/"
git -C "$checkout" init -q
git -C "$checkout" add -A
git -C "$checkout" -c user.name=audit -c user.email=audit@localhost \
  commit -q -m "advisory snapshot" --no-gpg-sign

# cargo metadata wants every crate of the lock file, other platforms' too, on disk.
cargo fetch --locked --quiet
TENANTCTL_ADVISORY_DBS="$root" cargo deny --frozen check advisories
