#!/usr/bin/env bash
# What only the tests need, beside install.sh: a real browser (Debian's chromium and chromium-driver,
# driven by selenium) for the web UI test, schemathesis for the API's fuzz run against docs/openapi.yaml,
# Debian's prometheus (and its promtool) for the metrics and alert tests, kubernetes-validate and KEDA's
# models for the Kubernetes manifests.
set -euo pipefail

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# gdb: a test that finds a process wedged prints where each of its threads waits.
command -v gdb >/dev/null 2>&1 || need_apt+=(gdb)
bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" ${need_apt[@]+"${need_apt[@]}"}

# cloudcoil-models-keda: KEDA's CRDs as pydantic models, for Deploy/kubernetes/keda.yaml; PyYAML for the
# tests that read the deployment files.
if ! python3 -c 'import selenium, schemathesis, kubernetes_validate, cloudcoil.models.keda, yaml, xdist' >/dev/null 2>&1; then
  echo "switchboard: installing selenium, schemathesis, kubernetes-validate, cloudcoil-models-keda, PyYAML, pytest-xdist (browser, API and deployment tests; tests in parallel)"
  python3 -m pip install --quiet --disable-pip-version-check selenium schemathesis kubernetes-validate cloudcoil-models-keda pyyaml pytest-xdist \
    || { echo "switchboard: could not install the test tools with pip" >&2; exit 1; }
fi
