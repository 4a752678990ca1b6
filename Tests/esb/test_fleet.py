"""Roles as separate processes of the one binary: intake, stateless workers, and the store role that
owns the database and serves the workers over the broker."""
import json
import os
import signal
import time
import uuid
from collections import Counter

import pika
import pytest

from conftest import (BOTH_SIDES_RULES, COUNTING_RULES, Switchboard, assert_each_once_in_order, assert_standby_takes_over,
                      broker_log_lines_since,
                      incident, postgres_url, publish_sides, rabbitmqctl, rabbitmqctl_ok, seen_counters, take_unique)

ORDER_RULES = """
rules:
  - name: test-echo-seq
    priority: 1000
    from: customer-a
    when: {field: $.seq, exists: true}
    stop: true
    send: [{to: vendor-x, type: update, body: {number: {field: $.number}, seq: {field: $.seq}}}]
"""

DESK = {"value": "g2", "display_value": "Service Desk"}


def test_intake_and_two_worker_processes_keep_per_ticket_order(esb, vhost):
    store = Switchboard(vhost, extra_config=ORDER_RULES, args=["store"], consumers=1).start()
    intake = Switchboard(vhost, extra_config=ORDER_RULES, args=["intake"], consumers=1).start()
    # The workers have no database of their own (no data folder in common with the store).
    a = Switchboard(vhost, extra_config=ORDER_RULES, args=["worker", "--partitions", "0-3"], consumers=2).start()
    b = Switchboard(vhost, extra_config=ORDER_RULES, args=["worker", "--partitions", "4-7"], consumers=2).start()
    try:
        tickets, per_ticket = 40, 15
        for seq in range(per_ticket):
            for t in range(tickets):
                esb.publish("customer-a", incident(f"ORD{t:04d}", seq=seq, assignment_group=DESK), message_id=f"o-{t}-{seq}")
        out = esb.take("sb.out.vendor-x", tickets * per_ticket, timeout=90)
        assert len(out) == tickets * per_ticket
        seen = {}
        for _, body in out:
            m = json.loads(body)
            seen.setdefault(m["number"], []).append(m["seq"])
        assert all(seqs == list(range(per_ticket)) for seqs in seen.values()), seen
        # Both worker processes did part of the work.
        with store.db() as db:
            assert db.execute("SELECT count(*) FROM processed WHERE message_id LIKE 'o-%'").fetchone()[0] == tickets * per_ticket
        assert "worker-0" in a.output() and "worker-0" in b.output()
        assert not os.path.exists(os.path.join(a.data, "switchboard.sqlite"))
    finally:
        for p in (b, a, intake, store):
            assert p.stop() == 0


def test_a_worker_without_a_store_says_so_and_loses_nothing(esb, vhost):
    intake = Switchboard(vhost, extra_config=ORDER_RULES, args=["intake"], consumers=1).start()
    worker = Switchboard(vhost, extra_config=ORDER_RULES, args=["worker", "--threads", "1", "--partitions", "0-7"],
                         env={"SB_STORE_TIMEOUT_MS": "500"}, consumers=1).start()
    store = None
    try:
        esb.publish("customer-a", incident("NOSTORE1", seq=0, assignment_group=DESK), message_id="nostore-0")
        deadline = time.time() + 15
        while "has no consumer" not in worker.output() and time.time() < deadline:
            time.sleep(0.2)
        assert "no store answered" in worker.output() and "start `switchboard store`" in worker.output(), worker.output()
        assert esb.depth("sb.parked") == 0
        # The message waits in its partition and goes through once a store is there.
        store = Switchboard(vhost, extra_config=ORDER_RULES, args=["store"], consumers=1).start()
        got = esb.take("sb.out.vendor-x", 1, timeout=20)
        assert [json.loads(b)["number"] for _, b in got] == ["NOSTORE1"]
    finally:
        for p in (worker, intake, store):
            if p:
                p.stop()


