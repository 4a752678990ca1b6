"""Roles as separate processes of the one binary (the first part of the fleet issue)."""
import json
import time

from conftest import Switchboard, incident

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
    intake = Switchboard(vhost, extra_config=ORDER_RULES, args=["intake"], consumers=1).start()
    a = Switchboard(vhost, extra_config=ORDER_RULES, data=intake.data, args=["worker", "--partitions", "0-3"], consumers=2).start()
    b = Switchboard(vhost, extra_config=ORDER_RULES, data=intake.data, args=["worker", "--partitions", "4-7"], consumers=2).start()
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
        with intake.db() as db:
            assert db.execute("SELECT count(*) FROM processed WHERE message_id LIKE 'o-%'").fetchone()[0] == tickets * per_ticket
        assert "worker-0" in a.output() and "worker-0" in b.output()
    finally:
        for p in (b, a, intake):
            assert p.stop() == 0


def test_a_partition_has_one_worker_and_is_taken_over_when_it_leaves(esb, vhost):
    intake = Switchboard(vhost, extra_config=ORDER_RULES, args=["intake"], consumers=1).start()
    first = Switchboard(vhost, extra_config=ORDER_RULES, data=intake.data, args=["worker", "--threads", "1"], consumers=1).start()
    # A second worker for the same partitions is refused by the broker (exclusive consumer) and waits.
    second = Switchboard(vhost, extra_config=ORDER_RULES, data=intake.data, args=["worker", "--threads", "1"], consumers=0)
    second.start()
    try:
        deadline = time.time() + 15
        while "exclusive" not in second.output().lower() and time.time() < deadline:
            time.sleep(0.2)
        assert "exclusive" in second.output().lower() or "access_refused" in second.output().lower(), second.output()
        esb.publish("customer-a", incident("TAKE1", seq=0, assignment_group=DESK), message_id="take-0")
        assert len(esb.take("sb.out.vendor-x", 1, timeout=10)) == 1
        assert first.stop() == 0
        # The waiting worker takes the partitions over within seconds.
        esb.publish("customer-a", incident("TAKE1", seq=1, assignment_group=DESK), message_id="take-1")
        got = esb.take("sb.out.vendor-x", 1, timeout=15)
        assert [json.loads(b)["seq"] for _, b in got] == [1]
        assert "consuming" in second.output()
    finally:
        for p in (second, first, intake):
            p.stop()
