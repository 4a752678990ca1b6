#!/usr/bin/env bash
# A throwaway PostgreSQL for development and tests: its own cluster in $SB_POSTGRES_DIR (default
# .postgres/ in the repo), on 127.0.0.1:${SB_POSTGRES_PORT:-55432}, trust authentication for local
# connections, fsync off. Never touches a cluster the machine already runs.
#   postgres.sh start   create the cluster on first use and start it (no-op when it answers already)
#   postgres.sh stop
#   postgres.sh url     the store_url for it
#   postgres.sh ca      the CA file that signed its TLS certificate (TLS 1.2+ on the same port)
# When SB_POSTGRES_PORT is not given and 55432 is taken at the first start by a server that is not this
# checkout's (another checkout's), it takes the next free port and remembers it in .postgres.port.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
remembered="$repo/.postgres.port"
given_port="${SB_POSTGRES_PORT:-}"
[ -z "$given_port" ] && [ -f "$remembered" ] && given_port="$(cat "$remembered")"
port="${given_port:-55432}"
set_state() {
  state="${SB_POSTGRES_DIR:-$repo/.postgres}"
  # As root the server runs as 'postgres', which may not reach into the repo (a clone under /root, say).
  if [ -z "${SB_POSTGRES_DIR:-}" ] && [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$repo" 2>/dev/null; then
    state="/tmp/switchboard-postgres-$port"
  fi
}
set_state
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -n "$bin" ] || { echo "postgres.sh: PostgreSQL is not installed (make deps installs it)" >&2; exit 1; }

# initdb and the server refuse to run as root: as root, run them as the 'postgres' user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/${1:-$port}") 2>/dev/null; }

# This checkout's server runs (its postmaster.pid names a live process).
own_server_runs() { [ -f "$state/postmaster.pid" ] && kill -0 "$(head -1 "$state/postmaster.pid")" 2>/dev/null; }

# At the first start without a given port: 55432, or the next free one when another server holds it.
choose_port() {
  [ -n "$given_port" ] && return 0
  if answers && ! own_server_runs; then
    while answers "$port"; do
      port=$((port + 1))
      [ "$port" -le 55532 ] || { echo "postgres.sh: no free port near 55432" >&2; exit 1; }
    done
    echo "postgres.sh: another server holds 127.0.0.1:55432; this checkout's takes $port"
    set_state
  fi
  echo "$port" > "$remembered"
}

case "${1:-}" in
  start)
    choose_port
    if answers; then exit 0; fi
    mkdir -p "$state"
    [ "$(id -u)" = 0 ] && chown postgres: "$state"
    if [ ! -f "$state/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$state" -U postgres -A trust -E UTF8 --no-sync >"$state.initdb.log" 2>&1 \
        || { cat "$state.initdb.log" >&2; exit 1; }
    fi
    # A local CA and a server certificate for 127.0.0.1/localhost, so TLS can be tested for real.
    tls="$state/tls"
    if [ ! -f "$tls/server.crt" ]; then
      mkdir -p "$tls"
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Switchboard local PostgreSQL CA" \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1
      openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1
      printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$tls/server.ext"
      openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 3650 \
        -extfile "$tls/server.ext" -out "$tls/server.crt" >/dev/null 2>&1
      chmod 600 "$tls"/*.key
      [ "$(id -u)" = 0 ] && chown -R postgres: "$tls"
    fi
    # The port lies in Linux's ephemeral range: a client socket of another program (closed, in TIME-WAIT
    # for up to 60 s) may hold it for a while. Then the start is tried again, never a different port.
    for try in 1 2 3 4 5 6 7; do
      if as_owner "$bin/pg_ctl" -D "$state" -l "$state/server.log" -w -t 60 \
        -o "-p $port -k $state -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200 -c ssl=on -c ssl_cert_file=$tls/server.crt -c ssl_key_file=$tls/server.key -c ssl_min_protocol_version=TLSv1.2" start >/dev/null; then
        break
      fi
      if [ "$try" -lt 7 ] && tail -5 "$state/server.log" | grep -q "Address already in use"; then
        echo "postgres.sh: 127.0.0.1:$port is still held (TIME-WAIT?); trying again in 10 s" >&2
        sleep 10
        continue
      fi
      tail -20 "$state/server.log" >&2
      exit 1
    done
    echo "postgres.sh: PostgreSQL on 127.0.0.1:$port ($state)"
    ;;
  stop)
    [ -f "$state/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$state" -m fast -w stop >/dev/null || true
    ;;
  url)
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  ca)
    echo "$state/tls/ca.pem"
    ;;
  *)
    echo "usage: $0 start|stop|url|ca" >&2; exit 2 ;;
esac
