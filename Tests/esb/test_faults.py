"""Crash safety under faults, on each store backend: kill -9 workers again and again, kill -9 the store
once, cut every broker connection once. Afterwards every effect happened exactly once and every
ticket's messages left in order."""
import json
import os
import random
import signal
import time

import pytest

from conftest import COUNTING_RULES, Switchboard, broker_log_lines_since, incident, rabbitmqctl_ok, rabbitmqctl, seen_counters

DESK = {"value": "g2", "display_value": "Service Desk"}
PARTITIONS = ["0-2", "3-5", "6-7"]


def publish_backlog(esb, tickets, per_ticket, prefix):
    for seq in range(per_ticket):
        for t in range(tickets):
            esb.publish("customer-a", incident(f"{prefix}{t:04d}", seq=seq, assignment_group=DESK),
                        message_id=f"{prefix.lower()}-{t}-{seq}")


def take_outbound(esb, seen, first_order):
    for props, body in esb.take("sb.out.vendor-x", 500, timeout=0.5):
        if props.message_id not in seen:
            seen.add(props.message_id)
            m = json.loads(body)
            first_order.setdefault(m["number"], []).append(m["seq"])


def assert_exactly_once_in_order(esb, the_store, seen, first_order, tickets, per_ticket):
    total = tickets * per_ticket
    seen_more = esb.drain("sb.out.vendor-x", quiet=2.0)
    seen.update(p.message_id for p, _ in seen_more)
    # Every inbound message produced exactly one distinct outbound message id.
    assert len(seen) == total
    # Each ticket's outbound messages first arrived in the order its inbound messages were sent.
    assert all(order == list(range(per_ticket)) for order in first_order.values()), \
        {k: v for k, v in first_order.items() if v != list(range(per_ticket))}
    counters = seen_counters(the_store)
    assert len(counters) == tickets
    assert set(counters.values()) == {per_ticket}, "a counter was applied twice or not at all"
    assert the_store.query("SELECT count(*) FROM processed WHERE endpoint = 'customer-a'") == [(str(total),)]
    assert esb.depth("sb.parked") == 0 and the_store.parked_count() == 0
    for q in ["sb.in.customer-a"] + [f"sb.work.{p}" for p in range(8)]:
        assert esb.depth(q) == 0, q


def kill(process):
    process.proc.send_signal(signal.SIGKILL)
    process.proc.wait()


def cut_all_connections(esb, vhost):
    assert rabbitmqctl("close_all_connections", "-p", vhost, "test: connection loss").returncode == 0
    time.sleep(0.5)
    esb.connect()
    return True


def test_kill_workers_and_the_store_and_cut_connections_lose_nothing_and_double_nothing(esb, vhost, store_url):
    if not rabbitmqctl_ok():
        pytest.skip("the broker is not the one Deploy/local/rabbitmq.sh started")
    tickets, per_ticket = 200, int(os.environ.get("SB_FAULT_MESSAGES_PER_TICKET", "50"))
    total = tickets * per_ticket
    # Workers give up on an unanswered store call after 2 s (their batch goes back to the queue).
    env = {"SB_STORE_TIMEOUT_MS": "2000"}

    def store():
        return Switchboard(vhost, extra_config=COUNTING_RULES, args=["store"], consumers=1, store_url=store_url,
                           env=env, data=os.path.join(intake.dir, "store-data")).start()

    intake = Switchboard(vhost, extra_config=COUNTING_RULES, args=["intake"], consumers=1)
    intake.start()
    the_store = store()

    def worker(i):
        return Switchboard(vhost, extra_config=COUNTING_RULES, env=env,
                           args=["worker", "--partitions", PARTITIONS[i], "--threads", "1"], consumers=1).start()

    workers = []
    kills = 0
    store_killed = False
    try:
        # The backlog first, so the faults below hit a pipeline that is busy all along.
        publish_backlog(esb, tickets, per_ticket, "F")
        workers = [worker(i) for i in range(3)]
        seen, first_order = set(), {}
        deadline = time.time() + 240
        next_kill = time.time() + 2.0
        cut = False
        started = time.time()
        while len(seen) < total and time.time() < deadline:
            take_outbound(esb, seen, first_order)
            if time.time() >= next_kill and len(seen) < total * 0.9:
                i = random.randrange(3)
                kill(workers[i])
                kills += 1
                workers[i] = worker(i)
                next_kill = time.time() + 2.0
            if not store_killed and len(seen) > total // 3:
                kill(the_store)
                store_killed = True
                time.sleep(1.0)
                the_store = store()
            if not cut and len(seen) > total // 2:
                cut = cut_all_connections(esb, vhost)
        print(f"faults ({store_url.split('?')[0]}): {total} messages, {kills} workers and the store killed with SIGKILL, "
              f"connections cut once; {time.time() - started:.1f} s")
        assert kills >= 2, "the run ended before the workers could be killed"
        assert cut and store_killed
        assert_exactly_once_in_order(esb, the_store, seen, first_order, tickets, per_ticket)
    finally:
        for w in workers:
            w.stop()
        intake.stop()
        the_store.stop()


