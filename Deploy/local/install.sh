#!/usr/bin/env bash
# Installs what Switchboard needs on Debian 12 (and Ubuntu): the broker, the C client, SQLite headers,
# PostgreSQL (the fleet's store), openssl for the local TLS certificates, and the Python AMQP client the ESB-side tests use.
# With --build: only what compiling needs (the C client's, SQLite's and OpenSSL's headers), so `make test`
# can build while the rest is installed beside it.
set -euo pipefail

need_apt=()
[ -f /usr/include/amqp.h ] || [ -f /usr/include/rabbitmq-c/amqp.h ] || need_apt+=(librabbitmq-dev)
[ -f /usr/include/sqlite3.h ] || need_apt+=(libsqlite3-dev)
[ -f /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
if [ "${1:-}" = --build ]; then
  exec bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" ${need_apt[@]+"${need_apt[@]}"}
fi
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need_apt+=(rabbitmq-server)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# PostgreSQL: the store backend for a fleet; the tests run the store contract against a real server.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)

bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" ${need_apt[@]+"${need_apt[@]}"}

if ! python3 -c 'import pika, pytest' >/dev/null 2>&1; then
  echo "switchboard: installing the Python test clients (pika, pytest)"
  python3 -m pip install --quiet --disable-pip-version-check pika pytest \
    || { echo "switchboard: could not install pika and pytest with pip" >&2; exit 1; }
fi