def test_a_partition_has_one_worker_and_is_taken_over_when_it_leaves(esb, vhost):
    store = Switchboard(vhost, extra_config=ORDER_RULES, args=["store"], consumers=1).start()
    intake = Switchboard(vhost, extra_config=ORDER_RULES, args=["intake"], consumers=1).start()
    everything = ["worker", "--partitions", "0-7", "--threads", "1"]
    first = Switchboard(vhost, extra_config=ORDER_RULES, data=intake.data, args=everything, consumers=1).start()
    # A second worker for the same partitions is refused by the broker (exclusive consumer) and waits.
    second = Switchboard(vhost, extra_config=ORDER_RULES, data=intake.data, args=everything, consumers=0)
    second.start()
    try:
        # The waiting worker takes the partitions over within seconds.
        assert_standby_takes_over(esb, first, second, "TAKE1", timeout=10)
    finally:
        for p in (second, first, intake, store):
            p.stop()


def owners(vhost):
    """partition -> pids consuming it, straight from the broker."""
    r = rabbitmqctl("list_consumers", "-p", vhost, "-q", "--formatter", "json", "queue_name", "consumer_tag")
    assert r.returncode == 0, r.stderr
    held = {p: [] for p in range(8)}
    for c in json.loads(r.stdout or "[]"):
        if c["queue_name"].startswith("sb.work."):
            held[int(c["queue_name"].split(".")[-1])].append(int(c["consumer_tag"].split(":")[-1]))
    return held


def watch_until(vhost, want, timeout, unconsumed_since):
    """Polls the consumers until `want(spread)` holds; fails if a partition ever has two consumers or none
    for more than 10 s. Returns the final owners."""
    deadline = time.time() + timeout
    while True:
        held = owners(vhost)
        now = time.time()
        for p, pids in held.items():
            assert len(pids) <= 1, f"partition {p} consumed by {pids} at once"
            if pids:
                unconsumed_since[p] = None
            elif unconsumed_since.get(p) is None:
                unconsumed_since[p] = now
            else:
                assert now - unconsumed_since[p] <= 10, f"partition {p} unconsumed for {now - unconsumed_since[p]:.1f} s"
        spread = sorted(Counter(pids[0] for pids in held.values() if pids).values())
        if want(held, spread):
            return held
        assert now < deadline, f"partitions did not settle: {held}"
        time.sleep(0.3)


def test_partitions_spread_over_live_workers_and_move_when_one_leaves(esb, vhost):
    if not rabbitmqctl_ok():
        pytest.skip("the broker is not the one Deploy/local/rabbitmq.sh started")
    auto = ["worker", "--threads", "1"]
    store = Switchboard(vhost, args=["store"], consumers=1).start()
    a = Switchboard(vhost, args=auto, consumers=1).start()
    b = c = None
    since = {}
    try:
        held = watch_until(vhost, lambda h, s: s == [8], 20, since)
        assert all(pids == [a.proc.pid] for pids in held.values())
        b = Switchboard(vhost, args=auto, data=a.data, consumers=0).start()
        c = Switchboard(vhost, args=auto, data=a.data, consumers=0).start()
        held = watch_until(vhost, lambda h, s: s == [2, 3, 3] and all(h.values()), 30, since)
        assert {pids[0] for pids in held.values()} == {a.proc.pid, b.proc.pid, c.proc.pid}
        # One leaves: its partitions go to the others, evenly.
        assert b.stop() == 0
        held = watch_until(vhost, lambda h, s: s == [4, 4] and all(h.values()), 30, since)
        assert {pids[0] for pids in held.values()} == {a.proc.pid, c.proc.pid}
        # One dies (kill -9): it cannot say goodbye; its heartbeat stops and the survivor takes over.
        c.proc.send_signal(signal.SIGKILL)
        c.proc.wait()
        held = watch_until(vhost, lambda h, s: s == [8], 30, since)
        assert all(pids == [a.proc.pid] for pids in held.values())
        # Work still flows through the new owner.
        intake = Switchboard(vhost, args=["intake"], data=a.data, consumers=1).start()
        try:
            for t in range(16):
                esb.publish("customer-a", incident(f"SPREAD{t}"), message_id=f"spread-{t}")
            assert len(esb.take("sb.out.vendor-x", 16, timeout=20)) == 16
        finally:
            intake.stop()
    finally:
        for p in (c, b, a, store):
            if p:
                p.stop()