def test_a_run_whose_partitions_move_to_worker_processes_and_back_keeps_order_and_loses_nothing(esb, vhost):
    """`switchboard run` evaluates its own partitions' messages in intake (fused) and routes the others;
    worker processes that join, die (kill -9) and come back move partitions between it and them again and
    again, and the run itself is killed -9 once: still exactly once, in order."""
    if not rabbitmqctl_ok():
        pytest.skip("the broker is not the one Deploy/local/rabbitmq.sh started")
    tickets, per_ticket = 200, int(os.environ.get("SB_FAULT_MESSAGES_PER_TICKET", "50"))
    total = tickets * per_ticket
    env = {"SB_STORE_TIMEOUT_MS": "2000"}
    run = Switchboard(vhost, extra_config=COUNTING_RULES, env=env)

    def start_run():
        return Switchboard(vhost, extra_config=COUNTING_RULES, env=env, data=run.data).start()

    def worker():
        return Switchboard(vhost, extra_config=COUNTING_RULES, env=env, args=["worker", "--threads", "1"],
                           consumers=0).start()

    first_run = run.start()
    workers = []
    kills = 0
    run_killed = False
    try:
        workers = [worker(), worker()]
        seen, first_order = set(), {}
        rounds = 0
        deadline = time.time() + 240
        next_kill = time.time() + 1.0
        cut = False
        started = time.time()
        while len(seen) < total and time.time() < deadline:
            # One message per ticket at a time, so the faults below hit a pipeline that is fed all along.
            if rounds < per_ticket:
                for t in range(tickets):
                    esb.publish("customer-a", incident(f"R{t:04d}", seq=rounds, assignment_group=DESK),
                                message_id=f"r-{t}-{rounds}")
                rounds += 1
            take_outbound(esb, seen, first_order)
            if time.time() >= next_kill and len(seen) < total * 0.9:
                i = random.randrange(len(workers))
                kill(workers[i])
                kills += 1
                workers[i] = worker()
                next_kill = time.time() + 1.5
            if not run_killed and len(seen) > total // 3:
                kill(run)
                run_killed = True
                run = start_run()
            if not cut and len(seen) > total // 2:
                cut = cut_all_connections(esb, vhost)
        print(f"faults (run + worker processes): {total} messages, {kills} workers and the run killed with SIGKILL, "
              f"connections cut once; {time.time() - started:.1f} s")
        assert kills >= 2, "the run ended before the workers could be killed"
        assert cut and run_killed
        assert_exactly_once_in_order(esb, run, seen, first_order, tickets, per_ticket)
        # The run evaluated its partitions' messages in intake, and the set changed as workers came and went.
        changes = [line for line in first_run.output().splitlines() if "intake evaluates" in line]
        assert len(set(line.split("sb.direct=")[1].split()[0] for line in changes)) >= 2, changes
    finally:
        for w in workers:
            w.stop()
        run.stop()


def test_a_worker_frozen_past_the_heartbeat_timeout_steps_back_when_it_wakes(esb, vhost):
    """SIGSTOP one of two workers while a backlog flows, for longer than the broker's heartbeat timeout: the
    broker drops its connection (its unacked batch goes back, in order), the other worker takes its
    partitions; SIGCONT: whatever it held in hand is stale (its connection is gone, its commits meet newer
    versions or already-processed ids), so nothing is applied twice or out of order, and it rejoins."""
    tickets, per_ticket = 100, 40
    total = tickets * per_ticket
    env = {"SB_STORE_TIMEOUT_MS": "2000", "SB_HEARTBEAT_SECONDS": "3"}
    log_from = broker_log_lines_since(None)
    intake = Switchboard(vhost, extra_config=COUNTING_RULES, args=["intake"], env=env).start()
    the_store = Switchboard(vhost, extra_config=COUNTING_RULES, args=["store"], env=env,
                            data=os.path.join(intake.dir, "store-data")).start()
    workers = []
    try:
        workers = [Switchboard(vhost, extra_config=COUNTING_RULES, env=env, args=["worker", "--threads", "1"]).start()
                   for _ in range(2)]
        publish_backlog(esb, tickets, per_ticket, "Z")
        seen, first_order = set(), {}
        deadline = time.time() + 180
        while len(seen) < total // 4 and time.time() < deadline:
            take_outbound(esb, seen, first_order)
        frozen = workers[0]
        frozen.proc.send_signal(signal.SIGSTOP)
        stopped_at, before = time.time(), len(seen)
        # Three heartbeat intervals and more: the broker has given up on it, the other worker has its partitions.
        while time.time() < stopped_at + 12:
            take_outbound(esb, seen, first_order)
        during = len(seen) - before
        frozen.proc.send_signal(signal.SIGCONT)
        while len(seen) < total and time.time() < deadline:
            take_outbound(esb, seen, first_order)
        print(f"stall: {total} messages; {during} went out while one of two workers was frozen for 12 s")
        assert during > 0, "nothing went out while the worker was frozen: its partitions did not move"
        assert frozen.proc.poll() is None, frozen.output()[-3000:]
        # It noticed that its connection was gone and came back as a member of the fleet, ready. (Once in a
        # fresh-clone run it took longer than 30 s: its log stopped at the first failed reconnect, as if a
        # broker call waited out the 30 s RPC timeout; 60 s, and the log in the message if it happens again.)
        deadline = time.time() + 60
        while frozen.ready()[0] != 200 and time.time() < deadline:
            time.sleep(0.2)
        if frozen.ready()[0] != 200:
            # Whole, in the captured output (an assertion's text is cut): the log and where each thread waits.
            print("readiness:", json.dumps(frozen.ready()[1], indent=1))
            print("log of the frozen worker:\n" + frozen.output()[-20000:])
            print("its threads:\n" + frozen.threads()[-40000:])
            print("the broker's connections:\n" + rabbitmqctl("list_connections", "-p", vhost, "name", "state",
                                                              "send_pend", "recv_cnt", "send_cnt").stdout)
        assert frozen.ready()[0] == 200, frozen.ready()
        woke = frozen.output()
        print("\n".join(l[:220] for l in woke.splitlines() if any(k in l for k in ("failed", "reconnected", "standing by", "assigned", "stale", "already applied"))))
        assert "broker connection failed" in woke or "batch failed" in woke or "reconnected" in woke, woke[-3000:]
        assert_exactly_once_in_order(esb, the_store, seen, first_order, tickets, per_ticket)
        # A standby's refused exclusive consume is acknowledged on its own channel (a close-ok on another
        # channel is a protocol error: the broker logged "unimplemented method" for each retry).
        assert not [l for l in broker_log_lines_since(log_from) if "unimplemented method" in l]
    finally:
        for w in workers:
            w.proc.send_signal(signal.SIGCONT)
            w.stop()
        intake.stop()
        the_store.stop()


def test_a_quiet_worker_leaves_no_store_connection_to_die_in_its_pool(esb, vhost):
    """A worker's store client keeps a few connections for its threads; one that sits in the pool services
    no AMQP heartbeat, and after two missed intervals the broker closes it: the next batch to borrow it
    failed and went back to its queue for nothing. A pooled connection idle for a heartbeat interval is
    closed instead. Traffic on two worker threads (two or three pooled connections), then quiet for four
    heartbeat intervals, then traffic again: the broker closed none of the worker's connections for missed
    heartbeats, and no batch or heartbeat failed."""
    env = {"SB_HEARTBEAT_SECONDS": "1"}
    intake = Switchboard(vhost, extra_config=COUNTING_RULES, args=["intake"], env=env).start()
    the_store = Switchboard(vhost, extra_config=COUNTING_RULES, args=["store"], env=env,
                            data=os.path.join(intake.dir, "store-data")).start()
    worker = Switchboard(vhost, extra_config=COUNTING_RULES, env=env, args=["worker", "--threads", "2"]).start()
    try:
        log_from = broker_log_lines_since(None)
        seen, first_order = set(), {}
        for burst, quiet in (("Q", 4.5), ("S", 0)):
            publish_backlog(esb, 40, 10, burst)
            deadline = time.time() + 60
            while len(seen) < (400 if burst == "Q" else 800) and time.time() < deadline:
                take_outbound(esb, seen, first_order)
            time.sleep(quiet)
        assert len(seen) == 800
        # "<0.123.0> closing AMQP connection <0.123.0> (... - switchboard store client pid N):", then
        # "<0.123.0> missed heartbeats from client, timeout: 1s": which of the worker's connections died so.
        lines = broker_log_lines_since(log_from)
        names = {l.split()[2]: l for l in lines if "closing AMQP connection" in l}
        died = [names.get(l.split()[2], l) for l in lines if "missed heartbeats from client" in l]
        ours = [l for l in died if f"pid {worker.proc.pid})" in l]
        assert not ours, "the broker closed the worker's idle connections for missed heartbeats:\n" + "\n".join(ours)
        out = worker.output()
        assert "batch failed" not in out and "heartbeat to the store failed" not in out, out[-3000:]
    finally:
        worker.stop()
        intake.stop()
        the_store.stop()
