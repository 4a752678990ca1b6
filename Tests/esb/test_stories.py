"""Issue 3: the two stories users bought us for, end to end through the real broker, from Config/."""
import json
import subprocess
import time
import uuid

import pytest

from conftest import BINARY, mgmt, Switchboard, incident, jira, start_shape

DELAY = 0.4          # LOCK_RETRY_DELAY for these tests, seconds
MAX = 10             # LOCK_RETRY_MAX


def story_env(delay=DELAY, max_retries=MAX):
    return {"LOCK_RETRY_DELAY": f"{int(delay * 1000)}ms", "LOCK_RETRY_MAX": str(max_retries)}


def open_ticket_at_vendor(esb, number, key):
    """A assigns a ticket to SAP Support; X's ESB acks the create with its key. Returns the create."""
    esb.publish("customer-a", incident(number), message_id=f"{number}-create")
    [(create, _)] = esb.take("sb.out.vendor-x", 1)
    esb.publish("vendor-x", {"status": "ok", "key": key}, type="ack", correlation_id=create.message_id,
                message_id=f"{number}-create-ack")
    return create


def error_ack(esb, props, n):
    """Like many ESBs: no message_id, and the same body every time; only the correlation_id differs."""
    esb.publish("vendor-x", {"status": "error", "code": "LOCKED", "message": "ticket is open on a screen"},
                type="ack", correlation_id=props.message_id)


def test_hand_back_to_the_group_it_came_from(esb, vhost):
    sb = Switchboard(vhost, env=story_env()).start()
    try:
        number, key = "INC" + uuid.uuid4().hex[:7], "VX-" + uuid.uuid4().hex[:5]
        local = {"value": "g-local-7", "display_value": "Local Service Desk"}
        # The ticket starts at A's local desk: nothing goes out, but the group is remembered.
        esb.publish("customer-a", incident(number, assignment_group=local), message_id="hb-1")
        time.sleep(0.5)
        assert esb.drain("sb.out.vendor-x", quiet=0.5) == []
        # A reassigns it to SAP Support: created at the vendor.
        esb.publish("customer-a", incident(number), message_id="hb-2")
        [(create, _)] = esb.take("sb.out.vendor-x", 1)
        esb.publish("vendor-x", {"status": "ok", "key": key}, type="ack", correlation_id=create.message_id, message_id="hb-3")
        esb.publish("vendor-x", jira(key, number, status="In Progress", user="Vera Vendor"), message_id="hb-4")
        [(progress, _)] = esb.take("sb.out.customer-a", 1)
        assert progress.headers["x-sb-rule"] == "vendor-update-to-customer"
        # Weeks later the vendor hands it back. Neither ticket still says where it came from.
        esb.publish("vendor-x", jira(key, number, status="Returned to customer", user="Vera Vendor"), message_id="hb-5")
        [(back, body)] = esb.take("sb.out.customer-a", 1)
        assert back.headers["x-sb-rule"] == "hand-back-to-customer"
        assert back.type == "update"
        assert json.loads(body) == {"number": number, "assignment_group": local,
                                    "comments": "Handed back by Vera Vendor (vendor X)"}
        shown = sb.timeline("vendor-x", key)
        assert 'attribute:  original_group = {"display_value":"Local Service Desk","value":"g-local-7"}' in shown
        assert "attribute       original_group: (none) -> " in shown
        assert f"linked vendor-x/{key}" in shown
    finally:
        assert sb.stop() == 0