def test_a_worker_process_joins_a_running_switchboard_run(esb, vhost):
    if not rabbitmqctl_ok():
        pytest.skip("the broker is not the one Deploy/local/rabbitmq.sh started")
    run = Switchboard(vhost).start()
    extra = None
    since = {}
    try:
        watch_until(vhost, lambda h, s: s == [8], 20, since)
        extra = Switchboard(vhost, args=["worker"], data=run.data, consumers=0).start()
        held = watch_until(vhost, lambda h, s: s == [4, 4] and all(h.values()), 30, since)
        assert {pids[0] for pids in held.values()} == {run.proc.pid, extra.proc.pid}
        for t in range(16):
            esb.publish("customer-a", incident(f"JOIN{t}"), message_id=f"join-{t}")
        assert len(esb.take("sb.out.vendor-x", 16, timeout=20)) == 16
    finally:
        for p in (extra, run):
            if p:
                assert p.stop() == 0


def store_consumers(vhost):
    """The consumers of sb.store, one by one (list_queues' `consumers` reads 0 for a quorum queue on 3.10)."""
    r = rabbitmqctl("list_consumers", "-p", vhost, "-q", "--formatter", "json", "queue_name", "consumer_tag")
    assert r.returncode == 0, r.stderr
    return sum(1 for c in json.loads(r.stdout or "[]") if c["queue_name"] == "sb.store")


def test_two_postgres_store_processes_serve_the_workers_and_one_may_die(esb, vhost):
    if not rabbitmqctl_ok():
        pytest.skip("the broker is not the one Deploy/local/rabbitmq.sh started")
    url = postgres_url("esb_" + uuid.uuid4().hex[:12])
    env = {"SB_STORE_TIMEOUT_MS": "2000"}
    stores = [Switchboard(vhost, extra_config=COUNTING_RULES, args=["store"], consumers=1, store_url=url, env=env).start()
              for _ in range(2)]
    intake = Switchboard(vhost, extra_config=COUNTING_RULES, args=["intake"], consumers=1).start()
    workers = [Switchboard(vhost, extra_config=COUNTING_RULES, args=["worker", "--partitions", p, "--threads", "1"],
                           consumers=1, env=env).start() for p in ("0-3", "4-7")]
    try:
        # Both store processes consume sb.store at once (PostgreSQL: no exclusive owner).
        assert store_consumers(vhost) == 2
        tickets, per_ticket = 50, 20
        for seq in range(per_ticket):
            for t in range(tickets):
                esb.publish("customer-a", incident(f"PG{t:03d}", seq=seq, assignment_group=DESK), message_id=f"pg-{t}-{seq}")
                if seq == per_ticket // 2 and t == 0:
                    stores[0].proc.send_signal(signal.SIGKILL)
                    stores[0].proc.wait()
        seen, order = set(), {}
        deadline = time.time() + 90
        while len(seen) < tickets * per_ticket and time.time() < deadline:
            for props, body in esb.take("sb.out.vendor-x", 200, timeout=1.0):
                if props.message_id not in seen:
                    seen.add(props.message_id)
                    m = json.loads(body)
                    order.setdefault(m["number"], []).append(m["seq"])
        assert len(seen) == tickets * per_ticket
        assert all(v == list(range(per_ticket)) for v in order.values())
        counters = seen_counters(stores[1])
        assert set(counters.values()) == {per_ticket} and len(counters) == tickets
        assert esb.depth("sb.parked") == 0 and stores[1].parked_count() == 0
    finally:
        for p in workers + [intake] + stores:
            p.stop()


