#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian's `chromium` and
# `chromium-driver`) for the dashboard's browser test, only if they are missing, and
# prints where they are as `export` lines:
#   eval "$(scripts/install-browser.sh)"
# sets TENANTCTL_CHROMIUM and TENANTCTL_CHROMEDRIVER for `tests/dashboard.rs`.
# Needs root (or sudo) only when something has to be installed. With
# TENANTCTL_BROWSER_TESTS=skip it installs nothing (the browser test skips itself).
set -euo pipefail

log() { printf 'install-browser: %s\n' "$*" >&2; }

if [[ "${TENANTCTL_BROWSER_TESTS:-}" == skip ]]; then
  log "TENANTCTL_BROWSER_TESTS=skip: not installing a browser"
  exit 0
fi

find_chromium() {
  local candidate
  for candidate in "${TENANTCTL_CHROMIUM:-}" chromium chromium-browser; do
    [[ -n "$candidate" ]] || continue
    command -v "$candidate" 2>/dev/null && return 0
  done
  return 1
}

find_chromedriver() {
  local candidate
  for candidate in "${TENANTCTL_CHROMEDRIVER:-}" chromedriver /usr/lib/chromium/chromedriver; do
    [[ -n "$candidate" ]] || continue
    command -v "$candidate" 2>/dev/null && return 0
  done
  return 1
}

if ! find_chromium >/dev/null || ! find_chromedriver >/dev/null; then
  command -v apt-get >/dev/null 2>&1 || {
    log "chromium and chromedriver are missing and there is no apt-get; install them and set TENANTCTL_CHROMIUM and TENANTCTL_CHROMEDRIVER"
    exit 1
  }
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    sudo="sudo"
  fi
  log "installing chromium and chromium-driver with apt-get"
  # Quiet: the output of this script is meant for eval.
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
fi

chromium="$(find_chromium)" || { log "chromium is still missing after the install"; exit 1; }
chromedriver="$(find_chromedriver)" || { log "chromedriver is still missing after the install"; exit 1; }
log "chromium: $chromium ($("$chromium" --version 2>/dev/null || echo 'version unknown'))"
log "chromedriver: $chromedriver"
printf 'export TENANTCTL_CHROMIUM=%q\n' "$chromium"
printf 'export TENANTCTL_CHROMEDRIVER=%q\n' "$chromedriver"
