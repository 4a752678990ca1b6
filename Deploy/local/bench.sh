#!/usr/bin/env bash
# `make bench`: one report (issue 25). Without arguments, each part in a fresh vhost on the local broker:
#   1. all-in-one (`switchboard run`): the bare relay's ceiling, the pipeline, latency at half rate, CPU per
#      process, RSS, bytes written per message;
#   2. the same with quorum queues (SB_QUEUE_TYPE=quorum), reported beside the classic figures;
#   3. the fleet shape on SQLite (store, intake, two worker processes);
#   4. the fleet shape on the local PostgreSQL (a schema of its own per run), when it runs;
#   5. timers: 100,000 pending, coming due at 4,760/s, against the broker's own dead-letter ceiling;
#   6. the replay rate (`switchboard rules replay` over 100,000 recorded messages, one thread, no broker).
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
python3 Deploy/local/bench_history.py --parts "$dir" BENCHMARKS.md "$commit"
