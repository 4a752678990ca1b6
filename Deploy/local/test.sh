#!/usr/bin/env bash
# `make test`: every test, in phases, with each phase's time printed at the end.
#   set-up    what compiling needs first (headers); then, beside the build, what the tests need (apt, pip)
#             and the local RabbitMQ and PostgreSQL (its output in .build/set-up.log)
#   build     the debug build with the test targets
#   swift     the engine, the store contract on SQLite and PostgreSQL, the AMQP layer on the real broker
#   esb       the ESB-side tests (pika), ESB_JOBS at a time (default 4), each on a vhost, database, data
#             directory and ports of its own, in the configuration we ship: quorum queues, and on each test
#             vhost Deploy/rabbitmq/apply.sh's policy with RabbitMQ 4's default delivery limit (20) set by us
#             (`SB_QUEUE_TYPE=classic make test` runs them on classic queues; the tests of what only classic
#             queues do run in either mode); then the few that touch the whole broker (marked `serial`): the
#             memory alarm tests one after the other, beside them the cluster of its own
# A failing phase does not stop the later test phases (the set-up or the build failing does); the exit
# status is 1 when any failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
make="${MAKE:-make}"
jobs="${ESB_JOBS:-4}"
swift_flags="${SWIFT_BUILD_FLAGS:-}"
queue_type="${SB_QUEUE_TYPE:-quorum}"

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

phase set-up-build bash Deploy/local/install.sh --build || { report; exit 1; }
# The rest of the set-up beside the build: apt and pip wait mostly on the network and the disk.
mkdir -p .build
setup_start=$SECONDS
rm -f .build/set-up.seconds
( "$make" --no-print-directory test-deps broker postgres > .build/set-up.log 2>&1; status=$?
  echo $((SECONDS - setup_start)) > .build/set-up.seconds; exit $status ) &
setup_pid=$!
setup_done() {
  local status=0
  wait "$setup_pid" || status=$?
  local took
  took=$(cat .build/set-up.seconds 2>/dev/null || echo $((SECONDS - setup_start)))
  phases+=("$(printf '%-16s %4d s  %s' "set-up" "$took" "$([ $status -eq 0 ] && echo "ok (beside the build)" || echo "FAILED ($status)")")")
  if [ $status -ne 0 ]; then
    echo "==> set-up failed: .build/set-up.log"
    cat .build/set-up.log
  fi
  return $status
}
# The tests' temporary folders (stores, configuration copies, logs: kept when a test fails, for a look)
# live under .build/tmp, emptied at the start of each run, instead of piling up in /tmp. (Set after the
# set-up started: the broker and PostgreSQL it starts outlive the run.)
TMPDIR="$PWD/.build/tmp"
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
export TMPDIR
# shellcheck disable=SC2086
phase build swift build --build-tests $swift_flags || { setup_done; report; exit 1; }
setup_done || { report; exit 1; }
# The tests find this checkout's broker (its ports, its CA) through these variables.
eval "$(bash Deploy/local/rabbitmq.sh env)"
SB_TEST_POSTGRES_URL=$(bash Deploy/local/postgres.sh url)
SB_TEST_POSTGRES_CA=$(bash Deploy/local/postgres.sh ca)
export SB_TEST_POSTGRES_URL SB_TEST_POSTGRES_CA SB_BINARY="$PWD/.build/debug/switchboard"
# shellcheck disable=SC2086
phase swift swift test --skip-build $swift_flags || failed=1
pytest=(python3 -m pytest -q -p no:benchmark)
phase esb env SB_QUEUE_TYPE="$queue_type" "${pytest[@]}" -n "$jobs" -m "not serial" Tests/esb || failed=1
# The memory alarm tests one after the other, and beside them the cluster's (its nodes are not the local one's).
phase esb-serial env SB_QUEUE_TYPE="$queue_type" "${pytest[@]}" -n 2 --dist loadgroup -m serial Tests/esb || failed=1
report
exit $failed
