"""Long outages in the configuration we ship: quorum queues, Deploy/rabbitmq/apply.sh's policy with a delivery
limit of 2. Every return of a message counts toward the limit, so a loop that meets store or broker trouble
holds its batch on its connection and tries again in place: nothing valid is parked, and once the trouble is
over everything arrives once, in order.

The broker's consumer_timeout is not shortened here: RabbitMQ 3.10 checks it on each channel's 60 s tick (a
5 s timeout closed a test channel holding an unacked message after 60.0 s), so a test would have to hold for
over a minute to see one return, and the setting is global: it would reach the channels of the tests running
beside this one. Production sets it to 24 hours (docs/operations.md)."""
import json
import time

import pytest

from conftest import (BOTH_SIDES_RULES, ESB, Fleet, assert_each_once_in_order, fresh_vhost, incident, mgmt, publish_sides,
                      rabbitmqctl, take_unique)

LIMIT = 2
# Seconds: the loop's pauses are 1, 2, 4, 8, then 15 s, so this is six tries of the held batch, where the old
# give-back (each try returning the batch to its queue) parked everything after LIMIT + 1 tries, within seconds.
OUTAGE = 40
POLICY = {"delivery-limit": LIMIT, "dead-letter-exchange": "", "dead-letter-routing-key": "sb.parked",
          "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}


def set_policy(vhost, name, pattern, definition, priority):
    r = rabbitmqctl("set_policy", "-p", vhost, "--apply-to", "queues", "--priority", str(priority), name, pattern,
                    json.dumps(definition))
    assert r.returncode == 0, r.stderr


@pytest.fixture
def outage_vhost():
    vhost = next(gen := fresh_vhost("sb-test-outage-"))
    set_policy(vhost, "sb-data", r"^sb\.(in|out|work)\.", POLICY, 10)
    yield vhost
    next(gen, None)


def hold_for(esb, fleet, seconds):
    """The outage: for `seconds`, nothing may be parked (sb.parked and the store's parked table, checked
    every second or so)."""
    end = time.time() + seconds
    while time.time() < end:
        assert esb.depth("sb.parked") == 0, esb.take("sb.parked", 10, timeout=1)
        assert fleet.parked_count() == 0, fleet.parked()
        time.sleep(1)


def held(process, cause):
    """switchboard_batches_held_total for `cause`, summed over roles, from a process's /metrics."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in process.metrics().splitlines()
               if line.startswith("switchboard_batches_held_total{") and f'cause="{cause}"' in line)


def test_a_store_outage_parks_nothing_and_delivers_everything_once_in_order(outage_vhost):
    vhost = outage_vhost
    fleet = Fleet(vhost, env={"SB_QUEUE_TYPE": "quorum", "SB_STORE_TIMEOUT_MS": "2000"}, extra_config=BOTH_SIDES_RULES)
    fleet.start()
    esb = ESB(vhost)
    try:
        assert fleet.store.stop() == 0
        tickets, seqs = 6, range(4)
        for t in publish_sides(vhost, tickets, seqs):
            t.join()
        hold_for(esb, fleet, OUTAGE)
        assert sum(held(w, "handler") for w in fleet.workers) > 0, "no worker held a batch"
        fleet.store.start()
        out_x = take_unique(esb, "sb.out.vendor-x", tickets * len(seqs), timeout=90)
        out_a = take_unique(esb, "sb.out.customer-a", tickets * len(seqs), timeout=90)
        assert_each_once_in_order(out_x, tickets, seqs)
        assert_each_once_in_order(out_a, tickets, seqs)
        assert esb.depth("sb.parked") == 0 and fleet.parked_count() == 0
    finally:
        esb.close()
        assert fleet.stop() == 0, fleet.output()[-5000:]


def test_an_outbound_queue_refusing_publishes_parks_nothing_and_delivers_everything_once_in_order(outage_vhost):
    vhost = outage_vhost
    fleet = Fleet(vhost, env={"SB_QUEUE_TYPE": "quorum"}, extra_config=BOTH_SIDES_RULES)
    fleet.start()
    esb = ESB(vhost)
    try:
        # vendor-x's queue is full and rejects publishes (one policy applies to a queue: the production keys
        # again, with a length limit of 0).
        set_policy(vhost, "sb-full", r"^sb\.out\.vendor-x$", dict(POLICY, **{"max-length": 0}), 20)
        deadline = time.time() + 10
        while mgmt("GET", f"/api/queues/{vhost}/sb.out.vendor-x").get("policy") != "sb-full" and time.time() < deadline:
            time.sleep(0.2)
        tickets, seqs = 6, range(4)
        for seq in seqs:
            for t in range(tickets):
                esb.publish("customer-a", incident(f"TWOA{t:03d}", seq=seq), message_id=f"twoa-{t}-{seq}")
        hold_for(esb, fleet, OUTAGE)
        assert sum(held(w, "refused") for w in fleet.workers) > 0, "no worker held a refused batch"
        # A quorum queue over its length limit refuses; what it took before that counts toward the total below.
        assert esb.depth("sb.out.vendor-x") < tickets * len(seqs)
        assert rabbitmqctl("clear_policy", "-p", vhost, "sb-full").returncode == 0
        out_x = take_unique(esb, "sb.out.vendor-x", tickets * len(seqs), timeout=90)
        assert_each_once_in_order(out_x, tickets, seqs)
        assert esb.depth("sb.parked") == 0 and fleet.parked_count() == 0
    finally:
        esb.close()
        assert fleet.stop() == 0, fleet.output()[-5000:]
