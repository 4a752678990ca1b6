"""Issue 2: ESB message in, rules, conversation, ESB message out, through the real broker."""
import json
import os
import subprocess
import threading
import time
import uuid

import pika
import pytest

from conftest import AMQPS_PORT, REPO, Switchboard, incident, jira, memory_alarm, rabbitmqctl


def timeline(db, conversation):
    """A conversation's timeline entries straight from the SQLite file: one row per commit, its entries in the
    compact form (docs/operations.md): `{"v":2,"entries":[...]}`, where an entry without `at`, `endpoint`,
    `message_id` or `rule` has the one of the entry before (null: none)."""
    rows = db.execute("SELECT entries FROM timeline_entries WHERE conversation_id = ? ORDER BY id", (conversation,)).fetchall()
    out = []
    for (text,) in rows:
        row = json.loads(text)
        assert isinstance(row, dict) and row["v"] == 2, text
        previous = {}
        for e in row["entries"]:
            for key in ("at", "endpoint", "message_id", "rule"):
                if key not in e and key in previous:
                    e[key] = previous[key]
            e = {k: v for k, v in e.items() if v is not None}
            out.append(e)
            previous = e
    return out


def test_create_reaches_vendor_with_contract_properties(esb, switchboard):
    number = "INC" + uuid.uuid4().hex[:7]
    esb.publish("customer-a", incident(number, priority="1"), message_id="a-1")
    [(props, body)] = esb.take("sb.out.vendor-x", 1)
    out = json.loads(body)
    assert out == {
        "operation": "create",
        "fields": {"summary": f"{number}: SAP down", "description": "Nothing works", "priority": {"name": "Highest"}},
        "customer_reference": number,
    }
    assert props.type == "create"
    assert props.correlation_id == "a-1"
    assert props.content_type == "application/json"
    assert props.delivery_mode == 2
    assert props.message_id.startswith("sb-" + props.headers["x-sb-conversation"] + "-")
    assert props.headers["x-sb-rule"] == "create-at-vendor"
    assert props.headers["x-sb-source-endpoint"] == "customer-a"
    # The conversation and its timeline are in the store.
    with switchboard.db() as db:
        conv = props.headers["x-sb-conversation"]
        refs = dict(db.execute("SELECT endpoint, ticket_id FROM reference WHERE conversation_id = ?", (conv,)).fetchall())
        assert refs == {"customer-a": number}
        kinds = [(e["kind"], e.get("rule")) for e in timeline(db, conv)]
        assert kinds == [("received", None), ("rule-matched", "remember-origin"), ("rule-matched", "create-at-vendor"),
                         ("sent", "create-at-vendor")]
        [who] = [e.get("who") for e in timeline(db, conv) if e["kind"] == "received"]
        assert who == "alice"


def test_conversation_links_across_endpoints(esb, switchboard):
    number = "INC" + uuid.uuid4().hex[:7]
    key = "VX-" + str(uuid.uuid4().int % 100000)
    esb.publish("customer-a", incident(number), message_id="l-1")
    [(create, _)] = esb.take("sb.out.vendor-x", 1)
    conv = create.headers["x-sb-conversation"]
    # The vendor's first webhook names A's ticket in customfield_10400: its key joins the conversation.
    esb.publish("vendor-x", jira(key, number, status="In Progress"), message_id="l-2")
    [(to_a, body)] = esb.take("sb.out.customer-a", 1)
    assert to_a.headers["x-sb-conversation"] == conv
    assert json.loads(body) == {
        "number": number, "state": "2", "priority": "2",
        "work_notes": "Bob Vendor (vendor X) set status In Progress", "correlation_display": key,
    }
    # A's next update goes to the vendor as an update of the vendor's ticket.
    esb.publish("customer-a", incident(number, short_description="SAP still down"), message_id="l-3")
    [(update, body)] = esb.take("sb.out.vendor-x", 1)
    assert update.type == "update"
    assert update.headers["x-sb-conversation"] == conv
    assert json.loads(body)["key"] == key
    assert json.loads(body)["fields"]["summary"] == f"{number}: SAP still down"
    with switchboard.db() as db:
        refs = dict(db.execute("SELECT endpoint, ticket_id FROM reference WHERE conversation_id = ?", (conv,)).fetchall())
        assert refs == {"customer-a": number, "vendor-x": key}
        assert db.execute("SELECT count(*) FROM conversation WHERE id = ?", (conv,)).fetchone()[0] == 1
        linked = [e["detail"] for e in timeline(db, conv) if e["kind"] == "linked"]
        assert linked == [f"linked vendor-x/{key}"]


