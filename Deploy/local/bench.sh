#!/usr/bin/env bash
# `make bench`: one report (issue 25). Without arguments, each part in a fresh vhost on the local broker:
#   1. all-in-one (`switchboard run`): the bare relay's ceiling, the pipeline, latency at half rate, CPU per
#      process, RSS, bytes written per message;
#   2. the same with quorum queues (SB_QUEUE_TYPE=quorum), reported beside the classic figures;
#   3. the fleet shape on SQLite (store, intake, two worker processes);
#   4. the fleet shape on the local PostgreSQL (a schema of its own per run), when it runs;
#   5. timers: 100,000 pending, coming due at 4,760/s, against the broker's own dead-letter ceiling;
#   6. the replay rate (`switchboard rules replay` over 100,000 recorded messages, one thread, no broker);
#   7. the webhook ingress: `switchboard run` with an ingress, 1,000 requests/s for 30 s from
#      Deploy/local/ingress_bench.py (open loop), p50/p99 of the answers (issue 26: p99 < 50 ms).
# Then a summary and one dated line at the end of BENCHMARKS.md ("History").
# With arguments, sb-bench runs once with them (e.g. BENCH_ARGS="--messages 10000", "--shape fleet"), and the
# History line has that part's figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
configuration="${CONFIGURATION:-release}"
vhost="sb-bench"
# This checkout's broker, wherever rabbitmq.sh put it (the standard ports, or the next free set).
eval "$(bash Deploy/local/rabbitmq.sh env)"
api="$SB_TEST_MANAGEMENT_URL/api"
fresh_vhost() {
  curl -sf -u guest:guest -X DELETE "$api/vhosts/$vhost" >/dev/null || true
  curl -sf -u guest:guest -X PUT "$api/vhosts/$vhost" >/dev/null
  curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
    -d '{"configure":".*","write":".*","read":".*"}' "$api/permissions/$vhost/guest" >/dev/null
}
dir="$(mktemp -d)"
trap 'rm -rf "$dir"; curl -sf -u guest:guest -X DELETE "$api/vhosts/$vhost" >/dev/null || true' EXIT
bench() { # <part> <sb-bench arguments...>: one part, its output in $dir/<part>
  local part="$1"
  shift
  fresh_vhost
  echo "== $part"
  ".build/$configuration/sb-bench" --url "$SB_TEST_AMQP_URL$vhost" \
    --binary ".build/$configuration/switchboard" --config Config "$@" | tee "$dir/$part"
}
commit="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+changes')"
ingress_part() { # the webhook ingress at 1,000 requests/s, answered after the broker's confirm
  fresh_vhost
  echo "== ingress" | tee "$dir/ingress"
  local user=sb-bench-ingress password="bench-$RANDOM$RANDOM" token="sbt_bench$RANDOM$RANDOM" port metrics pid
  SB_USER_PASSWORD="$password" RABBITMQCTL="bash Deploy/local/rabbitmq.sh ctl" bash Deploy/rabbitmq/users.sh ingress "$vhost" "$user" >/dev/null
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  metrics="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  mkdir -p "$dir/ingress-config"
  cp Config/*.yaml "$dir/ingress-config/"
  cat > "$dir/ingress-config/zz-ingress.yaml" <<YAML
ingress:
  listen: 127.0.0.1:$port
  plain_http: true
  broker_url: \${SB_INGRESS_BROKER_URL}
endpoints:
  hooks:
    ticket_id: \$.number
    webhook:
      auth: bearer
      token_sha256: $(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
YAML
  SB_BROKER_URL="$SB_TEST_AMQP_URL$vhost" SB_INGRESS_BROKER_URL="amqp://$user:$password@localhost:${SB_TEST_AMQP_PORT:-5672}/$vhost" \
    SB_DATA_DIR="$dir/ingress-data" SB_METRICS_LISTEN="127.0.0.1:$metrics" SB_LOG_LEVEL=warning \
    ".build/$configuration/switchboard" run --config "$dir/ingress-config" >"$dir/ingress.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$metrics/health/ready" >/dev/null && break; sleep 0.3; done
  python3 Deploy/local/ingress_bench.py --url "http://127.0.0.1:$port/hooks/hooks" --token "$token" --rate 1000 --seconds 30 \
    | tee -a "$dir/ingress" || true
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
if [[ "${SB_BENCH_ONLY:-}" == ingress ]]; then
  ingress_part
  exit 0
fi
if [[ $# -gt 0 ]]; then
  bench single "$@"
  [[ " $* " == *" --shape"* ]] || ".build/$configuration/sb-bench" --shape replay --messages 100000 --conversations 5000 --config Config | tee -a "$dir/single"
  python3 Deploy/local/bench_history.py --single "$dir/single" BENCHMARKS.md "$commit" "$*"
  exit 0
fi
bench run
SB_QUEUE_TYPE=quorum bench quorum
bench fleet --shape fleet --worker-processes 2
if postgres="$(bash Deploy/local/postgres.sh url 2>/dev/null)" && pg_isready -q -d "$postgres" 2>/dev/null; then
  SB_STORE_URL="$postgres?schema=fleetbench_$(date +%s)" bench fleet-postgres --shape fleet --worker-processes 2
else
  echo "== fleet-postgres: skipped (no local PostgreSQL: make postgres)" | tee "$dir/fleet-postgres"
fi
bench timers --shape timers --timers 100000 --timer-rate 4760 --timer-delay 60
echo "== replay"
".build/$configuration/sb-bench" --shape replay --messages 100000 --conversations 5000 --config Config | tee "$dir/replay"
ingress_part
python3 Deploy/local/bench_history.py --parts "$dir" BENCHMARKS.md "$commit"
