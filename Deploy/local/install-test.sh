#!/usr/bin/env bash
# What only the tests need, beside install.sh: a real browser (Debian's chromium and chromium-driver,
# driven by selenium) for the web UI test, and schemathesis for the API's fuzz run against docs/openapi.yaml.
set -euo pipefail

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" ${need_apt[@]+"${need_apt[@]}"}

if ! python3 -c 'import selenium, schemathesis' >/dev/null 2>&1; then
  echo "switchboard: installing selenium and schemathesis (the browser and API tests)"
  python3 -m pip install --quiet --disable-pip-version-check selenium schemathesis \
    || { echo "switchboard: could not install selenium and schemathesis with pip" >&2; exit 1; }
fi
