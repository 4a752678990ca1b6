#!/usr/bin/env bash
# A local RabbitMQ for development and tests: plain AMQP on 5672, AMQPS (TLS 1.2/1.3 only) on 5671,
# management on 15672, Prometheus on 15692. Its state lives in $SB_RABBITMQ_DIR (default .rabbitmq/ in
# the repo), never in the system's /etc or /var, so it does not disturb a RabbitMQ the machine already runs.
#   rabbitmq.sh start   start this checkout's node (nothing to do when it runs already)
#   rabbitmq.sh stop    stop the node this script started
#   rabbitmq.sh status
#   rabbitmq.sh env     the variables that point the tests at this node (`eval "$(rabbitmq.sh env)"`)
# Ports and the certificates' folder can be moved (Deploy/local/cluster.sh runs three nodes with it):
# SB_RABBITMQ_PORT (5672), SB_RABBITMQ_TLS_PORT (5671), SB_RABBITMQ_MANAGEMENT_PORT (15672),
# SB_RABBITMQ_PROMETHEUS_PORT (15692), SB_RABBITMQ_TLS_DIR ($SB_RABBITMQ_DIR/tls).
# When none is given and the standard ports are taken at the node's first start by a broker that is not
# this checkout's (a system RabbitMQ, another checkout's node), the node takes the next free set (every
# port +100, +200, ...; named switchboard-<amqp port>@localhost) and remembers it in $SB_RABBITMQ_DIR/node:
# `make test` beside another checkout tests a broker of its own, with its own certificates.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${SB_RABBITMQ_DIR:-$repo/.rabbitmq}"
tls="${SB_RABBITMQ_TLS_DIR:-$state/tls}"
remembered="$state/node"
# Ports given by the caller win; else the set this checkout's node took at its first start.
given_ports="${SB_RABBITMQ_PORT:-}"
if [ -z "$given_ports" ] && [ -f "$remembered" ]; then
  while IFS='=' read -r key value; do
    [ -n "$key" ] && [ -z "${!key:-}" ] && export "$key=$value"
  done < "$remembered"
fi
set_ports() {
  amqp_port="${SB_RABBITMQ_PORT:-5672}"
  amqps_port="${SB_RABBITMQ_TLS_PORT:-5671}"
  management_port="${SB_RABBITMQ_MANAGEMENT_PORT:-15672}"
  prometheus_port="${SB_RABBITMQ_PROMETHEUS_PORT:-15692}"
  # Erlang distribution: 20000 above the AMQP port, as RabbitMQ does only for a port given in its environment.
  export RABBITMQ_DIST_PORT="${RABBITMQ_DIST_PORT:-$((amqp_port + 20000))}"
}
set_ports
bin=/usr/lib/rabbitmq/bin
[ -x "$bin/rabbitmq-server" ] || bin="$(dirname "$(command -v rabbitmq-server)")"

export RABBITMQ_NODENAME="${RABBITMQ_NODENAME:-switchboard@localhost}"
export RABBITMQ_MNESIA_BASE="$state/mnesia"
export RABBITMQ_LOG_BASE="$state/log"
export RABBITMQ_CONFIG_FILE="$state/rabbitmq.conf"
export RABBITMQ_ENABLED_PLUGINS_FILE="$state/enabled_plugins"
export RABBITMQ_PID_FILE="$state/rabbitmq.pid"
export RABBITMQ_ADVANCED_CONFIG_FILE="$state/advanced.config"
# The broker shares the machine with Switchboard's processes: Erlang schedulers must not busy-wait for
# work (the default), which takes CPU the workers need. RabbitMQ's own advice for shared hosts.
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-+sbwt none +sbwtdcpu none +sbwtdio none}"

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# This checkout's node runs (its pid file names a live process).
own_node_runs() { [ -f "$RABBITMQ_PID_FILE" ] && kill -0 "$(cat "$RABBITMQ_PID_FILE")" 2>/dev/null; }

