#!/usr/bin/env bash
# `make test`: every test, in phases, with each phase's time printed at the end.
#   set-up    what the tests need (apt, pip), the local RabbitMQ and PostgreSQL
#   build     the debug build with the test targets
#   swift     the engine, the store contract on SQLite and PostgreSQL, the AMQP layer on the real broker
#   esb       the ESB-side tests (pika), ESB_JOBS at a time (default 4), each on a vhost, database, data
#             directory and ports of its own: classic mode, then the order, fault and hostile tests in the
#             configuration we ship (quorum queues, Deploy/rabbitmq/apply.sh's policy), then, alone, the
#             few that touch the whole broker (a memory alarm, a cluster of its own: marked `serial`)
# A failing phase does not stop the later test phases (the set-up or the build failing does); the exit
# status is 1 when any failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
make="${MAKE:-make}"
jobs="${ESB_JOBS:-4}"
swift_flags="${SWIFT_BUILD_FLAGS:-}"
# The order, fault and hostile tests: quorum mode (what users run) replaces classic for them.
quorum_tests=(Tests/esb/test_both_sides.py Tests/esb/test_faults.py Tests/esb/test_poison.py Tests/esb/test_hostile.py
              Tests/esb/test_replay.py)
if [ "${SB_QUEUE_TYPE:-}" = quorum ]; then classic_ignore=(); else classic_ignore=("${quorum_tests[@]/#/--ignore=}"); fi

phases=()
failed=0
phase() {
  local name=$1
  shift
  local start=$SECONDS status=0
  echo "==> $name: $*"
  "$@" || status=$?
  phases+=("$(printf '%-16s %4d s  %s' "$name" $((SECONDS - start)) "$([ $status -eq 0 ] && echo ok || echo "FAILED ($status)")")")
  return $status
}
report() {
  echo
  echo "make test, by phase (total $SECONDS s):"
  printf '  %s\n' "${phases[@]}"
}

phase set-up "$make" --no-print-directory test-deps broker postgres || { report; exit 1; }
# The tests' temporary folders (stores, configuration copies, logs: kept when a test fails, for a look)
# live under .build/tmp, emptied at the start of each run, instead of piling up in /tmp. (Set after the
# set-up: the broker and PostgreSQL it starts outlive the run.)
TMPDIR="$PWD/.build/tmp"
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
export TMPDIR
# shellcheck disable=SC2086
phase build swift build --build-tests $swift_flags || { report; exit 1; }
# The tests find this checkout's broker (its ports, its CA) through these variables.
eval "$(bash Deploy/local/rabbitmq.sh env)"
SB_TEST_POSTGRES_URL=$(bash Deploy/local/postgres.sh url)
SB_TEST_POSTGRES_CA=$(bash Deploy/local/postgres.sh ca)
export SB_TEST_POSTGRES_URL SB_TEST_POSTGRES_CA SB_BINARY="$PWD/.build/debug/switchboard"
# shellcheck disable=SC2086
phase swift swift test --skip-build $swift_flags || failed=1
pytest=(python3 -m pytest -q -p no:benchmark)
phase esb-classic "${pytest[@]}" -n "$jobs" -m "not serial" Tests/esb "${classic_ignore[@]}" || failed=1
if [ "${SB_QUEUE_TYPE:-}" != quorum ]; then
  phase esb-quorum env SB_QUEUE_TYPE=quorum "${pytest[@]}" -n "$jobs" -m "not serial" "${quorum_tests[@]}" || failed=1
fi
phase esb-serial "${pytest[@]}" -m serial Tests/esb || failed=1
report
exit $failed