@pytest.mark.parametrize("shape", ["run", "fleet"])
def test_locked_ticket_is_retried_then_the_customer_is_told(esb, vhost, shape):
    # "fleet": store, intake and a stateless worker as separate processes, so acks and timers go
    # through the store role over the broker.
    sb = start_shape(vhost, shape, env=story_env())
    try:
        number, key = "INC" + uuid.uuid4().hex[:7], "VX-" + uuid.uuid4().hex[:5]
        open_ticket_at_vendor(esb, number, key)
        esb.publish("customer-a", incident(number, short_description="Orders fail"), message_id="lk-1")
        arrivals, bodies = [], []
        # X's ESB: every update it receives, the target ticket is locked.
        while len(arrivals) < MAX + 2:
            got = esb.take("sb.out.vendor-x", 1, timeout=DELAY + 5)
            if not got:
                break
            props, body = got[0]
            arrivals.append(time.monotonic())
            bodies.append(json.loads(body))
            assert props.type == "update"
            error_ack(esb, props, len(arrivals))
        assert len(arrivals) == 1 + MAX, f"expected the update and {MAX} retries, got {len(arrivals)}"
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        assert all(g >= DELAY for g in gaps), gaps
        assert all(g <= DELAY + 1.0 for g in gaps), gaps
        # Every retry re-sends the same update, rebuilt from the conversation.
        assert all(b == bodies[0] for b in bodies)
        assert bodies[0]["key"] == key and bodies[0]["fields"]["summary"] == f"{number}: Orders fail"
        [(comment, body)] = esb.take("sb.out.customer-a", 1)
        assert comment.type == "comment"
        assert comment.headers["x-sb-rule"] == "retry:vendor-locked:give-up"
        assert json.loads(body) == {
            "number": number,
            "comments": "Update failed to reach the target. The target ticket is locked. Try again later"}
        assert esb.drain("sb.out.vendor-x", quiet=DELAY * 3) == []
        shown = sb.timeline("customer-a", number)
        assert shown.count("timer-fired") == MAX
        assert shown.count("delay-scheduled") == MAX
        assert "retry:vendor-locked:update: 9 -> 10" in shown
        assert "retry:vendor-locked:update: 10 -> 0" in shown
        assert shown.count("ack-error") == MAX + 1
    finally:
        assert sb.stop() == 0


def test_an_ok_ack_ends_the_retries(esb, vhost):
    sb = Switchboard(vhost, env=story_env()).start()
    try:
        number, key = "INC" + uuid.uuid4().hex[:7], "VX-" + uuid.uuid4().hex[:5]
        open_ticket_at_vendor(esb, number, key)
        esb.publish("customer-a", incident(number), message_id="ok-1")
        [(first, _)] = esb.take("sb.out.vendor-x", 1)
        error_ack(esb, first, 1)
        [(retry, _)] = esb.take("sb.out.vendor-x", 1, timeout=DELAY + 3)
        esb.publish("vendor-x", {"status": "ok"}, type="ack", correlation_id=retry.message_id, message_id="ok-ack")
        assert esb.drain("sb.out.vendor-x", quiet=DELAY * 4) == []
        assert esb.drain("sb.out.customer-a", quiet=0.2) == []
        assert "retry:vendor-locked:update: 1 -> 0" in sb.timeline("customer-a", number)
    finally:
        assert sb.stop() == 0


def test_a_newer_update_supersedes_the_pending_content(esb, vhost):
    sb = Switchboard(vhost, env=story_env(delay=1.5)).start()
    try:
        number, key = "INC" + uuid.uuid4().hex[:7], "VX-" + uuid.uuid4().hex[:5]
        open_ticket_at_vendor(esb, number, key)
        esb.publish("customer-a", incident(number, short_description="first words"), message_id="new-1")
        [(first, _)] = esb.take("sb.out.vendor-x", 1)
        error_ack(esb, first, 1)
        time.sleep(0.3)
        # While the retry waits, A updates the ticket again.
        esb.publish("customer-a", incident(number, short_description="newest words"), message_id="new-2")
        [(second, body)] = esb.take("sb.out.vendor-x", 1)
        assert json.loads(body)["fields"]["summary"] == f"{number}: newest words"
        [(retry, body)] = esb.take("sb.out.vendor-x", 1, timeout=5)
        assert retry.headers["x-sb-rule"] == "update-at-vendor"  # a send again keeps its rule (retry policy vendor-locked)
        assert json.loads(body)["fields"]["summary"] == f"{number}: newest words"
    finally:
        assert sb.stop() == 0


def test_a_delayed_retry_survives_a_restart(esb, vhost):
    env = story_env(delay=3.0)
    sb = Switchboard(vhost, env=env).start()
    number, key = "INC" + uuid.uuid4().hex[:7], "VX-" + uuid.uuid4().hex[:5]
    open_ticket_at_vendor(esb, number, key)
    esb.publish("customer-a", incident(number), message_id="rs-1")
    [(first, _)] = esb.take("sb.out.vendor-x", 1)
    error_ack(esb, first, 1)
    deadline = time.time() + 10
    while "delay-scheduled" not in sb.timeline("customer-a", number) and time.time() < deadline:
        time.sleep(0.1)
    scheduled = time.monotonic()
    assert sb.stop() == 0, "switchboard did not stop cleanly"
    # Switchboard is down while the retry is due: the delayed message waits in the broker.
    time.sleep(3.5)
    assert esb.drain("sb.out.vendor-x", quiet=0.2) == []
    sb2 = Switchboard(vhost, env=env, data=sb.data).start()
    try:
        [(retry, body)] = esb.take("sb.out.vendor-x", 1, timeout=10)
        assert time.monotonic() - scheduled >= 3.0
        assert retry.headers["x-sb-rule"] == "update-at-vendor"  # a send again keeps its rule (retry policy vendor-locked)
        assert json.loads(body)["key"] == key
    finally:
        assert sb2.stop() == 0


