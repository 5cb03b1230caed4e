#!/usr/bin/env bash
# The KServe rollout tests judge canary steps with PromQL on a real Prometheus
# (tests/deploy/test_kserve_rollout.py). Install Debian's where it is missing.
set -euo pipefail
if command -v prometheus >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "error: prometheus is missing and this machine has no apt-get; install Prometheus" \
    "(2.x) on PATH, then run make test again" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if ! sudo -n true 2>/dev/null; then
    echo "error: prometheus is missing; install it with" \
      "'sudo apt-get install --no-install-recommends prometheus', then run make test again" >&2
    exit 1
  fi
  SUDO="sudo -n"
fi
echo "installing Debian's prometheus for the KServe rollout tests"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus
