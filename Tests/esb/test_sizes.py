"""Sizes are bounded end to end: a burst of the largest messages the broker accepts does not kill an
intake under the Kubernetes manifest's memory limit (its prefetch is bounded by SB_INTAKE_MEMORY_BYTES),
an ESB header table near the frame size is parked without it instead of wedging its endpoint, and store
answers over the request limit are refused and asked for again in halves."""
import json
import os
import signal
import time
import uuid

import pika
import pytest

from conftest import ESB, Switchboard, fresh_vhost, incident

VENDOR_ECHO = """
rules:
  - name: test-vendor-echo
    priority: 1000
    from: vendor-x
    when: {field: $.seq, exists: true}
    stop: true
    send: [{to: customer-a, type: update, body: {seq: {field: $.seq}}}]
"""
CGROUP_ROOT = "/sys/fs/cgroup/memory"
BIG = 15 << 20
COUNT = 20


def memory_cgroup(limit):
    """A cgroup v1 memory group limited to `limit` bytes (no swap), or None where none can be made."""
    path = os.path.join(CGROUP_ROOT, "sb-test-" + uuid.uuid4().hex[:8])
    try:
        os.mkdir(path)
        with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
            f.write(str(limit))
        swap = os.path.join(path, "memory.memsw.limit_in_bytes")
        if os.path.exists(swap):
            with open(swap, "w") as f:
                f.write(str(limit))
        return path
    except OSError:
        return None


def in_cgroup(path):
    """A command prefix that moves the process into the cgroup, then execs the rest."""
    return ["sh", "-c", f'echo $$ > {path}/cgroup.procs && exec "$@"', "sh"]


@pytest.fixture
def sizes_vhost():
    yield from fresh_vhost("sb-test-sizes-")


def test_a_burst_of_the_largest_messages_does_not_kill_an_intake_under_its_memory_limit(sizes_vhost):
    vhost = sizes_vhost
    limit = 512 << 20  # Deploy/kubernetes/intake.yaml
    cgroup = memory_cgroup(limit)
    if cgroup is None:
        pytest.skip("no writable cgroup v1 memory controller here (run as root)")
    env = {"SB_INTAKE_MEMORY_BYTES": os.environ.get("SB_TEST_INTAKE_MEMORY_BYTES", str(256 << 20)),
           "SB_BROKER_MAX_MESSAGE_BYTES": str(16 << 20)}
    store = Switchboard(vhost, args=["store"], consumers=1, extra_config=VENDOR_ECHO)
    intake = Switchboard(vhost, args=["intake"], consumers=1, env=env, extra_config=VENDOR_ECHO, wrap=in_cgroup(cgroup))
    worker = Switchboard(vhost, args=["worker"], consumers=1, extra_config=VENDOR_ECHO)
    esb = None
    try:
        for p in (store, worker):
            p.start()
        esb = ESB(vhost)
        # A backlog (an intake restarted after an outage): the broker hands a starting intake its whole
        # window at once. COUNT messages of 15 MiB wait in one endpoint's queue, small ones in another's.
        big = json.dumps(incident("INC-BIG", description="x" * BIG)).encode()
        props = pika.BasicProperties(content_type="application/json", delivery_mode=2)
        for n in range(COUNT):
            esb.ch.basic_publish("sb.in", "customer-a", big, props)
            esb.publish("vendor-x", {"issue": {"key": f"VX-S{n % 4}"}, "webhookEvent": "jira:issue_updated", "seq": n},
                        message_id=f"vx-{n}")
        intake.start()
        got = esb.take("sb.out.customer-a", COUNT, timeout=120)
        with open(os.path.join(cgroup, "memory.max_usage_in_bytes")) as f:
            peak = int(f.read())
        print(f"intake peak memory {peak >> 20} MiB of {limit >> 20} MiB")
        assert intake.proc.poll() is None, "the intake died (the kernel's OOM killer?):\n" + intake.output()[-3000:]
        assert sorted(json.loads(b)["seq"] for _, b in got) == list(range(COUNT))
        # Every big one parked (over max_message_bytes), none lost.
        deadline = time.time() + 240
        while store.parked_count() < COUNT and time.time() < deadline:
            time.sleep(1)
        assert store.parked_count() == COUNT
        parked = [line for line in intake.output().splitlines() if "message parked" in line]
        assert len(parked) == COUNT and all(f"message of {len(big)} bytes exceeds the limit" in line for line in parked), parked[:3]
        assert intake.proc.poll() is None
    finally:
        if esb:
            esb.close()
        for p in (worker, intake, store):
            p.stop()
        try:
            os.rmdir(cgroup)
        except OSError:
            pass


