#!/usr/bin/env bash
# What only the tests need, beside install.sh: a real browser (Debian's chromium and chromium-driver,
# driven by selenium) for the web UI test, and schemathesis for the API's fuzz run against docs/openapi.yaml.
set -euo pipefail

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "switchboard: installing ${need_apt[*]} (the browser test)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "switchboard: missing Debian packages: ${need_apt[*]}; run: sudo apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
fi

if ! python3 -c 'import selenium, schemathesis' >/dev/null 2>&1; then
  echo "switchboard: installing selenium and schemathesis (the browser and API tests)"
  python3 -m pip install --quiet --disable-pip-version-check selenium schemathesis \
    || { echo "switchboard: could not install selenium and schemathesis with pip" >&2; exit 1; }
fi
