#!/usr/bin/env bash
# `make bench`: a fresh vhost on the local broker, then sb-bench (ceiling, pipeline, latency at half rate).
# Extra arguments go to sb-bench, e.g. BENCH_ARGS="--messages 10000 --partitions 4".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
configuration="${CONFIGURATION:-release}"
vhost="sb-bench"
api="http://localhost:15672/api"
curl -sf -u guest:guest -X DELETE "$api/vhosts/$vhost" >/dev/null || true
curl -sf -u guest:guest -X PUT "$api/vhosts/$vhost" >/dev/null
curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
  -d '{"configure":".*","write":".*","read":".*"}' "$api/permissions/$vhost/guest" >/dev/null
trap 'curl -sf -u guest:guest -X DELETE "$api/vhosts/$vhost" >/dev/null || true' EXIT
".build/$configuration/sb-bench" --url "amqp://guest:guest@localhost:5672/$vhost" \
  --binary ".build/$configuration/switchboard" --config Config "$@"
