#!/usr/bin/env bash
# `make test` runs some tests against real programs from Debian's packages: the console's in
# chromium, the KServe rollout's judge on prometheus. Install PACKAGE where PROGRAM (a path,
# or a name on PATH) is missing; never a browser or binary downloaded by a tool of its own.
# Usage: ensure_debian_package.sh PACKAGE PROGRAM WHAT-NEEDS-IT
set -euo pipefail
package="$1" program="$2" why="$3"
if [ -x "$program" ] || command -v "$program" >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "error: $program is missing and this machine has no apt-get; install $package" \
    "(for $why), then run make test again" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if ! sudo -n true 2>/dev/null; then
    echo "error: $program is missing; install it with" \
      "'sudo apt-get install --no-install-recommends $package', then run make test again" >&2
    exit 1
  fi
  SUDO="sudo -n"
fi
echo "installing Debian's $package for $why"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$package"