HOL_RULES = """
rules:
  - name: test-long-delay
    from: customer-a
    when: {field: $.delay_test, equals: long}
    stop: true
    send: [{to: vendor-x, type: comment, delay: 60s, body: {n: {field: $.number}}}]
  - name: test-short-delay
    from: customer-a
    when: {field: $.delay_test, equals: short}
    stop: true
    send: [{to: vendor-x, type: comment, delay: 1s, body: {n: {field: $.number}}}]
"""


def test_no_head_of_line_blocking_between_delays(esb, vhost):
    sb = Switchboard(vhost, extra_config=HOL_RULES).start()
    try:
        desk = {"value": "g2", "display_value": "Service Desk"}
        for i in range(500):
            esb.publish("customer-a", incident(f"LONG{i}", delay_test="long", assignment_group=desk), message_id=f"long-{i}")
        deadline = time.time() + 30
        while esb.depth("sb.delayq.60000") < 500 and time.time() < deadline:
            time.sleep(0.1)
        assert esb.depth("sb.delayq.60000") == 500
        # Delays wait in quorum queues that dead-letter at least once (not lost between expiry and sb.out).
        q = mgmt("GET", f"/api/queues/{vhost}/sb.delayq.60000")
        assert q["type"] == "quorum"
        assert q["arguments"]["x-dead-letter-strategy"] == "at-least-once"
        assert q["arguments"]["x-dead-letter-exchange"] == "sb.out"
        sent = time.monotonic()
        esb.publish("customer-a", incident("SHORT1", delay_test="short", assignment_group=desk), message_id="short-1")
        [(props, body)] = esb.take("sb.out.vendor-x", 1, timeout=10)
        waited = time.monotonic() - sent
        assert json.loads(body) == {"n": "SHORT1"}
        assert 1.0 <= waited <= 2.5, waited
        assert esb.depth("sb.delayq.60000") == 500
    finally:
        assert sb.stop() == 0
        esb.purge("sb.delayq.60000")


@pytest.mark.parametrize("shape", ["run", "fleet"])
def test_a_comment_to_a_locked_ticket_is_retried_then_the_customer_is_told(esb, vhost, shape, store_url):
    max_retries = 3
    env = story_env(max_retries=max_retries)
    sb = start_shape(vhost, shape, env=env, store_url=store_url)
    try:
        number, key = "INC" + uuid.uuid4().hex[:7], "VX-" + uuid.uuid4().hex[:5]
        open_ticket_at_vendor(esb, number, key)
        esb.publish("customer-a", incident(number, comments="Please restart the SAP gateway", sys_updated_by="carol"),
                    message_id="cm-1")
        bodies = []
        while len(bodies) < max_retries + 2:
            got = esb.take("sb.out.vendor-x", 1, timeout=DELAY + 5)
            if not got:
                break
            props, body = got[0]
            assert props.type == "comment", props.type
            bodies.append(json.loads(body))
            error_ack(esb, props, len(bodies))
        assert len(bodies) == 1 + max_retries
        assert all(b == bodies[0] for b in bodies), bodies
        assert bodies[0]["comment"] == "carol (customer A): Please restart the SAP gateway"
        [(told, body)] = esb.take("sb.out.customer-a", 1)
        assert told.type == "comment"
        assert json.loads(body)["comments"] == ("Comment failed to reach the target. The target ticket is locked. "
                                                "Try again later. The comment: carol (customer A): Please restart the SAP gateway")
        shown = sb.timeline("customer-a", number)
        assert f"retry:vendor-locked:comment: {max_retries - 1} -> {max_retries}" in shown
        assert "ack-unhandled" not in shown
    finally:
        assert sb.stop() == 0


