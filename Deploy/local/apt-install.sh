#!/usr/bin/env bash
# Installs the Debian packages named as arguments: as root, or with passwordless sudo; otherwise prints
# the exact apt-get line and fails. Used by install.sh and install-test.sh.
set -euo pipefail
[ $# -gt 0 ] || exit 0
echo "switchboard: installing $*"
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
else
  echo "switchboard: missing Debian packages: $*" >&2
  echo "switchboard: run as root, or: sudo apt-get install -y $*" >&2
  exit 1
fi
