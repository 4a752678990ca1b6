"""What real ESBs send: their own broker user (user_id), every AMQP property, nested header tables,
headers that look like ours, and messages that no endpoint's users may send. Nothing of it rides along
on our internal messages; what is parked keeps it all as data, and a replay is what the ESB published."""
import decimal
import json
import os
import subprocess
import time
import uuid

import pika
import pytest

from conftest import AMQP_HOST, AMQP_PORT, BINARY, REPO, Switchboard, incident, start_shape

PORTAL = """
endpoints:
  portal-z:
    ticket_id: $.id
    users: [{user}]
rules:
  - name: portal-to-vendor
    priority: 1000
    from: portal-z
    stop: true
    send: [{{to: vendor-x, type: create, body: {{id: {{field: $.id}}, amount: {{field: $.amount}}}}}}]
"""


def users_sh(*args, password):
    env = dict(os.environ, SB_USER_PASSWORD=password, RABBITMQCTL=f"bash {REPO}/Deploy/local/rabbitmq.sh ctl")
    # users.sh runs several rabbitmqctl commands, each a few seconds of Erlang start on a busy machine.
    r = subprocess.run(["bash", os.path.join(REPO, "Deploy/rabbitmq/users.sh"), *args],
                       env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr


def add_esb_user(vhost, user, password, *endpoints):
    users_sh("esb", vhost, user, *endpoints, password=password)


def connect(vhost, user, password):
    params = pika.ConnectionParameters(host=AMQP_HOST, port=AMQP_PORT, virtual_host=vhost,
                                       credentials=pika.PlainCredentials(user, password))
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.confirm_delivery()
    return conn, ch


@pytest.fixture
def portal_user(vhost):
    user, password = "esb-z-" + uuid.uuid4().hex[:6], uuid.uuid4().hex
    add_esb_user(vhost, user, password, "portal-z")
    return user, password


HOSTILE_HEADERS = {
    # Look-alikes of ours: never trusted.
    "x-sb-kind": "timer", "x-sb-endpoint": "vendor-x", "x-sb-redelivered": True, "x-sb-conversation": "forged",
    "x-sb-original": {"exchange": "sb.work", "routing_key": "0", "properties": {}},
    # What ESBs carry: nested tables, arrays, numbers of every kind.
    "nested": {"a": {"b": [1, "two", {"c": True}]}}, "ratio": decimal.Decimal("1.50"), "big": 2 ** 40, "raw": b"\x00\xffbytes",
}


def every_property(user, **extra):
    props = dict(user_id=user, content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                 priority=7, correlation_id="corr-1", reply_to="esb.replies", expiration="1000",
                 message_id="m-" + uuid.uuid4().hex[:8], timestamp=1764590000, type="incident", app_id="esb-app",
                 headers=HOSTILE_HEADERS)
    props.update(extra)
    return pika.BasicProperties(**props)


@pytest.mark.parametrize("shape", ["run", "fleet"])
def test_an_esb_user_with_every_property_set_is_served_and_its_bad_message_is_kept(esb, vhost, portal_user, shape, store_url):
    user, password = portal_user
    sb = start_shape(vhost, shape, extra_config=PORTAL.format(user=user), store_url=store_url)
    conn, ch = connect(vhost, user, password)
    try:
        # Two good messages: the endpoint is not wedged by the first one's user_id.
        for n in range(2):
            ch.basic_publish("sb.in", "portal-z", json.dumps({"id": f"Z-{n}", "amount": 12345678901234567891}).encode(),
                             every_property(user))
        out = esb.take("sb.out.vendor-x", 2, timeout=20)
        # Two tickets: two partitions, maybe two worker processes, so no order between them.
        assert sorted(json.loads(b)["id"] for _, b in out) == ["Z-0", "Z-1"]
        props, body = out[0]
        # Exact numbers through mapping, and our properties only.
        assert b'"amount":12345678901234567891' in body
        assert props.user_id is None and props.expiration is None and props.priority is None
        assert props.reply_to is None and props.content_encoding is None
        assert "nested" not in props.headers and props.headers["x-sb-conversation"] != "forged"
        # A broken one with an expiration: parked, and still there after its expiration has long passed.
        bad = every_property(user, message_id="bad-hostile")
        ch.basic_publish("sb.in", "portal-z", b"{broken", bad)
        time.sleep(2.5)
        [(parked, parked_body)] = sb.take_parked(1, timeout=10)
        assert parked_body == b"{broken"
        assert "not valid JSON" in parked.headers["x-sb-reason"]
        # Our own user (the signature replay trusts; the broker checks it), never the ESB's.
        assert parked.user_id == "guest" and parked.expiration is None and parked.priority is None
        original = parked.headers["x-sb-original"]
        assert (original["exchange"], original["routing_key"]) == ("sb.in", "portal-z")
        sent = original["properties"]
        assert sent["user_id"] == user and sent["expiration"] == "1000" and sent["priority"] == 7
        assert sent["content_encoding"] == "utf-8" and sent["reply_to"] == "esb.replies"
        assert sent["message_id"] == "bad-hostile" and sent["correlation_id"] == "corr-1"
        assert sent["headers"]["nested"] == {"a": {"b": [1, "two", {"c": True}]}}
        assert sent["headers"]["x-sb-kind"] == "timer" and sent["headers"]["raw"] == b"\x00\xffbytes"
        assert sent["headers"]["ratio"] == decimal.Decimal("1.50") and sent["headers"]["big"] == 2 ** 40
    finally:
        conn.close()
        assert sb.stop() == 0
    # Replayed (from the store, where it stayed), it is what the ESB published: same user (so the endpoint
    # still accepts it), same properties.
    r = subprocess.run([BINARY, "parked", "replay", "--config", sb.config], env=sb.env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    again = start_shape(vhost, shape, extra_config=PORTAL.format(user=user), data=sb.data, store_url=store_url)
    try:
        [(reparked, _)] = again.take_parked(1, timeout=20)
        assert reparked.id != parked.id
        assert "not valid JSON" in reparked.headers["x-sb-reason"], reparked.headers["x-sb-reason"]
        assert reparked.headers["x-sb-original"] == original
    finally:
        assert again.stop() == 0


@pytest.mark.parametrize("shape", ["run", "fleet"])
def test_only_the_endpoints_users_may_speak_for_it(esb, vhost, portal_user, shape):
    user, password = portal_user
    other, other_password = "esb-y-" + uuid.uuid4().hex[:6], uuid.uuid4().hex
    add_esb_user(vhost, other, other_password, "portal-z")
    sb = start_shape(vhost, shape, extra_config=PORTAL.format(user=user))
    conn, ch = connect(vhost, other, other_password)
    try:
        body = json.dumps({"id": "Z-9"}).encode()
        ch.basic_publish("sb.in", "portal-z", body, pika.BasicProperties(user_id=other, message_id="from-other"))
        esb.ch.basic_publish("sb.in", "portal-z", body, pika.BasicProperties(message_id="from-nobody"))
        esb.publish("customer-a", {"number": "INC-T"}, message_id="esb-timer", type="timer")
        parked = {p.message_id: p.headers["x-sb-reason"] for p, _ in sb.take_parked(3, timeout=20)}
        assert f"published by broker user '{other}'" in parked["from-other"] and f"'{user}'" in parked["from-other"]
        assert "set no user_id" in parked["from-nobody"] and f"'{user}'" in parked["from-nobody"]
        assert "reserved" in parked["esb-timer"]
        assert esb.drain("sb.out.vendor-x", quiet=0.5) == []
    finally:
        conn.close()
        assert sb.stop() == 0


def test_an_esb_user_does_its_job_and_nothing_internal(esb, vhost, portal_user):
    user, password = portal_user
    sb = Switchboard(vhost, extra_config=PORTAL.format(user=user)).start()
    try:
        conn, ch = connect(vhost, user, password)
        ch.basic_publish("sb.in", "portal-z", b'{"id": "Z-ok"}', pika.BasicProperties(user_id=user, message_id="ok"))
        assert len(esb.take("sb.out.vendor-x", 1, timeout=20)) == 1
        # Its own outbound queue it may read.
        ch.basic_get("sb.out.portal-z", auto_ack=True)
        conn.close()
        forbidden = [
            ("publish", "sb.work", "0"), ("publish", "", "sb.store"), ("publish", "", "sb.in.customer-a"),
            ("publish", "sb.delay.work.60000", "0"), ("publish", "sb.out", "vendor-x"),
            ("get", None, "sb.out.vendor-x"), ("get", None, "sb.work.0"), ("get", None, "sb.parked"),
        ]
        for action, exchange, key in forbidden:
            conn, ch = connect(vhost, user, password)
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                if action == "publish":
                    ch.basic_publish(exchange, key, b"{}", pika.BasicProperties(user_id=user))
                else:
                    ch.basic_get(key, auto_ack=True)
            assert refused.value.reply_code == 403, (action, exchange, key, refused.value)
            conn.close()
    finally:
        assert sb.stop() == 0


def test_switchboard_runs_as_its_own_least_privilege_user(esb, vhost, portal_user):
    user, password = portal_user
    own, own_password = "sb-" + uuid.uuid4().hex[:6], uuid.uuid4().hex
    users_sh("switchboard", vhost, own, password=own_password)
    url = f"amqp://{own}:{own_password}@{AMQP_HOST}:{AMQP_PORT}/{vhost}"
    sb = Switchboard(vhost, extra_config=PORTAL.format(user=user), env={"SB_BROKER_URL": url}).start()
    try:
        conn, ch = connect(vhost, user, password)
        ch.basic_publish("sb.in", "portal-z", b'{"id": "Z-own"}', pika.BasicProperties(user_id=user, message_id="own"))
        ch.basic_publish("sb.in", "portal-z", b'{broken', pika.BasicProperties(user_id=user, message_id="own-bad"))
        conn.close()
        assert [json.loads(b)["id"] for _, b in esb.take("sb.out.vendor-x", 1, timeout=20)] == ["Z-own"]
        assert [p.message_id for p, _ in sb.take_parked(1, timeout=20)] == ["own-bad"]
    finally:
        assert sb.stop() == 0


def test_an_ack_from_another_endpoint_than_the_target_is_parked_naming_both(esb, switchboard):
    """customer-a cannot answer what was sent to vendor-x: neither an ok ack (it would link a vendor key of
    its choosing) nor an error ack (it would set off vendor-x's retry rules)."""
    number = "INC" + uuid.uuid4().hex[:7]
    esb.publish("customer-a", incident(number), message_id=f"{number}-1")
    [(create, _)] = esb.take("sb.out.vendor-x", 1)
    esb.publish("customer-a", {"status": "ok", "key": "FORGED-1"}, type="ack", correlation_id=create.message_id,
                message_id="cross-ok")
    esb.publish("customer-a", {"status": "error", "code": "LOCKED"}, type="ack", correlation_id=create.message_id,
                message_id="cross-error")
    parked = {p.message_id: p.headers["x-sb-reason"] for p, _ in switchboard.take_parked(2, timeout=20)}
    for mid in ("cross-ok", "cross-error"):
        assert (f"ack from endpoint 'customer-a' for message '{create.message_id}', which was sent to endpoint "
                "'vendor-x'") in parked[mid], parked[mid]
    assert esb.drain("sb.out.vendor-x", quiet=1.0) == [] and esb.drain("sb.out.customer-a", quiet=0.2) == []
    # The target's own ack still works and links its key.
    esb.publish("vendor-x", {"status": "ok", "key": "VX-REAL"}, type="ack", correlation_id=create.message_id,
                message_id="real-ok")
    conversation = create.headers["x-sb-conversation"]
    deadline = time.time() + 15
    refs = {}
    while time.time() < deadline and "VX-REAL" not in refs.values():
        refs = dict(switchboard.query(f"SELECT endpoint, ticket_id FROM reference WHERE conversation_id = '{conversation}'"))
        time.sleep(0.1)
    assert refs == {"customer-a": number, "vendor-x": "VX-REAL"}


@pytest.fixture
def policy_vhost():
    from conftest import fresh_vhost
    yield from fresh_vhost("sb-test-forged-")


def test_a_forged_dead_lettered_message_is_replayed_only_into_the_queue_it_died_in(policy_vhost):
    """With the production policy the broker dead-letters an ESB's own message into sb.parked with every
    header it carried. One that expired with an `x-sb-original` naming vendor-x's outbound queue and
    another ESB's user is replayed back into the inbound queue it died in, as the ESB published it (intake
    checks it again and parks it: no ticket id), never to vendor-x; our own parked message in the same
    replay reaches its target."""
    from conftest import ESB, rabbitmqctl
    vhost = policy_vhost
    esb = ESB(vhost)
    sb = Switchboard(vhost, env={"SB_MAX_MESSAGE_BYTES": "4096"}).start()
    number = "INC" + uuid.uuid4().hex[:7]
    try:
        esb.publish("customer-a", incident(number, description="x" * 5000), message_id="ours-big")
        [(ours, _)] = sb.take_parked(1, timeout=20)
        assert "exceeds the limit" in ours.headers["x-sb-reason"]
        # Signed: published with our broker user, which the broker checked.
        assert ours.user_id == "guest" and ours.origin == "switchboard"
    finally:
        assert sb.stop() == 0
    r = rabbitmqctl("set_policy", "-p", vhost, "--apply-to", "queues", "--priority", "10", "sb-data", r"^sb\.(in|out|work)\.",
                    json.dumps({"dead-letter-exchange": "", "dead-letter-routing-key": "sb.parked"}))
    assert r.returncode == 0, r.stderr
    # Only the store role runs (no intake to take the message before it expires): it moves what the broker
    # dead-letters into sb.parked into its parked table.
    mover = Switchboard(vhost, data=sb.data, args=("store",), consumers=1).start()
    try:
        claim = {"exchange": "sb.out", "routing_key": "vendor-x",
                 "properties": {"user_id": "esb-vendor", "message_id": "forged-inner", "type": "create"}}
        esb.ch.basic_publish("sb.in", "customer-a", json.dumps({"forged": True}).encode(), pika.BasicProperties(
            message_id="forged-1", expiration="1", delivery_mode=2,
            headers={"x-sb-original": claim, "x-sb-replay": True, "x-sb-reason": "looks parked", "x-sb-parked-at": "2026-01-01"}))
        rows = mover.take_parked(2, timeout=20)
        assert len(rows) == 2, "the broker did not dead-letter the expired message into sb.parked"
        forged = rows[1][0]
        # Shown as what it is, its x-sb-* headers ignored.
        assert forged.origin == "broker" and forged.stage == "broker", forged
        assert forged.reason == "dead-lettered by the broker: expired, from queue sb.in.customer-a", forged.reason
        assert esb.depth("sb.parked") == 0
    finally:
        assert mover.stop() == 0
    r = subprocess.run([BINARY, "parked", "replay", "--config", sb.config], env=sb.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sb.parked_count() == 0 and esb.depth("sb.out.vendor-x") == 0 and esb.depth("sb.in.customer-a") == 2
    # Checked by intake again, with a size limit that fits now: ours flows, the forged one is parked as
    # what the ESB published (to sb.in, no user_id), not what it claimed.
    again = Switchboard(vhost, data=sb.data).start()
    try:
        out = esb.take("sb.out.vendor-x", 1, timeout=20)
        assert [p.correlation_id for p, _ in out] == ["ours-big"]
        [(reparked, body)] = again.take_parked(1, timeout=20)
        assert reparked.message_id == "forged-1" and json.loads(body) == {"forged": True}
        assert "no ticket id" in reparked.headers["x-sb-reason"], reparked.headers["x-sb-reason"]
        kept = reparked.headers["x-sb-original"]
        assert (kept["exchange"], kept["routing_key"]) == ("sb.in", "customer-a")
        # (The broker drops the expiration of a message it dead-lettered for it.) The claim is kept as data.
        assert kept["properties"].get("user_id") is None and kept["properties"]["message_id"] == "forged-1"
        assert kept["properties"]["headers"]["x-sb-original"]["routing_key"] == "vendor-x"
        assert "x-death" not in kept["properties"]["headers"]
        assert esb.drain("sb.out.vendor-x", quiet=1.0) == []
    finally:
        assert again.stop() == 0
        esb.close()


def test_a_type_read_from_the_body_is_checked_like_the_amqp_type(esb, switchboard):
    """vendor-x's type comes from $.webhookEvent (type_field) when the AMQP type is not set: a body that
    says `timer` or `ack` is parked at intake, as the AMQP type would be, never taken for one of ours."""
    from conftest import jira
    for n, kind in enumerate(["timer", "ack"]):
        body = jira(f"VX-T{n}", None, event=kind)
        esb.ch.basic_publish("sb.in", "vendor-x", json.dumps(body).encode(),
                             pika.BasicProperties(message_id=f"typed-{kind}", delivery_mode=2))
    parked = {p.message_id: p.headers for p, _ in switchboard.take_parked(2, timeout=20)}
    for kind in ("timer", "ack"):
        h = parked[f"typed-{kind}"]
        assert h["x-sb-stage"] == "intake", h
        assert f"type '{kind}' at $.webhookEvent (endpoints.vendor-x.type_field) is reserved" in h["x-sb-reason"], h
    assert esb.drain("sb.out.customer-a", quiet=1.0) == []