@pytest.mark.parametrize("shape", ["run", "fleet"])
def test_an_error_ack_no_rule_handles_marks_the_message_failed(esb, vhost, shape, store_url):
    sb = start_shape(vhost, shape, env=story_env(), store_url=store_url)
    try:
        number, key = "INC" + uuid.uuid4().hex[:7], "VX-" + uuid.uuid4().hex[:5]
        open_ticket_at_vendor(esb, number, key)
        esb.publish("customer-a", incident(number, short_description="Orders fail"), message_id="un-1")
        [(update, _)] = esb.take("sb.out.vendor-x", 1)
        esb.publish("vendor-x", {"status": "error", "code": "FIELD_UNKNOWN", "message": "customfield_99 is not on the screen"},
                    type="ack", correlation_id=update.message_id)
        deadline = time.time() + 15
        while "ack-unhandled" not in sb.timeline("customer-a", number) and time.time() < deadline:
            time.sleep(0.2)
        shown = sb.timeline("customer-a", number)
        assert "ack-unhandled" in shown and "customfield_99 is not on the screen" in shown, shown
        r = subprocess.run([BINARY, "failed", "--config", sb.config], env=sb.env, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("1 outbound message(s) failed"), r.stdout
        assert update.message_id in r.stdout and "FIELD_UNKNOWN" in r.stdout
        assert esb.drain("sb.out.customer-a", quiet=0.5) == []
    finally:
        assert sb.stop() == 0


BUSY_POLICY = """
retries:
  - name: vendor-busy
    endpoint: vendor-x
    when: {field: $.code, equals: BUSY}
    types: [update]
    wait: {from: $.retry_after, default: 1s, max: 2s}
    attempts: 2
    resend: same
    give_up:
      - to: customer-a
        type: comment
        body: {number: {reference: customer-a}, comments: "Vendor X stayed busy"}
"""


def test_a_retry_policy_waits_the_time_the_ack_names_through_its_own_delay_queues(esb, vhost):
    """A second policy beside the example's: BUSY answers name their wait (1 s, then 30 s capped at 2 s); the
    refused body goes out again as it was (`resend: same`) even after a newer update, then the customer is told."""
    sb = Switchboard(vhost, env=story_env(), extra_config=BUSY_POLICY).start()
    try:
        for ms in (1000, 2000):  # the waits this policy can choose, each a delay queue of its own
            assert mgmt("GET", f"/api/queues/{vhost}/sb.delayq.work.{ms}")["type"] == "quorum"
        number, key = "INC" + uuid.uuid4().hex[:7], "VX-" + uuid.uuid4().hex[:5]
        open_ticket_at_vendor(esb, number, key)
        esb.publish("customer-a", incident(number, short_description="first words"), message_id="busy-1")
        [(first, body)] = esb.take("sb.out.vendor-x", 1)
        refused = json.loads(body)
        esb.publish("vendor-x", {"status": "error", "code": "BUSY", "retry_after": "1"}, type="ack", correlation_id=first.message_id)
        refused_at = time.monotonic()
        time.sleep(0.2)
        esb.publish("customer-a", incident(number, short_description="newer words"), message_id="busy-2")
        [(newer, _)] = esb.take("sb.out.vendor-x", 1)
        assert newer.correlation_id == "busy-2"
        [(again, body)] = esb.take("sb.out.vendor-x", 1, timeout=5)
        waited = time.monotonic() - refused_at
        assert 1.0 <= waited < 2.5, waited
        assert again.headers["x-sb-rule"] == "update-at-vendor" and again.message_id != first.message_id
        assert json.loads(body) == refused  # the same body, not the newer words
        esb.publish("vendor-x", {"status": "error", "code": "BUSY", "retry_after": 30}, type="ack", correlation_id=again.message_id)
        refused_at = time.monotonic()
        [(third, body)] = esb.take("sb.out.vendor-x", 1, timeout=6)
        waited = time.monotonic() - refused_at
        assert 2.0 <= waited < 3.5, waited  # 30 s named, capped at max: 2s
        assert json.loads(body) == refused
        esb.publish("vendor-x", {"status": "error", "code": "BUSY"}, type="ack", correlation_id=third.message_id)
        [(told, body)] = esb.take("sb.out.customer-a", 1, timeout=5)
        assert told.headers["x-sb-rule"] == "retry:vendor-busy:give-up"
        assert json.loads(body) == {"number": number, "comments": "Vendor X stayed busy"}
        assert esb.drain("sb.out.vendor-x", quiet=2.5) == []
        shown = sb.timeline("customer-a", number)
        assert "sent again in 1s (attempt 1 of 2)" in shown and "sent again in 2s (attempt 2 of 2)" in shown, shown
        assert "not sent again: after 2 send(s) again" in shown, shown
        assert "retry:vendor-busy:update: 2 -> 0" in shown, shown
    finally:
        assert sb.stop() == 0