def test_ok_ack_of_a_create_links_the_vendor_key(esb, switchboard):
    number = "INC" + uuid.uuid4().hex[:7]
    esb.publish("customer-a", incident(number), message_id="k-1")
    [(create, _)] = esb.take("sb.out.vendor-x", 1)
    esb.publish("vendor-x", {"status": "ok", "key": "VX-77"}, type="ack", correlation_id=create.message_id, message_id="k-ack")
    esb.publish("customer-a", incident(number, priority="4"), message_id="k-2")
    [(update, body)] = esb.take("sb.out.vendor-x", 1)
    assert update.type == "update"
    assert json.loads(body)["key"] == "VX-77"
    assert json.loads(body)["fields"]["priority"] == {"name": "Low"}


def test_resent_message_id_has_no_second_effect(esb, switchboard):
    number = "INC" + uuid.uuid4().hex[:7]
    body = incident(number)
    esb.publish("customer-a", body, message_id="dup-1")
    esb.publish("customer-a", body, message_id="dup-1")
    esb.publish("customer-a", body, message_id="dup-1")
    first = esb.take("sb.out.vendor-x", 1)
    assert len(first) == 1
    assert esb.drain("sb.out.vendor-x", quiet=1.5) == []
    with switchboard.db() as db:
        assert db.execute("SELECT count(*) FROM processed WHERE message_id = 'dup-1'").fetchone()[0] == 1
        conv = first[0][0].headers["x-sb-conversation"]
        assert db.execute("SELECT version FROM conversation WHERE id = ?", (conv,)).fetchone()[0] == 1


def test_message_without_message_id_gets_a_derived_one_and_resends_dedupe(esb, switchboard):
    number = "INC" + uuid.uuid4().hex[:7]
    body = incident(number)
    esb.publish("customer-a", body)
    esb.publish("customer-a", body)
    got = esb.take("sb.out.vendor-x", 1)
    assert got[0][0].correlation_id.startswith("derived-")
    assert esb.drain("sb.out.vendor-x", quiet=1.5) == []