def test_a_header_table_near_the_frame_size_is_parked_without_it_and_the_endpoint_goes_on(esb, switchboard):
    """An ESB's headers of ~100 KiB fit its own publish (frame 128 KiB) but not ours, which carries them as
    data beside our own: parked without them, with a reason naming the size; the next message flows."""
    number = "INC" + uuid.uuid4().hex[:7]
    headers = {f"h{n:04d}": "v" * 1000 for n in range(100)}
    esb.ch.basic_publish("sb.in", "customer-a", json.dumps(incident(number)).encode(), pika.BasicProperties(
        message_id="big-headers", content_type="application/json", delivery_mode=2, headers=headers))
    esb.publish("customer-a", incident(number, priority="1"), message_id="after-big-headers")
    [(p, body)] = switchboard.take_parked(1, timeout=20)
    assert p.message_id == "big-headers" and json.loads(body)["number"] == number
    assert "over the limit of 32768 bytes (settings.max_header_bytes); parked without them (100 header(s): h0000" in p.reason, p.reason
    assert p.headers["x-sb-original"]["properties"].get("headers") is None
    out = esb.take("sb.out.vendor-x", 1, timeout=20)
    assert len(out) == 1 and out[0][0].correlation_id == "after-big-headers"


STORE_NOTES = """
rules:
  - name: test-note
    priority: 1000
    from: customer-a
    when: {field: $.seq, exists: true}
    stop: true
    set: [{attribute: note, value: {field: $.note}}]
    send: [{to: vendor-x, type: update, body: {number: {field: $.number}, seq: {field: $.seq}}}]
"""


def test_store_answers_over_the_request_limit_are_asked_for_in_halves(esb, vhost):
    """With store requests (and answers) limited to 300 kB, ten conversations holding 100 kB notes make one
    batch's lookup answer about 1 MB: the store refuses it, the worker asks again in halves, and every
    update goes through once."""
    env = {"SB_STORE_MAX_REQUEST_BYTES": "300000"}
    store = Switchboard(vhost, args=["store"], consumers=1, env=env, extra_config=STORE_NOTES)
    intake = Switchboard(vhost, args=["intake"], consumers=1, env=env, extra_config=STORE_NOTES)
    worker = Switchboard(vhost, args=["worker", "--threads", "1"], consumers=1, env=env, extra_config=STORE_NOTES)
    try:
        for p in (store, intake, worker):
            p.start()
        tickets = [f"HALF{t}" for t in range(10)]
        for t in tickets:
            esb.publish("customer-a", incident(t, seq=0, note="n" * 100_000), message_id=f"{t}-0")
        assert len(esb.take("sb.out.vendor-x", 10, timeout=60)) == 10
        # The next updates wait for the worker, so that they come to it as one batch.
        worker.proc.send_signal(signal.SIGSTOP)
        for t in tickets:
            esb.publish("customer-a", incident(t, seq=1, note="m" * 1000), message_id=f"{t}-1")
        time.sleep(1)
        worker.proc.send_signal(signal.SIGCONT)
        out = esb.take("sb.out.vendor-x", 10, timeout=60) + esb.drain("sb.out.vendor-x", quiet=1.0)
        assert sorted(json.loads(b)["number"] for _, b in out) == sorted(tickets)
        assert all(json.loads(b)["seq"] == 1 for _, b in out)
        assert "the answer is too large" in store.output(), store.output()[-3000:]
        assert store.parked_count() == 0
    finally:
        for p in (worker, intake, store):
            assert p.stop() == 0