def test_a_second_sqlite_store_waits_as_a_standby_and_takes_over(esb, vhost):
    first = Switchboard(vhost, extra_config=COUNTING_RULES, args=["store"], consumers=1).start()
    log_from = broker_log_lines_since(None)
    # Same database file: the second store must not serve it while the first does.
    standby = Switchboard(vhost, extra_config=COUNTING_RULES, args=["store"], consumers=0, data=first.data).start()
    intake = Switchboard(vhost, extra_config=COUNTING_RULES, args=["intake"], consumers=1).start()
    worker = Switchboard(vhost, extra_config=COUNTING_RULES, args=["worker", "--threads", "1", "--partitions", "0-7"],
                         consumers=1, env={"SB_STORE_TIMEOUT_MS": "2000"}).start()
    try:
        # The standby takes the queue over; the work goes on against the same file.
        time.sleep(3)
        assert_standby_takes_over(esb, first, standby, "STBY1", timeout=15)
        assert first.query("SELECT value FROM counter WHERE name = 'seen'") == [("2",)]
        # It waited by asking the queues' consumer counts, not by being refused (and reconnecting) every
        # second: each refusal is an error in the broker's log. (One may race a takeover.)
        refused = [l for l in broker_log_lines_since(log_from)
                   if ("in exclusive use" in l or "locked queue" in l) and vhost in l]
        assert len(refused) <= 2, refused
    finally:
        for p in (worker, intake, standby, first):
            p.stop()


def gauge(process, name):
    """A gauge's value in a process's /metrics (the first series of that name)."""
    for line in process.metrics().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_shares(intakes, total, timeout=30):
    """Waits until every intake in `intakes` consumes at least one inbound queue and together all `total`."""
    deadline = time.time() + timeout
    shares = []
    while time.time() < deadline:
        shares = [gauge(p, "switchboard_intake_queues_owned") for p in intakes]
        if all(s and s >= 1 for s in shares) and sum(shares) == total:
            return shares
        time.sleep(0.3)
    raise AssertionError(f"intake shares {shares}, expected {total} queues over {len(intakes)} intakes")


def test_two_active_intakes_share_the_inbound_queues_and_one_takes_over(esb, vhost):
    """Two intakes consume at once (each inbound queue by one of them); one is killed while both sides
    publish, and the other takes its queues over: nothing lost or applied twice, each ticket in order. A
    third joins and takes a share from the survivor without a stop."""
    store = Switchboard(vhost, extra_config=BOTH_SIDES_RULES, args=["store"], consumers=1).start()
    worker = Switchboard(vhost, extra_config=BOTH_SIDES_RULES, args=["worker", "--threads", "2"], consumers=1).start()
    first = Switchboard(vhost, extra_config=BOTH_SIDES_RULES, args=["intake"], consumers=1).start()
    second = Switchboard(vhost, extra_config=BOTH_SIDES_RULES, args=["intake"], consumers=1).start()
    third = None
    try:
        # sb.in.customer-a, sb.in.vendor-x and sb.in.unrouted, over two intakes: 2 and 1.
        assert sorted(wait_shares([first, second], 3)) == [1, 2]
        consumers = rabbitmqctl("list_consumers", "-p", vhost, "queue_name", "channel_pid")
        owners = {line.split()[0]: line.split()[1] for line in consumers.stdout.splitlines()
                  if line.startswith("sb.in.")}
        assert set(owners) == {"sb.in.customer-a", "sb.in.vendor-x", "sb.in.unrouted"}, consumers.stdout
        assert len(set(owners.values())) == 2, owners  # two connections' channels
        tickets, rounds = 15, 40
        threads = publish_sides(vhost, tickets, range(rounds), pause=0.1)
        time.sleep(1.5)
        first.stop(signal.SIGKILL)
        for th in threads:
            th.join(60)
        # An inbound message the killed intake had routed but not acked is routed again by the other: the
        # worker applies it once and sends its stored outbound message again, with the same message_id.
        to_vendor = take_unique(esb, "sb.out.vendor-x", tickets * rounds, timeout=90)
        to_customer = take_unique(esb, "sb.out.customer-a", tickets * rounds, timeout=90)
        assert_each_once_in_order(to_vendor, tickets, range(rounds))
        assert_each_once_in_order(to_customer, tickets, range(rounds))
        assert wait_shares([second], 3) == [3]
        # Whatever still arrives of the first round is a re-sent copy (a message_id seen already).
        first_round = {props.message_id for props, _ in to_vendor + to_customer}
        late = esb.drain("sb.out.vendor-x", quiet=1) + esb.drain("sb.out.customer-a", quiet=0.2)
        assert all(props.message_id in first_round for props, _ in late), late
        # A third intake joins: the survivor hands it a share (graceful: its loop stops, the other's starts).
        third = Switchboard(vhost, extra_config=BOTH_SIDES_RULES, args=["intake"], consumers=1).start()
        assert sorted(wait_shares([second, third], 3)) == [1, 2]
        more = range(rounds, rounds + 10)
        for th in publish_sides(vhost, tickets, more):
            th.join(60)
        assert_each_once_in_order(take_unique(esb, "sb.out.vendor-x", tickets * 10, 60), tickets, more)
        assert_each_once_in_order(take_unique(esb, "sb.out.customer-a", tickets * 10, 60), tickets, more)
        assert esb.depth("sb.parked") == 0 and store.parked_count() == 0
    finally:
        for p in (third, second, first, worker, store):
            if p:
                p.stop()