# At the first start without given ports: the standard set, or the next one that is free when another
# broker holds it. Remembered, so stop, ctl and the tests find the same node later.
choose_ports() {
  [ -n "$given_ports" ] || [ -f "$remembered" ] && return 0
  local shift=0
  if answers 5672 && ! own_node_runs; then
    shift=100
    while answers $((5672 + shift)) || answers $((5671 + shift)) || answers $((15672 + shift)) \
          || answers $((15692 + shift)) || answers $((25672 + shift)); do
      shift=$((shift + 100))
      [ $shift -le 2000 ] || { echo "rabbitmq: no free set of ports near 5672" >&2; exit 1; }
    done
    echo "rabbitmq: another broker holds localhost:5672; this checkout's node takes ports +$shift"
  fi
  mkdir -p "$state"
  export SB_RABBITMQ_PORT=$((5672 + shift)) SB_RABBITMQ_TLS_PORT=$((5671 + shift))
  export SB_RABBITMQ_MANAGEMENT_PORT=$((15672 + shift)) SB_RABBITMQ_PROMETHEUS_PORT=$((15692 + shift))
  unset RABBITMQ_DIST_PORT
  if [ $shift -gt 0 ]; then export RABBITMQ_NODENAME="switchboard-$SB_RABBITMQ_PORT@localhost"; fi
  {
    echo "SB_RABBITMQ_PORT=$SB_RABBITMQ_PORT"
    echo "SB_RABBITMQ_TLS_PORT=$SB_RABBITMQ_TLS_PORT"
    echo "SB_RABBITMQ_MANAGEMENT_PORT=$SB_RABBITMQ_MANAGEMENT_PORT"
    echo "SB_RABBITMQ_PROMETHEUS_PORT=$SB_RABBITMQ_PROMETHEUS_PORT"
    echo "RABBITMQ_NODENAME=$RABBITMQ_NODENAME"
  } > "$remembered"
  set_ports
}

make_certs() {
  [ -f "$tls/server.pem" ] && return 0
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Switchboard local CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$tls/server.ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 3650 -extfile "$tls/server.ext" -out "$tls/server.pem" >/dev/null 2>&1
  chmod 600 "$tls"/*.key
}

write_config() {
  mkdir -p "$state" "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
  make_certs
  cat > "$RABBITMQ_CONFIG_FILE" <<CONF
listeners.tcp.default = $amqp_port
listeners.ssl.default = $amqps_port
ssl_options.cacertfile = $tls/ca.pem
ssl_options.certfile = $tls/server.pem
ssl_options.keyfile = $tls/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
management.tcp.port = $management_port
prometheus.tcp.port = $prometheus_port
log.console = false
log.file.level = warning
CONF
  echo "[rabbitmq_management,rabbitmq_prometheus,rabbitmq_consistent_hash_exchange]." > "$RABBITMQ_ENABLED_PLUGINS_FILE"
  echo "[]." > "$RABBITMQ_ADVANCED_CONFIG_FILE"
}

# Starts the node without waiting for it (a cluster's nodes must boot together: each waits for the others).
launch() {
  choose_ports
  if answers "$amqp_port"; then
    echo "rabbitmq: a broker already answers on localhost:$amqp_port; using it"
    return 1
  fi
  write_config
  echo "rabbitmq: starting node $RABBITMQ_NODENAME (state in $state)"
  "$bin/rabbitmq-server" -detached
}

wait_up() {
  for _ in $(seq 1 240); do
    if answers "$amqp_port" && "$bin/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" await_startup --timeout 5 >/dev/null 2>&1; then
      echo "rabbitmq: up: amqp://localhost:$amqp_port, amqps://localhost:$amqps_port (CA $tls/ca.pem), management http://localhost:$management_port"
      return 0
    fi
    sleep 0.5
  done
  echo "rabbitmq: the node did not start; its log:" >&2
  tail -n 40 "$RABBITMQ_LOG_BASE"/*.log >&2 2>/dev/null || true
  exit 1
}

start() {
  launch || return 0
  wait_up
}

stop() {
  "$bin/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" stop >/dev/null 2>&1 || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) "$bin/rabbitmqctl" -n "$RABBITMQ_NODENAME" status ;;
  certs) make_certs ;;
  launch) launch || true ;;
  wait) wait_up ;;
  ctl) shift; "$bin/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@" ;;
  env)
    echo "export SB_TEST_AMQP_URL=amqp://guest:guest@localhost:$amqp_port/ SB_TEST_AMQPS_URL=amqps://guest:guest@localhost:$amqps_port/"
    echo "export SB_TEST_AMQP_PORT=$amqp_port SB_TEST_AMQPS_PORT=$amqps_port SB_TEST_MANAGEMENT_URL=http://localhost:$management_port"
    echo "export SB_TEST_PROMETHEUS_PORT=$prometheus_port SB_TLS_CA_FILE=$tls/ca.pem"
    echo "export SB_TEST_RABBITMQ_LOG=$RABBITMQ_LOG_BASE/$RABBITMQ_NODENAME.log"
    ;;
  run-env)
    # For `make run`: this node unless the caller names a broker (and its management API when it is not
    # where Switchboard looks by default).
    [ -n "${SB_BROKER_URL:-}" ] || echo "export SB_BROKER_URL=amqp://guest:guest@localhost:$amqp_port/"
    [ -n "${SB_BROKER_URL:-}${SB_MANAGEMENT_URL:-}" ] || [ "$management_port" = 15672 ] \
      || echo "export SB_MANAGEMENT_URL=http://guest:guest@localhost:$management_port"
    ;;
  *) echo "usage: $0 start|stop|status|certs|launch|wait|ctl ARGS|env|run-env" >&2; exit 2 ;;
esac