def test_bad_input_is_parked_with_its_reason_and_good_messages_flow(esb, vhost):
    sb = Switchboard(vhost, env={"SB_MAX_MESSAGE_BYTES": "4096"}).start()
    try:
        good = ["INC" + uuid.uuid4().hex[:7] for _ in range(4)]
        esb.publish("customer-a", incident(good[0]), message_id="g-0")
        esb.publish("customer-a", b"{not json", message_id="bad-json", raw=True)
        esb.publish("customer-a", incident(good[1]), message_id="g-1")
        esb.publish("customer-a", {"short_description": "no number"}, message_id="bad-ticket")
        esb.publish("nobody-knows", incident("INC-X"), message_id="bad-endpoint")
        esb.publish("customer-a", incident(good[2], description="x" * 5000), message_id="bad-size")
        esb.publish("vendor-x", {"status": "ok"}, type="ack", message_id="bad-ack")
        esb.publish("vendor-x", {"status": "ok"}, type="ack", correlation_id="sb-" + "0" * 32 + "-0000000000000000-0000000000000000-0", message_id="bad-ack-2")
        esb.publish("customer-a", incident(good[3]), message_id="g-3")
        out = esb.take("sb.out.vendor-x", 3)
        assert sorted(json.loads(b)["customer_reference"] for _, b in out) == sorted([good[0], good[1], good[3]])
        parked = {p.message_id: p.headers for p, _ in sb.take_parked(6)}
        assert set(parked) == {"bad-json", "bad-ticket", "bad-endpoint", "bad-size", "bad-ack", "bad-ack-2"}
        assert "not valid JSON" in parked["bad-json"]["x-sb-reason"]
        assert parked["bad-json"]["x-sb-endpoint"] == "customer-a"
        assert "no ticket id at $.number" in parked["bad-ticket"]["x-sb-reason"]
        assert "unknown endpoint 'nobody-knows'" in parked["bad-endpoint"]["x-sb-reason"]
        assert parked["bad-endpoint"]["x-sb-original-routing-key"] == "nobody-knows"
        assert "exceeds the limit of 4096 bytes" in parked["bad-size"]["x-sb-reason"]
        assert "without correlation_id" in parked["bad-ack"]["x-sb-reason"]
        assert "no outbound message with that id" in parked["bad-ack-2"]["x-sb-reason"]
        assert parked["bad-ack-2"]["x-sb-stage"] == "worker"
        assert sb.proc.poll() is None, "a bad message stopped switchboard"
    finally:
        assert sb.stop() == 0


def test_sigterm_drains_and_exits_zero(esb, vhost):
    sb = Switchboard(vhost).start()
    numbers = ["INC" + uuid.uuid4().hex[:7] for _ in range(300)]
    for i, n in enumerate(numbers):
        esb.publish("customer-a", incident(n), message_id=f"t-{i}")
    time.sleep(0.3)
    assert sb.stop() == 0
    assert "stopped" in sb.output()
    # Whatever was not finished is still in the broker; a restart finishes it, nothing is lost or doubled.
    sb2 = Switchboard(vhost, data=sb.data).start()
    try:
        out = esb.take("sb.out.vendor-x", 300, timeout=60)
        assert sorted(json.loads(b)["customer_reference"] for _, b in out) == sorted(numbers)
        assert esb.drain("sb.out.vendor-x", quiet=1.0) == []
    finally:
        assert sb2.stop() == 0


def test_broker_connection_loss_midstream_loses_nothing_and_doubles_nothing(esb, vhost):
    if rabbitmqctl("status").returncode != 0:
        pytest.skip("the broker is not the one Deploy/local/rabbitmq.sh started; cannot close its connections")
    sb = Switchboard(vhost).start()
    try:
        count = 4000
        numbers = ["INC%07d" % i for i in range(count)]
        # Built once: a resend is the same message (the same message_id with other content would be parked).
        bodies = [incident(n) for n in numbers]
        cuts = []

        def cut():
            # Twice, while the ESB is still publishing and Switchboard is processing.
            for delay in (0.4, 1.0):
                time.sleep(delay)
                r = rabbitmqctl("close_all_connections", "-p", vhost, "test: connection loss")
                cuts.append(r.returncode)

        cutter = threading.Thread(target=cut)
        cutter.start()
        interrupted = 0
        i = 0
        while i < count:
            try:
                esb.publish("customer-a", bodies[i], message_id=f"cut-{i}")
                i += 1
                if cutter.is_alive():
                    # At most ~500 a second until both cuts happened: on a quiet machine the whole batch
                    # would otherwise be published before the first cut (rabbitmqctl takes a second to start).
                    time.sleep(0.002)
            except pika.exceptions.AMQPError:
                # The ESB lost its connection too; like a real ESB it resends what was not confirmed.
                interrupted += 1
                time.sleep(0.2)
                esb.connect()
        cutter.join()
        assert cuts == [0, 0]
        assert interrupted >= 1, "the connections were not cut while messages were flowing"
        if esb.conn.is_closed:
            # The second cut can come after the last publish: the ESB reads on a new connection, as one would.
            esb.connect()
        seen = esb.take("sb.out.vendor-x", count, timeout=120)
        seen += esb.drain("sb.out.vendor-x", quiet=2.0)
        ids = [p.message_id for p, _ in seen]
        refs = {json.loads(b)["customer_reference"] for _, b in seen}
        # Every inbound message produced its outbound one; a repeat may only carry the same message id.
        assert refs == set(numbers)
        assert len(set(ids)) == count
        assert sb.output().count("reconnected and consuming") >= 2
        with sb.db() as db:
            assert db.execute("SELECT count(*) FROM processed WHERE message_id LIKE 'cut-%'").fetchone()[0] == count
            assert db.execute("SELECT count(*) FROM outbox WHERE inbound_message_id LIKE 'cut-%'").fetchone()[0] == count
            # Each ticket's conversation was changed exactly once.
            versions = db.execute(
                "SELECT c.version, count(*) FROM conversation c JOIN reference r ON r.conversation_id = c.id "
                "WHERE r.endpoint = 'customer-a' AND r.ticket_id LIKE 'INC0%' GROUP BY c.version").fetchall()
            assert versions == [(1, count)]
        assert esb.depth("sb.parked") == 0 and sb.parked_count() == 0
    finally:
        assert sb.stop() == 0


