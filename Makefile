# Switchboard: `make run` runs everything locally; `make test` runs every test against a real RabbitMQ.
SHELL := /bin/bash
CONFIG ?= Config
CONFIGURATION ?= debug
SWIFT_BUILD_FLAGS ?=
BIN := .build/$(CONFIGURATION)/switchboard
export SB_TLS_CA_FILE ?= $(CURDIR)/.rabbitmq/tls/ca.pem
# The web UI's HTTPS certificate: the local broker's, made by Deploy/local/rabbitmq.sh for localhost.
export SB_ADMIN_TLS_CERT ?= $(CURDIR)/.rabbitmq/tls/server.pem
export SB_ADMIN_TLS_KEY ?= $(CURDIR)/.rabbitmq/tls/server.key

.PHONY: all deps test-deps broker broker-stop cluster cluster-stop postgres postgres-stop build run demo bench bench-fleet-postgres bench-rest test test-unit config-check clean

all: build

deps:
	@bash Deploy/local/install.sh

test-deps: deps
	@bash Deploy/local/install-test.sh

broker: deps
	@bash Deploy/local/rabbitmq.sh start

broker-stop:
	@bash Deploy/local/rabbitmq.sh stop

# A three-node RabbitMQ cluster on this machine (ports 5681-5683), beside the single broker.
cluster: deps
	@bash Deploy/local/cluster.sh start

cluster-stop:
	@bash Deploy/local/cluster.sh stop

# A throwaway PostgreSQL (the fleet's store backend); the store contract tests run against it.
postgres: deps
	@bash Deploy/local/postgres.sh start

postgres-stop:
	@bash Deploy/local/postgres.sh stop

build: deps
	swift build -c $(CONFIGURATION) $(SWIFT_BUILD_FLAGS)

config-check: build
	$(BIN) config check $(CONFIG)

run: broker build
	@echo "switchboard: starting every role with $(CONFIG)/ (Ctrl-C or SIGTERM stops it gracefully)"
	@eval "$$(bash Deploy/local/rabbitmq.sh run-env)" && \
	  hash="$${SB_ADMIN_PASSWORD_HASH:-$$(bash Deploy/local/admin.sh $(BIN))}" && \
	  echo "switchboard: web UI: sign in as 'admin' with the password in $${SB_DATA_DIR:-.data}/admin-password" && \
	  SB_ADMIN_PASSWORD_HASH="$$hash" exec $(BIN) run --config $(CONFIG)

# Both stories (hand-back, locked ticket) played by a scripted ESB, with short delays; prints the timeline.
demo: broker build
	SB_BINARY=$(CURDIR)/$(BIN) python3 Tests/esb/demo.py

# One report (issue 25): all-in-one (classic and quorum queues), the fleet on SQLite and on PostgreSQL,
# timers against the broker's dead-letter ceiling, the replay rate; a summary and a History line in
# BENCHMARKS.md (release build, about 15 minutes). BENCH_ARGS="--messages 10000" runs one part with them.
bench: broker postgres
	swift build -c release $(SWIFT_BUILD_FLAGS)
	bash Deploy/local/bench.sh $(BENCH_ARGS)

# The fleet shape (store, intake, 2 worker processes) on the local PostgreSQL (started here), in a schema of
# its own per run; the same report and History line as make bench.
bench-fleet-postgres: broker postgres
	swift build -c release $(SWIFT_BUILD_FLAGS)
	SB_STORE_URL="$$(bash Deploy/local/postgres.sh url)?schema=fleetbench_$$(date +%s)" bash Deploy/local/bench.sh --shape fleet --worker-processes 2 $(BENCH_ARGS)

# Issue 26's harness at full length: the ServiceNow <-> Jira example against fakes that fail like the real
# tools, SB_HARNESS_TICKETS tickets (default here 400; make test runs it with 40).
bench-rest: broker
	swift build $(SWIFT_BUILD_FLAGS)
	eval "$$(bash Deploy/local/rabbitmq.sh env)" && SB_HARNESS_TICKETS=$${SB_HARNESS_TICKETS:-400} python3 -m pytest -q -p no:benchmark Tests/esb/test_rest_harness.py

# Fast engine tests only: no broker, no PostgreSQL needed.
test-unit:
	swift test --skip AMQPIntegrationTests --skip PostgresContract

# Every test, in phases, each phase's time printed at the end (Deploy/local/test.sh): the set-up (what the
# tests need, the local RabbitMQ and PostgreSQL: beside the build), the build, the engine, the store contract
# on SQLite and PostgreSQL and the AMQP layer against the real broker, then the ESB-side tests (pika) ESB_JOBS
# at a time (4): the fleet and fault tests on both store backends, the admin's API (and its fuzz run against
# docs/openapi.yaml), the web UI in a real browser, all in the configuration we ship: quorum queues, and on
# each test vhost Deploy/rabbitmq/apply.sh's policy with RabbitMQ 4's default delivery limit (20) set by us
# (`SB_QUEUE_TYPE=classic make test` runs them on classic queues).
test:
	@SWIFT_BUILD_FLAGS="$(SWIFT_BUILD_FLAGS)" MAKE="$(MAKE)" bash Deploy/local/test.sh

clean:
	rm -rf .build .data
