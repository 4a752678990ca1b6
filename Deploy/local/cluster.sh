#!/usr/bin/env bash
# A local three-node RabbitMQ cluster on this machine, for trying (and testing) Switchboard against a
# cluster that loses a node. Each node has its own name, ports and data under $SB_CLUSTER_DIR (default
# .rabbitmq-cluster/ in the repo); they share the local broker's certificates (.rabbitmq/tls) and the
# user's Erlang cookie. It runs beside the single node of rabbitmq.sh (other ports).
#
#   node N: name sb-node-N@localhost, AMQP 568N, AMQPS 569N, management 1568N, Prometheus 1578N,
#           Erlang distribution 2568N
#
#   cluster.sh start          start the three nodes (those not running) and join them into one cluster
#   cluster.sh stop           stop every node
#   cluster.sh stop-node N    stop node N only (the others go on; quorum queues keep a majority)
#   cluster.sh start-node N   start node N again (it rejoins the cluster it belongs to)
#   cluster.sh url [VHOST]    the broker_url that names all three nodes (user guest, loopback only)
#   cluster.sh ctl N ARGS     rabbitmqctl against node N
#   cluster.sh status
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
base="${SB_CLUSTER_DIR:-$repo/.rabbitmq-cluster}"
bin=/usr/lib/rabbitmq/bin
[ -x "$bin/rabbitmqctl" ] || bin="$(dirname "$(command -v rabbitmqctl)")"
nodes=(1 2 3)

name() { echo "sb-node-$1@localhost"; }

# rabbitmq.sh with node N's name, ports and folder.
as_node() {
  local n="$1"; shift
  SB_RABBITMQ_DIR="$base/node$n" SB_RABBITMQ_TLS_DIR="$repo/.rabbitmq/tls" RABBITMQ_NODENAME="$(name "$n")" \
    SB_RABBITMQ_PORT="568$n" SB_RABBITMQ_TLS_PORT="569$n" SB_RABBITMQ_MANAGEMENT_PORT="1568$n" \
    SB_RABBITMQ_PROMETHEUS_PORT="1578$n" RABBITMQ_DIST_PORT="2568$n" bash "$here/rabbitmq.sh" "$@"
}

ctl() { local n="$1"; shift; "$bin/rabbitmqctl" -q -n "$(name "$n")" "$@"; }

# A node already running on node N's ports must be this checkout's: one started from another checkout
# (its state elsewhere) would be stopped and started again here as a new, unclustered node.
check_own() {
  local n="$1" dir
  (exec 3<>"/dev/tcp/127.0.0.1/568$n") 2>/dev/null || return 0
  dir=$(ctl "$n" eval 'rabbit_mnesia:dir().' 2>/dev/null | tr -d '"') || return 0
  case "$dir" in
    "$base/node$n/"*) return 0 ;;
    *) echo "cluster: node $n on port 568$n runs from another checkout (state in ${dir:-?}); stop it there (make cluster-stop)" >&2
       exit 1 ;;
  esac
}

start_node() {
  check_own "$1"
  as_node "$1" start | sed "s/^rabbitmq:/cluster node $1:/"
}

members() { ctl 1 eval 'rabbit_nodes:all().' 2>/dev/null || true; }

start() {
  # All at once: a stopped cluster's nodes each wait at boot for the others (the last one stopped first).
  [ -f "$repo/.rabbitmq/tls/server.pem" ] || bash "$here/rabbitmq.sh" certs
  for n in "${nodes[@]}"; do check_own "$n"; done
  for n in "${nodes[@]}"; do as_node "$n" launch | sed "s/^rabbitmq:/cluster node $n:/"; done
  for n in "${nodes[@]}"; do as_node "$n" wait | sed "s/^rabbitmq:/cluster node $n:/"; done
  for n in 2 3; do
    if ! members | grep -q "$(name "$n")"; then
      echo "cluster: joining $(name "$n") to $(name 1)"
      # (rabbitmqctl prints warnings about the node's own reset on the way; only a failure matters)
      { ctl "$n" stop_app && ctl "$n" reset && ctl "$n" join_cluster "$(name 1)" && ctl "$n" start_app; } >"$base/join.log" 2>&1 \
        || { cat "$base/join.log" >&2; exit 1; }
    fi
  done
  ctl 1 await_online_nodes 3 --timeout 60 >/dev/null 2>&1 || ctl 1 cluster_status
  echo "cluster: up: $(url)"
}

stop_node() { ctl "$1" stop >/dev/null 2>&1 || true; }

url() { echo "amqp://guest:guest@localhost:5681,localhost:5682,localhost:5683/${1:-}"; }

case "${1:-start}" in
  start) start ;;
  stop) for n in "${nodes[@]}"; do stop_node "$n"; done ;;
  stop-node) stop_node "$2" ;;
  start-node) start_node "$2" ;;
  url) url "${2:-}" ;;
  ctl) shift; n="$1"; shift; "$bin/rabbitmqctl" -n "$(name "$n")" "$@" ;;
  status) ctl 1 cluster_status ;;
  *) echo "usage: $0 start|stop|stop-node N|start-node N|url [VHOST]|ctl N ARGS|status" >&2; exit 2 ;;
esac