def wait_for_text(process, text, timeout=20):
    deadline = time.time() + timeout
    while text not in process.output() and time.time() < deadline:
        time.sleep(0.2)
    return text in process.output()


def blocked_loops(sb):
    """The loops whose `switchboard_broker_blocked` gauge is 1."""
    return [l.split("{")[1].split("}")[0] for l in sb.metrics().splitlines()
            if l.startswith("switchboard_broker_blocked{") and float(l.split()[-1]) == 1]


@pytest.mark.serial  # a memory alarm blocks every publisher of the broker
@pytest.mark.xdist_group("memory-alarm")  # after the other alarm test, never beside it
def test_a_broker_resource_alarm_is_logged_and_what_waited_flows_after_it(esb, vhost):
    """A memory alarm blocks every publishing connection. Switchboard says so in its log (it announces the
    `connection.blocked` capability; without it the broker stalls the connection in silence) and in
    `switchboard_broker_blocked`, stays ready, and holds its batch through the alarm: three confirm timeouts
    long, and no batch is given back (each give-back would redeliver it, toward the queues' delivery limit).
    It loses nothing and sends what waited once, when the alarm clears. A stop during an alarm stops (the
    batch goes back to its queue) and the next process sends it."""
    if rabbitmqctl("status").returncode != 0:
        pytest.skip("the broker is not the one Deploy/local/rabbitmq.sh started; cannot raise its alarm")
    env = {"SB_CONFIRM_TIMEOUT_MS": "2000"}
    first = Switchboard(vhost, env=env).start()  # declares the topology
    assert first.stop() == 0
    for i in range(3):
        esb.publish("customer-a", incident(f"ALARM{i:03d}"), message_id=f"alarm-{i}")
    sb = Switchboard(vhost, env=env)
    with memory_alarm():
        sb.start()  # consuming is allowed under the alarm; its first publish is blocked
        assert wait_for_text(sb, "broker blocked publishing (resource alarm)"), sb.output()[-3000:]
        time.sleep(6)
        assert esb.take("sb.out.vendor-x", 1, timeout=1) == []
        assert blocked_loops(sb), sb.metrics()
        status, ready = sb.ready()
        assert status == 200, ready
        assert any("blocks publishing" in p["detail"] for p in ready["parts"]), ready
        assert "batch failed" not in sb.output() and "did not confirm" not in sb.output(), sb.output()[-3000:]
    try:
        assert wait_for_text(sb, "broker unblocked publishing"), sb.output()[-3000:]
        out = esb.take("sb.out.vendor-x", 3, timeout=30)
        assert sorted(p.message_id for p, _ in out) == sorted({p.message_id for p, _ in out}) and len(out) == 3
        assert {json.loads(b)["customer_reference"] for _, b in out} == {f"ALARM{i:03d}" for i in range(3)}
        assert esb.depth("sb.parked") == 0 and sb.parked_count() == 0
        deadline = time.time() + 10
        while blocked_loops(sb) and time.time() < deadline:
            time.sleep(0.2)
        assert not blocked_loops(sb), sb.metrics()
        assert "batch failed" not in sb.output(), sb.output()[-3000:]
    finally:
        assert sb.stop() == 0
    # A stop request while the batch in hand waits on the alarm: the process stops, the message stays.
    esb.publish("customer-a", incident("ALARM-STOP"), message_id="alarm-stop")
    again = Switchboard(vhost, env=env)
    with memory_alarm():
        again.start()
        assert wait_for_text(again, "broker blocked publishing (resource alarm)"), again.output()[-3000:]
        began = time.time()
        assert again.stop() == 0, again.output()[-3000:]
        assert time.time() - began < 10
    after = Switchboard(vhost, env=env).start()
    try:
        out = esb.take("sb.out.vendor-x", 1, timeout=30)
        assert [json.loads(b)["customer_reference"] for _, b in out] == ["ALARM-STOP"]
    finally:
        assert after.stop() == 0


