#!/usr/bin/env bash
# The console's browser tests drive Debian's chromium (tests/shared/console). Install it from
# Debian's packages where it is missing; Playwright's own browser download is never used.
set -euo pipefail
CHROMIUM="${SLIPWAY_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "error: $CHROMIUM is missing and this machine has no apt-get; install Chromium and" \
    "set SLIPWAY_CHROMIUM to its path, then run make test again" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if ! sudo -n true 2>/dev/null; then
    echo "error: $CHROMIUM is missing; install it with" \
      "'sudo apt-get install --no-install-recommends chromium', then run make test again" >&2
    exit 1
  fi
  SUDO="sudo -n"
fi
echo "installing Debian's chromium for the console's browser tests"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
