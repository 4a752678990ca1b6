#!/usr/bin/env bash
# `make bench`: a fresh vhost on the local broker, then sb-bench (ceiling, pipeline, latency at half rate), then
# the replay rate (no broker).
# Extra arguments go to sb-bench, e.g. BENCH_ARGS="--messages 10000 --partitions 4".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
configuration="${CONFIGURATION:-release}"
vhost="sb-bench"
# This checkout's broker, wherever rabbitmq.sh put it (the standard ports, or the next free set).
eval "$(bash Deploy/local/rabbitmq.sh env)"
api="$SB_TEST_MANAGEMENT_URL/api"
curl -sf -u guest:guest -X DELETE "$api/vhosts/$vhost" >/dev/null || true
curl -sf -u guest:guest -X PUT "$api/vhosts/$vhost" >/dev/null
curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
  -d '{"configure":".*","write":".*","read":".*"}' "$api/permissions/$vhost/guest" >/dev/null
report="$(mktemp)"
trap 'rm -f "$report"; curl -sf -u guest:guest -X DELETE "$api/vhosts/$vhost" >/dev/null || true' EXIT
".build/$configuration/sb-bench" --url "$SB_TEST_AMQP_URL$vhost" \
  --binary ".build/$configuration/switchboard" --config Config "$@" | tee "$report"
# The replay rate (`switchboard rules replay` over 100,000 recorded messages, one thread), unless the
# arguments asked for one shape.
if [[ " $* " != *" --shape"* ]]; then
  ".build/$configuration/sb-bench" --shape replay --messages 100000 --conversations 5000 --config Config | tee -a "$report"
fi
# One dated line per run at the end of BENCHMARKS.md ("History"), with the commit and the arguments.
python3 Deploy/local/bench_history.py "$report" BENCHMARKS.md "$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+changes')" "$*"
