"""The configuration we ship: quorum queues (settings.queue_type: quorum) with Deploy/rabbitmq/apply.sh's
policy on the data queues. RabbitMQ ignores `exclusive` on a quorum queue, so the broker's guard for one
consumer per inbound queue and work partition is `x-single-active-consumer`."""
import json
import threading

import pika
import pytest

from conftest import (AMQP_HOST, AMQP_PORT, BOTH_SIDES_RULES, ESB, Switchboard, assert_each_once_in_order, fresh_vhost,
                      publish_sides, rabbitmqctl, take_unique)

PARTITIONS = 8


@pytest.fixture
def quorum_vhost():
    vhost = next(gen := fresh_vhost("sb-test-quorum-"))
    # The production policy (Deploy/rabbitmq/apply.sh), with a low delivery limit.
    r = rabbitmqctl("set_policy", "-p", vhost, "--apply-to", "queues", "--priority", "10", "sb-data", r"^sb\.(in|out|work)\.",
                    json.dumps({"delivery-limit": 5, "dead-letter-exchange": "", "dead-letter-routing-key": "sb.parked",
                                "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}))
    assert r.returncode == 0, r.stderr
    yield vhost
    next(gen, None)


class Intruder:
    """A second consumer beside Switchboard on the given queues (exclusive asked, as a careless tool
    would): counts what it receives and never acknowledges."""

    def __init__(self, vhost, queues):
        self.received = 0
        self.conn = pika.BlockingConnection(pika.ConnectionParameters(host=AMQP_HOST, port=AMQP_PORT, virtual_host=vhost))
        self.ch = self.conn.channel()
        self.ch.basic_qos(prefetch_count=1000)
        for q in queues:
            self.ch.basic_consume(q, self.take, exclusive=True)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def take(self, ch, method, props, body):
        self.received += 1

    def run(self):
        while not self.stop.is_set():
            self.conn.process_data_events(time_limit=0.2)

    def close(self):
        self.stop.set()
        self.thread.join()
        self.conn.close()


def test_a_second_consumer_on_quorum_inbound_queues_and_partitions_receives_nothing(quorum_vhost):
    vhost = quorum_vhost
    sb = Switchboard(vhost, extra_config=BOTH_SIDES_RULES, env={"SB_QUEUE_TYPE": "quorum"}).start()
    esb = ESB(vhost)
    intruder = None
    try:
        queues = ["sb.in.customer-a", "sb.in.vendor-x"] + [f"sb.work.{p}" for p in range(PARTITIONS)]
        args = {q["name"]: q.get("arguments", {}) for q in __import__("conftest").mgmt("GET", f"/api/queues/{vhost}")}
        for q in queues:
            assert args[q].get("x-queue-type") == "quorum" and args[q].get("x-single-active-consumer") is True, (q, args[q])
        intruder = Intruder(vhost, queues)
        tickets, seqs = 15, range(5)
        for t in publish_sides(vhost, tickets, seqs):
            t.join()
        out_x = take_unique(esb, "sb.out.vendor-x", tickets * len(seqs), timeout=60)
        out_a = take_unique(esb, "sb.out.customer-a", tickets * len(seqs), timeout=60)
        assert_each_once_in_order(out_x, tickets, seqs)
        assert_each_once_in_order(out_a, tickets, seqs)
        assert intruder.received == 0
        assert esb.depth("sb.parked") == 0 and sb.parked_count() == 0
    finally:
        if intruder:
            intruder.close()
        esb.close()
        assert sb.stop() == 0


def test_two_intakes_started_while_the_store_is_down_keep_each_tickets_order(quorum_vhost):
    """Two intakes that start together with no store to agree through: each may take every inbound queue
    it finds free, and the broker lets only one consumer of each quorum queue be active. Messages flow
    (intake needs no store), one intake is killed -9 holding a window (its unacked messages return to a
    waiting consumer: the order risk), the store and a worker come later: every update once, in order."""
    import signal
    import time
    vhost = quorum_vhost
    env = {"SB_QUEUE_TYPE": "quorum"}
    intakes = [Switchboard(vhost, extra_config=BOTH_SIDES_RULES, args=["intake"], consumers=0, env=env) for _ in range(2)]
    store = Switchboard(vhost, extra_config=BOTH_SIDES_RULES, args=["store"], consumers=1, env=env)
    worker = Switchboard(vhost, extra_config=BOTH_SIDES_RULES, args=["worker", "--threads", "2"], consumers=1, env=env)
    esb = ESB(vhost)
    try:
        for p in intakes:
            p.start()
        deadline = time.time() + 30
        while not all(p.ready()[0] == 200 for p in intakes) and time.time() < deadline:
            time.sleep(0.2)
        tickets, seqs = 8, range(6)
        threads = publish_sides(vhost, tickets, seqs, pause=0.3)
        time.sleep(0.8)
        intakes[0].proc.send_signal(signal.SIGKILL)
        intakes[0].proc.wait()
        for t in threads:
            t.join()
        store.start()
        worker.start()
        out_x = take_unique(esb, "sb.out.vendor-x", tickets * len(seqs), timeout=90)
        out_a = take_unique(esb, "sb.out.customer-a", tickets * len(seqs), timeout=90)
        assert_each_once_in_order(out_x, tickets, seqs)
        assert_each_once_in_order(out_a, tickets, seqs)
        assert esb.depth("sb.parked") == 0 and store.parked_count() == 0
    finally:
        esb.close()
        for p in (worker, store, *intakes):
            p.stop()