def test_heartbeats_are_not_queued_behind_a_backlog_of_store_requests(esb, vhost):
    """A worker's heartbeats go to sb.store.members, served by a loop of their own in the store process: a
    backlog in sb.store longer than the store timeout (here 2 s) does not make a heartbeat time out, so the
    worker stays a member (ready, no failure logged) while the backlog drains."""
    env = {"SB_STORE_TIMEOUT_MS": "2000"}
    store = Switchboard(vhost, args=["store"], consumers=1, env=env).start()
    worker = Switchboard(vhost, args=["worker"], consumers=1, env=env).start()
    try:
        # Slow requests as an older worker sends them (the JSON form): lookups of 300 tickets each.
        reply = esb.ch.queue_declare("", exclusive=True).method.queue
        lookup = json.dumps({"batch": [[{"endpoint": "customer-a", "ticketId": f"HB{n}"}] for n in range(300)]}).encode()
        sent = 0
        began = time.time()
        while esb.depth("sb.store") < 1500 and sent < 20000:
            for _ in range(250):
                esb.ch.basic_publish("", "sb.store", lookup, pika.BasicProperties(
                    type="findBatch", reply_to=reply, correlation_id=str(sent), expiration="120000"))
                sent += 1
        states = []
        while esb.depth("sb.store") > 0 and time.time() - began < 120:
            states.append(worker.ready()[0])
            time.sleep(0.25)
        drained = time.time() - began
        assert drained > 4, f"the backlog ({sent} requests) drained in {drained:.1f} s: too short to show anything"
        assert states and all(s == 200 for s in states), (states, worker.output()[-3000:])
        assert "heartbeat to the store failed" not in worker.output(), worker.output()[-3000:]
        assert esb.depth(reply) > 0, "the backlog was served"
        owned = [line for line in worker.metrics().splitlines() if line.startswith("switchboard_partitions_owned")]
        assert owned and float(owned[0].split()[-1]) == 8, owned
    finally:
        assert worker.stop() == 0 and store.stop() == 0


def test_a_second_run_with_a_store_of_its_own_on_one_vhost_refuses_to_start(esb, vhost):
    """Two `switchboard run` with separate SQLite stores on one vhost would split conversations between
    two files; the second says so and exits, and the first goes on serving."""
    import uuid
    from conftest import incident
    first = Switchboard(vhost).start()
    second = Switchboard(vhost, consumers=0).start()
    try:
        assert second.proc.wait(timeout=30) != 0
        out = second.output()
        assert "another Switchboard store already serves 'sb.store'" in out and "split conversations" in out, out
        number = "INC" + uuid.uuid4().hex[:7]
        esb.publish("customer-a", incident(number), message_id=f"{number}-1")
        assert len(esb.take("sb.out.vendor-x", 1, timeout=20)) == 1
    finally:
        assert first.stop() == 0
