#!/usr/bin/env bash
# What only the tests need, beside install.sh: a real browser (Debian's chromium and chromium-driver,
# driven by selenium) for the web UI test, schemathesis for the API's fuzz run against docs/openapi.yaml,
# Debian's prometheus (and its promtool) for the metrics and alert tests, and kubernetes-validate for the
# Kubernetes manifests.
set -euo pipefail

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" ${need_apt[@]+"${need_apt[@]}"}

if ! python3 -c 'import selenium, schemathesis, kubernetes_validate' >/dev/null 2>&1; then
  echo "switchboard: installing selenium, schemathesis and kubernetes-validate (browser, API and manifest tests)"
  python3 -m pip install --quiet --disable-pip-version-check selenium schemathesis kubernetes-validate \
    || { echo "switchboard: could not install selenium, schemathesis and kubernetes-validate with pip" >&2; exit 1; }
fi