def test_config_check_reports_every_error_with_file_and_line(tmp_path):
    (tmp_path / "rules.yaml").write_text(
        "endpoints:\n  a:\n    ticket_id: $.x\nrules:\n  - name: r\n    from: b\n    when: {field: $.y, regex: '(['}\n"
        "    send: [{to: a, body: {x: {field: $.y, translate: t}}}]\n")
    binary = os.environ.get("SB_BINARY", os.path.join(REPO, ".build", "debug", "switchboard"))
    r = subprocess.run([binary, "config", "check", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{tmp_path}/rules.yaml:6: unknown endpoint 'b'" in r.stderr
    assert f"{tmp_path}/rules.yaml:7: invalid regex" in r.stderr
    assert f"{tmp_path}/rules.yaml:8: unknown translation table 't'" in r.stderr
    ok = subprocess.run([binary, "config", "check", os.path.join(REPO, "Config")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    # `run` refuses an invalid configuration with the same errors.
    r = subprocess.run([binary, "run", "--config", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "unknown endpoint 'b'" in r.stderr


def test_runs_over_amqps_with_a_verified_certificate(esb, vhost):
    ca = os.environ.get("SB_TLS_CA_FILE", os.path.join(REPO, ".rabbitmq", "tls", "ca.pem"))
    if not os.path.exists(ca):
        pytest.skip("no local TLS listener (the broker was not started by Deploy/local/rabbitmq.sh)")
    sb = Switchboard(vhost, env={"SB_BROKER_URL": f"amqps://guest:guest@localhost:{AMQPS_PORT}/{vhost}", "SB_TLS_CA_FILE": ca}).start()
    try:
        assert f"amqps://guest:***@localhost:{AMQPS_PORT}/" in sb.output()
        number = "INC" + uuid.uuid4().hex[:7]
        esb.publish("customer-a", incident(number), message_id="tls-1")
        [(props, body)] = esb.take("sb.out.vendor-x", 1)
        assert json.loads(body)["customer_reference"] == number
    finally:
        assert sb.stop() == 0
    # The same with a CA that did not sign the broker's certificate: no connection, and it says why.
    bad = Switchboard(vhost, env={"SB_BROKER_URL": f"amqps://guest:guest@localhost:{AMQPS_PORT}/{vhost}",
                                  "SB_TLS_CA_FILE": "/etc/ssl/certs/ca-certificates.crt"})
    try:
        with pytest.raises(RuntimeError):
            bad.start(timeout=3)
        assert "amqp tls" in bad.output()
    finally:
        bad.stop()
