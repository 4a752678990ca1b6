"""The administrator's view against the real binary, broker and store: every route authenticated, roles,
search by either side's ticket id, the timeline of messages that really flowed (an error ack, an attribute
change, why no rule matched), the feed, endpoint health, parked messages replayed after a configuration
fix and discarded with a reason (both audited), sign-in limits, cookies, TLS versions, no secret shown."""
import html
import json
import re
import shutil
import subprocess
import time
import uuid

import pytest

from admin_client import Admin, Secrets, wait_job
from conftest import BINARY, ESB, QUORUM, Switchboard, flow, incident, jira, mgmt, fresh_vhost

SECRETS = Secrets()
ENV = dict(SECRETS.env, SB_MAX_MESSAGE_BYTES="4096", LOCK_RETRY_DELAY="1s", LOCK_RETRY_MAX="2")

API_GETS = ["/api/v1/me", "/api/v1/conversations?ticket=x", "/api/v1/conversations/x", "/api/v1/messages",
            "/api/v1/endpoints", "/api/v1/parked", "/api/v1/parked/x", "/api/v1/parked/actions/x", "/api/v1/audit",
            "/api/v1/config"]
PAGES = ["/", "/search?q=x", "/conversations/x", "/conversations/x/export", "/feed", "/endpoints", "/parked", "/parked/x",
         "/parked/actions/x", "/config", "/audit", "/whatif", "/conversations/x/capture"]


@pytest.fixture(scope="module")
def vhost():
    """This module's own vhost (its Switchboards leave timers due later; they must not reach other tests)."""
    yield from fresh_vhost("sb-test-admin-")


@pytest.fixture
def own_vhost():
    """A vhost of its own, for a test that starts and stops Switchboards beside the module's."""
    yield from fresh_vhost("sb-test-admin-")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hub(request, vhost):
    """`switchboard run` with the admin, on each store backend (the admin reads each through its own code)."""
    from conftest import postgres_url
    url = "sqlite" if request.param == "sqlite" else postgres_url("admin_" + uuid.uuid4().hex[:10])
    sb = Switchboard(vhost, env=ENV, store_url=url).start()
    sb.url = sb.admin_url()
    yield sb
    sb.stop()


def operator(hub):
    return Admin(hub.url, token=SECRETS.operator_token)


def viewer(hub):
    return Admin(hub.url, token=SECRETS.viewer_token)


def parked_id(api, message_id, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for m in api.get("/api/v1/parked").json()["messages"]:
            if m["message_id"] == message_id:
                return m
        time.sleep(0.3)
    raise AssertionError(f"{message_id} was not parked")


def test_every_route_needs_credentials(hub):
    anonymous = Admin(hub.url)
    assert anonymous.get("/health").status == 200
    for path in API_GETS:
        a = anonymous.get(path)
        assert a.status == 401, (path, a.status)
        assert a.json()["error"]["status"] == 401
        assert "Bearer" in a.headers["WWW-Authenticate"]
    for path in PAGES:
        a = anonymous.get(path)
        assert a.status == 303 and a.headers["Location"].startswith("/sign-in"), (path, a.status)
    for path in ["/api/v1/parked/actions", "/api/v1/parked/actions/x/cancel"]:
        assert anonymous.post(path, body={"action": "discard", "ids": ["x"], "reason": "r"}).status == 401
    assert anonymous.post("/parked/actions", form={"action": "discard", "ids": "x", "reason": "r"}).status == 303
    assert Admin(hub.url, token="sbt_not-a-token").get("/api/v1/me").status == 401
    # A known token works everywhere the API is.
    assert viewer(hub).get("/api/v1/me").json() == {"name": "token:esb-team", "role": "viewer", "token": True}


def test_viewer_reads_and_operator_acts(hub):
    v, o = viewer(hub), operator(hub)
    action = {"action": "discard", "ids": ["0000000000000000"], "reason": "test of roles"}
    denied = v.post("/api/v1/parked/actions", body=action)
    assert denied.status == 403 and "operator" in denied.json()["error"]["message"]
    assert v.post("/api/v1/parked/actions/x/cancel").status == 403
    started = o.post("/api/v1/parked/actions", body=action)
    assert started.status == 202, started.text
    job = wait_job(o, started.json()["id"])
    assert job["state"] == "done" and job["missing"] == 1 and job["discarded"] == 0
    # Sessions: a viewer's form is refused for its role, an operator's without the form token for CSRF.
    vs = Admin(hub.url)
    assert vs.sign_in("viewer", SECRETS.viewer_password).status == 303
    assert vs.post("/parked/actions", form={"csrf": vs.csrf, "action": "discard", "ids": "x", "reason": "r"}).status == 403
    assert vs.post("/endpoints/try-now", form={"csrf": vs.csrf, "endpoint": "vendor-x", "message": "m"}).status == 403
    os_ = Admin(hub.url)
    assert os_.sign_in("admin", SECRETS.admin_password).status == 303
    no_csrf = os_.post("/parked/actions", form={"action": "discard", "ids": "x", "reason": "r"})
    assert no_csrf.status == 403 and "CSRF" in no_csrf.text
    assert os_.post("/endpoints/try-now", form={"endpoint": "vendor-x", "message": "m"}).status == 403
    # An operator may press try-now only for a message that waits now.
    gone = os_.post("/endpoints/try-now", form={"csrf": os_.csrf, "endpoint": "vendor-x", "message": "sb-nothing-waits"})
    assert gone.status == 409 and "does not wait at vendor-x now" in gone.text, gone.text
    ok = os_.post("/parked/actions", form={"csrf": os_.csrf, "action": "discard", "ids": "x", "reason": "r"})
    assert ok.status == 303 and ok.headers["Location"].startswith("/parked/actions/")
    # The same form token in a header (what a page's script would send).
    assert os_.post("/api/v1/parked/actions", body=action, headers={"X-CSRF-Token": os_.csrf}).status == 202
    assert os_.post("/api/v1/parked/actions", body=action, headers={"X-CSRF-Token": "0" * 48}).status == 403


def conversation_of(api, ticket, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        hits = api.get(f"/api/v1/conversations?ticket={ticket}").json()["conversations"]
        if hits:
            return hits
        time.sleep(0.2)
    raise AssertionError(f"no conversation for {ticket}")


def test_search_by_either_ticket_and_the_timeline_of_what_flowed(hub, esb):
    number, key = f"INC{uuid.uuid4().int % 10**7:07d}", f"VX-{uuid.uuid4().int % 10**5}"
    create_id, update_id = flow(esb, number, key)
    api = viewer(hub)
    [a] = conversation_of(api, number)
    [x] = conversation_of(api, key)
    assert a["conversation_id"] == x["conversation_id"] and (a["endpoint"], x["endpoint"]) == ("customer-a", "vendor-x")
    deadline = time.time() + 20
    while True:
        c = api.get(f"/api/v1/conversations/{a['conversation_id']}").json()
        if any(e["kind"] == "ack-error" for e in c["timeline"]) or time.time() > deadline:
            break
        time.sleep(0.2)
    assert {t["endpoint"]: t["ticket_id"] for t in c["tickets"]} == {"customer-a": number, "vendor-x": key}
    kinds = [e["kind"] for e in c["timeline"]]
    for kind in ["received", "rule-matched", "attribute", "sent", "acked", "ack-error", "linked"]:
        assert kind in kinds, (kind, kinds)
    times = [e["at"] for e in c["timeline"]]
    assert times == sorted(times) and all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", t) for t in times)
    received = [e for e in c["timeline"] if e["kind"] == "received"]
    assert received[0]["who"] == "alice" and json.loads(received[0]["body"])["number"] == number
    assert all(isinstance(e["since_intake_ms"], int) and 0 <= e["since_intake_ms"] < 10_000 for e in received)
    attribute = next(e for e in c["timeline"] if e["kind"] == "attribute")
    assert attribute["detail"].startswith("original_group: (none) -> ") and "Local Service Desk" in attribute["detail"]
    acked = next(e for e in c["timeline"] if e["kind"] == "acked")
    assert acked["answers"] == create_id and acked["hop_ms"] >= 0
    refused = next(e for e in c["timeline"] if e["kind"] == "ack-error")
    assert refused["answers"] == update_id and "open in another session" in refused["detail"]
    sent = next(e for e in c["timeline"] if e["kind"] == "sent" and e["message_id"] == create_id)
    assert sent["outbound"]["target"] == "vendor-x" and json.loads(sent["outbound"]["body"])["fields"]
    assert c["attributes"]["original_group"]["display_value"] == "Local Service Desk"
    # The feed: this conversation's messages with their states, and the filters.
    feed = api.get(f"/api/v1/messages?ticket={key}").json()["messages"]
    states = {m["message_id"]: m["state"] for m in feed}
    assert states[f"{key}-ack-1"] == "acked" and states[f"{key}-ack-2"] == "failed" and states[f"{number}-2"] == "sent"
    assert "create-at-vendor" in next(m for m in feed if m["message_id"] == f"{number}-2")["rules"]
    only = api.get("/api/v1/messages?state=acked&endpoint=vendor-x&limit=500").json()["messages"]
    assert f"{key}-ack-1" in [m["message_id"] for m in only] and {m["state"] for m in only} == {"acked"}
    by_rule = api.get("/api/v1/messages?rule=create-at-vendor&limit=500").json()["messages"]
    assert f"{number}-2" in [m["message_id"] for m in by_rule]
    future = api.get("/api/v1/messages?since=2999-01-01T00:00:00Z").json()["messages"]
    assert future == []
    assert api.get("/api/v1/messages?state=nonsense").status == 400
    # The page and the export, signed in.
    s = Admin(hub.url)
    s.sign_in("viewer", SECRETS.viewer_password)
    page = s.get(f"/search?q={key}")
    assert page.status == 303 and page.headers["Location"] == f"/conversations/{a['conversation_id']}"
    html = s.get(page.headers["Location"]).text
    for text in [number, key, "create-at-vendor", "error ack", "open in another session", "original_group"]:
        assert text in html, text
    export = s.get(f"/conversations/{a['conversation_id']}/export")
    assert "attachment" in export.headers["Content-Disposition"]
    assert export.json()["tickets"] == c["tickets"]


def test_what_if_changes_nothing_and_a_captured_conversation_is_a_passing_rule_test(hub, esb, tmp_path):
    number, key = f"INC{uuid.uuid4().int % 10**7:07d}", f"VX-{uuid.uuid4().int % 10**5}"
    flow(esb, number, key)  # the LOCKED update is sent again after LOCK_RETRY_DELAY (1 s); nobody answers that
    api = viewer(hub)
    [a] = conversation_of(api, number)
    cid = a["conversation_id"]
    deadline = time.time() + 20
    while True:
        c = api.get(f"/api/v1/conversations/{cid}").json()
        if any(e.get("rule") == "retry:vendor-locked:resend" for e in c["timeline"]):
            break
        assert time.time() < deadline, c["timeline"]
        time.sleep(0.2)
    esb.purge("sb.out.vendor-x")
    # The retry policy's steps are rules to the feed: its filter offers them and finds the refusal they handled.
    handled = api.get(f"/api/v1/messages?rule=retry:vendor-locked&ticket={key}").json()["messages"]
    assert [m["message_id"] for m in handled] == [f"{key}-ack-2"], handled
    # What if: an operator's page; a viewer may not, and a session's form needs its token.
    vs = Admin(hub.url)
    assert vs.sign_in("viewer", SECRETS.viewer_password).status == 303
    assert vs.get("/whatif").status == 403
    assert "/whatif" not in vs.get(f"/conversations/{cid}").text
    s = Admin(hub.url)
    assert s.sign_in("admin", SECRETS.admin_password).status == 303
    assert '<option value="retry:vendor-locked:give-up"' in s.get("/feed").text
    page = s.get(f"/conversations/{cid}")
    assert f'href="/whatif?conversation={cid}"' in page.text and f'href="/conversations/{cid}/capture"' in page.text
    assert f'value="{cid}"' in s.get(f"/whatif?conversation={cid}").text
    message = json.dumps({"number": number, "priority": "1", "sys_updated_by": "zoe"})
    assert s.post("/whatif", form={"conversation": cid, "message": message}).status == 403
    tried = s.post("/whatif", form={"csrf": s.csrf, "conversation": cid, "endpoint": "", "type": "", "message": message})
    assert tried.status == 200, tried.text
    trace = html.unescape(re.search(r'<pre id="trace">(.*?)</pre>', tried.text, re.S).group(1)).splitlines()
    assert trace[0] == f"message: update of customer-a/{number} by zoe", trace
    assert trace[1].startswith(f"conversation {cid} (version {c['version']}): ") and f"vendor-x/{key}" in trace[1], trace
    assert "  counter retry:vendor-locked:update = 1" in trace, trace
    assert "  matched  update-at-vendor" in trace, trace
    sent = next(l for l in trace if l.startswith("  update to vendor-x (rule 'update-at-vendor'): "))
    assert json.loads(sent.split("): ", 1)[1])["fields"]["priority"]["name"] == "Highest"
    assert trace[-1] == "(nothing was sent or stored)"
    bad = s.post("/whatif", form={"csrf": s.csrf, "conversation": cid, "message": "{nope"})
    assert bad.status == 200 and "The message is not JSON" in bad.text
    gone = s.post("/whatif", form={"csrf": s.csrf, "conversation": "no-such", "message": message})
    assert "no conversation no-such" in gone.text
    after = api.get(f"/api/v1/conversations/{cid}").json()
    assert after["version"] == c["version"] and len(after["timeline"]) == len(c["timeline"])
    assert esb.take("sb.out.vendor-x", 1, timeout=1) == []
    # Capture: the conversation as a rule test, which passes against the configuration that decided it.
    captured = api.get(f"/conversations/{cid}/capture")
    assert captured.status == 200 and re.search(r'attachment; filename="captured-[0-9a-f]+_test\.yaml"', captured.headers["Content-Disposition"])
    assert '"retry:vendor-locked:resend"' in captured.text and "alice" in captured.text, captured.text
    config = tmp_path / "Config"
    shutil.copytree(hub.config, config)
    (config / "stories_test.yaml").unlink()  # written for the default LOCK_RETRY_*; this hub runs with 1 s and 2
    (config / "captured_test.yaml").write_text(captured.text)
    r = subprocess.run([BINARY, "rules", "test", str(config)], env=hub.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "1 passed, 0 failed" in r.stdout, r.stdout + r.stderr + captured.text


def test_why_no_rule_matched(hub, esb):
    number, key = f"INC{uuid.uuid4().int % 10**7:07d}", f"VX-{uuid.uuid4().int % 10**5}"
    flow(esb, number, key)
    esb.publish("vendor-x", jira(key, number, event="jira:issue_deleted"), message_id=f"{key}-deleted")
    api = viewer(hub)
    [hit] = conversation_of(api, key)
    deadline = time.time() + 20
    while time.time() < deadline:
        c = api.get(f"/api/v1/conversations/{hit['conversation_id']}").json()
        misses = [e for e in c["timeline"] if e["kind"] == "no-rule" and e["message_id"] == f"{key}-deleted"]
        if misses:
            break
        time.sleep(0.2)
    [entry] = misses
    why = {m["rule"]: m["reason"] for m in json.loads(entry["body"])}
    assert set(why) >= {"hand-back-to-customer", "create-at-vendor", "vendor-update-to-customer"}
    assert "this message is jira:issue_deleted" in why["hand-back-to-customer"]
    assert "this message is from vendor-x" in why["create-at-vendor"]
    feed = api.get(f"/api/v1/messages?ticket={key}&state=no-rule").json()["messages"]
    assert [m["message_id"] for m in feed] == [f"{key}-deleted"]


def test_discard_is_recorded_on_the_conversation(hub, esb):
    number, key = f"INC{uuid.uuid4().int % 10**7:07d}", f"VX-{uuid.uuid4().int % 10**5}"
    flow(esb, number, key)
    esb.publish("customer-a", incident(number, description="x" * 5000), message_id=f"{number}-big")
    api = operator(hub)
    p = parked_id(api, f"{number}-big")
    assert "exceeds the limit of 4096 bytes" in p["reason"] and p["endpoint"] == "customer-a"
    one = api.get(f"/api/v1/parked/{p['id']}").json()
    assert one["routing_key"] == "customer-a" and one["properties"]["content_type"] == "application/json"
    assert json.loads(one["body"])["number"] == number
    started = api.post("/api/v1/parked/actions", body={"action": "discard", "ids": [p["id"]], "reason": "an oversized test message"})
    job = wait_job(api, started.json()["id"])
    assert (job["state"], job["discarded"], job["missing"]) == ("done", 1, 0), job
    assert f"{number}-big" not in [m["message_id"] for m in api.get("/api/v1/parked").json()["messages"]]
    [hit] = conversation_of(api, number)
    c = api.get(f"/api/v1/conversations/{hit['conversation_id']}").json()
    [d] = [e for e in c["timeline"] if e["kind"] == "admin-discard"]
    assert "an oversized test message" in d["detail"] and d["who"] == "token:ops-script"
    records = api.get("/api/v1/audit").json()["records"]
    assert any(r["parked_id"] == p["id"] and r["action"] == "discard" and r["conversation_id"] == hit["conversation_id"]
               for r in records)


CUSTOMER_B = """
endpoints:
  customer-b:
    description: A third company, added after its first messages were parked
    ticket_id: $.number
rules:
  - name: b-to-vendor
    from: customer-b
    stop: true
    send:
      - to: vendor-x
        type: create
        body: {number: {field: $.number}, from_b: {value: true}}
"""


def test_replay_after_a_configuration_fix(own_vhost):
    vhost = own_vhost
    esb = ESB(vhost)
    before = Switchboard(vhost, env=ENV).start()
    number = f"B-{uuid.uuid4().hex[:8]}"
    try:
        esb.publish("customer-b", {"number": number}, message_id=f"{number}-1")
        api = operator(type("H", (), {"url": before.admin_url()}))
        p = parked_id(api, f"{number}-1")
        assert "unknown endpoint 'customer-b'" in p["reason"]
    finally:
        assert before.stop() == 0
    # The same installation (its store keeps the parked message), restarted with the fixed configuration.
    after = Switchboard(vhost, env=ENV, extra_config=CUSTOMER_B, data=before.data).start()
    try:
        api = Admin(after.admin_url(), token=SECRETS.operator_token)
        # The operator replays exactly what was shown, by its id.
        started = api.post("/api/v1/parked/actions", body={"action": "replay", "ids": [p["id"]], "reason": "customer-b configured"})
        assert started.status == 202
        job = wait_job(api, started.json()["id"])
        assert (job["state"], job["replayed"]) == ("done", 1), job
        got = [json.loads(b) for _, b in esb.take("sb.out.vendor-x", 1, timeout=20)]
        assert got == [{"number": number, "from_b": True}]
        record = next(r for r in api.get("/api/v1/audit").json()["records"] if r["parked_id"] == p["id"])
        assert record["action"] == "replay" and record["reason"] == "customer-b configured" and record["who"] == "token:ops-script"
    finally:
        assert after.stop() == 0


def make_customer_a_wait(esb):
    """A message waiting in sb.out.customer-a, which nobody here consumes."""
    esb.purge("sb.out.customer-a")
    number, key = f"INC{uuid.uuid4().int % 10**7:07d}", f"VX-{uuid.uuid4().int % 10**5}"
    flow(esb, number, key)
    esb.publish("vendor-x", jira(key, number, status="Returned to customer"), message_id=f"{key}-back")


def customer_a_health(api, until, timeout=30):
    deadline = time.time() + timeout
    while True:
        a = {e["name"]: e for e in api.get("/api/v1/endpoints").json()["endpoints"]}["customer-a"]
        if until(a) or time.time() >= deadline:
            return a
        time.sleep(0.3)


def test_endpoint_health(hub, esb):
    api = viewer(hub)
    h = api.get("/api/v1/endpoints").json()
    assert h["broker_error"] is None
    names = {e["name"]: e for e in h["endpoints"]}
    assert set(names) == {"customer-a", "vendor-x"}
    assert names["customer-a"]["inbound"]["consumers"] >= 1
    # Nobody reads sb.out.customer-a here; messages waiting there for an ESB that is not consuming warn.
    make_customer_a_wait(esb)
    if QUORUM:
        # Depths are exact at once. A quorum queue has no head_message_timestamp in the management API: the
        # oldest waiting message's age is unknown (classic queues: the next test).
        a = customer_a_health(api, lambda a: a["outbound"]["messages"])
        assert a["oldest_message_age_seconds"] is None
    else:
        # The head message's age comes from the management API's statistics (collected every 5 s).
        a = customer_a_health(api, lambda a: a["outbound"]["messages"] and a["oldest_message_age_seconds"] is not None)
        assert a["oldest_message_age_seconds"] is not None and a["oldest_message_age_seconds"] >= 0
    assert a["status"] == "warning" and any("nobody consumes sb.out.customer-a" in r for r in a["reasons"]), a
    esb.purge("sb.out.customer-a")


def test_the_oldest_waiting_messages_age_shows_for_classic_queues(own_vhost):
    """Classic queues' behaviour itself, in any mode: the management API gives their head message's
    timestamp, so the endpoint's health shows how long the oldest message has waited."""
    sb = Switchboard(own_vhost, env=dict(ENV, SB_QUEUE_TYPE="classic")).start()
    esb = ESB(own_vhost)
    try:
        assert mgmt("GET", f"/api/queues/{own_vhost}/sb.out.customer-a")["type"] == "classic"
        api = Admin(sb.admin_url(), token=SECRETS.viewer_token)
        make_customer_a_wait(esb)
        a = customer_a_health(api, lambda a: a["outbound"]["messages"] and a["oldest_message_age_seconds"] is not None)
        assert a["oldest_message_age_seconds"] is not None and a["oldest_message_age_seconds"] >= 0, a
        assert a["status"] == "warning", a
    finally:
        esb.close()
        assert sb.stop() == 0


def test_sign_in_is_rate_limited(own_vhost):
    sb = Switchboard(own_vhost, env=ENV).start()
    try:
        s = Admin(sb.admin_url())
        for _ in range(5):
            assert s.sign_in("admin", "wrong").status == 401
        held = s.sign_in("admin", SECRETS.admin_password)
        assert held.status == 429 and 1 <= int(held.headers["Retry-After"]) <= 5
        assert "sign-in refused" in sb.output()
        # No proxy is trusted here: a forwarding header names nobody, so it cannot dodge the limit.
        assert s.sign_in("admin", SECRETS.admin_password, headers={"X-Forwarded-For": "203.0.113.50"}).status == 429
        # Back-off, not lock-out: after the wait, the right password signs in.
        time.sleep(int(held.headers["Retry-After"]) + 0.2)
        assert s.sign_in("admin", SECRETS.admin_password).status == 303
    finally:
        sb.stop()


def test_behind_a_trusted_proxy_failures_of_one_client_lock_nobody_else_out(own_vhost):
    """Behind the TLS proxy every peer is 127.0.0.1: with it trusted, the client is the address its
    X-Forwarded-For names, so one client's wrong passwords hold back that client only; the answers carry
    HSTS (the browser spoke HTTPS to the proxy)."""
    sb = Switchboard(own_vhost, env=dict(ENV, SB_ADMIN_TRUSTED_PROXIES="127.0.0.1, ::1")).start()
    try:
        attacker = {"X-Forwarded-For": "203.0.113.9"}
        s = Admin(sb.admin_url())
        for _ in range(6):
            assert s.sign_in("admin", "wrong", headers=attacker).status in (401, 429)
        assert s.sign_in("admin", SECRETS.admin_password, headers=attacker).status == 429
        # The real admin, at another address, and another user from the attacker's address, sign in.
        admin = Admin(sb.admin_url())
        ok = admin.sign_in("admin", SECRETS.admin_password, headers={"X-Forwarded-For": "1.2.3.4, 198.51.100.7"})
        assert ok.status == 303
        assert admin.get("/feed", headers={"X-Forwarded-For": "198.51.100.7"}).headers["Strict-Transport-Security"] == "max-age=31536000"
        assert Admin(sb.admin_url()).sign_in("viewer", SECRETS.viewer_password, headers=attacker).status == 303
        log = sb.output()
        assert "203.0.113.9" in log and "198.51.100.7" in log
    finally:
        sb.stop()


def test_session_cookie_and_headers(hub):
    s = Admin(hub.url)
    a = s.sign_in("admin", SECRETS.admin_password)
    [cookie] = [c for c in a.headers.get_all("Set-Cookie") if c.startswith("sb_session=")]
    assert cookie.startswith("sb_session=") and "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    page = s.get("/feed")
    assert page.status == 200 and "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
    assert s.post("/sign-out", form={"csrf": s.csrf}).status == 303
    assert s.get("/feed").status == 303
    # `next` goes only to our own paths, in any encoding a browser would read as another host.
    for evil in ["//evil.example/", "/%09/evil.example", "/\t/evil.example", "/%0d%0a/evil.example", "/%5Cevil.example",
                 "/%2F%2Fevil.example", "/%252F/evil.example", "https://evil.example/"]:
        bounce = Admin(hub.url).sign_in("admin", SECRETS.admin_password, next=evil)
        assert bounce.status == 303 and bounce.headers["Location"] == "/", (evil, bounce.headers["Location"])
    assert Admin(hub.url).sign_in("admin", SECRETS.admin_password, next="/feed?state=failed").headers["Location"] == "/feed?state=failed"
    # Served over our own TLS on localhost: no HSTS (it would pin every port of localhost to HTTPS).
    assert "Strict-Transport-Security" not in page.headers


def test_sign_in_needs_its_form_token(hub):
    """Login CSRF: another site's page can post the sign-in form, but not with the token of our cookie."""
    form = {"user": "admin", "password": SECRETS.admin_password, "next": "/"}
    # No cookie, no token; a token but no cookie; a cookie but another token.
    assert Admin(hub.url).post("/sign-in", form=form).status == 403
    assert Admin(hub.url).post("/sign-in", form=dict(form, signin_csrf="0" * 48)).status == 403
    s = Admin(hub.url)
    page = s.get("/sign-in")
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith("sb_signin=") and "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert s.post("/sign-in", form=dict(form, signin_csrf="0" * 48)).status == 403
    # The browser's token is kept across loads of the page (a favicon's redirect loads it too).
    again = s.get("/sign-in")
    assert "Set-Cookie" not in again.headers
    page = s.get("/sign-in")
    token = re.search(r'name="signin_csrf" value="([0-9a-f]+)"', page.text).group(1)
    assert s.post("/sign-in", form=dict(form, signin_csrf=token)).status == 303


def test_no_secret_in_a_page_an_answer_or_the_log(hub, esb):
    s = Admin(hub.url)
    s.sign_in("admin", SECRETS.admin_password)
    api = operator(hub)
    shown = [s.get(p).text for p in ["/", "/feed", "/endpoints", "/parked", "/config", "/audit"]]
    shown += [api.get(p).text for p in ["/api/v1/config", "/api/v1/endpoints", "/api/v1/me", "/api/v1/parked", "/api/v1/audit"]]
    shown.append(hub.output())
    for text in shown:
        for secret in SECRETS.all():
            assert secret not in text
        assert "guest:guest" not in text
        assert "$2b$" not in text


def test_tls_1_2_and_1_3_only(hub):
    port = hub.url.rsplit(":", 1)[1]
    for version, accepted in [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)]:
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", version,
                            "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile", hub.env["SB_ADMIN_TLS_CERT"].replace("server.pem", "ca.pem")],
                           input="", capture_output=True, text=True, timeout=20)
        out = r.stdout + r.stderr
        if accepted:
            assert re.search(r"New, TLSv1\.[23], Cipher is [A-Z]", out), (version, out)
            assert "Verify return code: 0 (ok)" in out
        else:
            # The server answers the client's offer with a protocol_version alert (the client was willing).
            assert "alert protocol version" in out and "Cipher is (NONE)" in out, (version, out)


def test_admin_alone_beside_a_fleet(own_vhost, store_url):
    """`switchboard admin` as a process of its own next to store, intake and workers: with SQLite it opens the
    store's file beside the store role, with PostgreSQL it is one more client."""
    from conftest import Fleet
    vhost = own_vhost
    esb = ESB(vhost)
    fleet = Fleet(vhost, env=ENV, store_url=store_url).start()
    admin = Switchboard(vhost, env=ENV, args=["admin"], consumers=0, store_url=store_url, data=fleet.data).start()
    try:
        assert "web UI" not in fleet.output()
        api = Admin(admin.admin_url(), token=SECRETS.operator_token)
        number, key = f"INC{uuid.uuid4().int % 10**7:07d}", f"VX-{uuid.uuid4().int % 10**5}"
        flow(esb, number, key)
        [a] = conversation_of(api, number)
        [x] = conversation_of(api, key)
        assert a["conversation_id"] == x["conversation_id"]
        esb.publish("customer-a", incident(number, description="x" * 5000), message_id=f"{number}-big")
        p = parked_id(api, f"{number}-big")
        job = wait_job(api, api.post("/api/v1/parked/actions", body={"action": "discard", "ids": [p["id"]], "reason": "fleet"}).json()["id"])
        assert job["discarded"] == 1
        c = api.get(f"/api/v1/conversations/{a['conversation_id']}").json()
        assert any(e["kind"] == "admin-discard" for e in c["timeline"])
        # The fleet goes on committing while the admin reads and writes its audit beside it.
        esb.publish("customer-a", incident(number, priority="3", sys_updated_by="carol"), message_id=f"{number}-after")
        assert len(esb.take("sb.out.vendor-x", 1, timeout=20)) == 1
    finally:
        assert admin.stop() == 0
        assert fleet.stop() == 0
        esb.close()


def test_a_bulk_discard_can_be_cancelled_and_loses_nothing(own_vhost):
    vhost = own_vhost
    esb = ESB(vhost)
    sb = Switchboard(vhost, env=ENV).start()
    try:
        for i in range(400):
            esb.publish("customer-a", b"{broken", message_id=f"bulk-{i}", raw=True)
        api = operator(type("H", (), {"url": sb.admin_url()}))
        deadline = time.time() + 30
        while api.get("/api/v1/parked").json()["total"] < 400 and time.time() < deadline:
            time.sleep(0.3)
        listed = api.get("/api/v1/parked").json()
        assert listed["groups"] == [{"reason": listed["messages"][0]["reason_group"], "count": 400}]
        ids = [m["id"] for m in listed["messages"]]
        started = api.post("/api/v1/parked/actions", body={"action": "discard", "ids": ids, "reason": "bulk test"}).json()
        cancelled = api.post(f"/api/v1/parked/actions/{started['id']}/cancel").json()
        assert cancelled["id"] == started["id"]
        job = wait_job(api, started["id"])
        assert job["state"] == "cancelled" and job["discarded"] < 400, job
        # What the job did not reach is still parked; what it reached is gone and audited, nothing else.
        deadline = time.time() + 10
        while api.get("/api/v1/parked").json()["total"] != 400 - job["discarded"] and time.time() < deadline:
            time.sleep(0.3)
        assert api.get("/api/v1/parked").json()["total"] == 400 - job["discarded"]
        audited = [r for r in api.get("/api/v1/audit?limit=1000").json()["records"] if r["reason"] == "bulk test"]
        assert len(audited) == job["discarded"]
    finally:
        sb.stop()
        esb.close()


DELAYED = """
rules:
  - name: later-to-vendor
    priority: 1000
    from: customer-a
    when: {field: $.delay_me, exists: true}
    stop: true
    send:
      - to: vendor-x
        type: update
        delay: 10m
        body: {number: {field: $.number}}
"""


def test_endpoint_health_counts_delayed_messages(own_vhost):
    esb = ESB(own_vhost)
    sb = Switchboard(own_vhost, env=ENV, extra_config=DELAYED).start()
    try:
        api = viewer(type("H", (), {"url": sb.admin_url()}))
        for i in range(3):
            esb.publish("customer-a", incident(f"INC-D{i}", delay_me=True), message_id=f"delayed-{i}")
        deadline = time.time() + 20
        while time.time() < deadline:
            h = api.get("/api/v1/endpoints").json()
            x = {e["name"]: e for e in h["endpoints"]}["vendor-x"]
            if x["delayed_pending"] == 3 and h["delayed_pending"] == 3:
                break
            time.sleep(0.3)
        assert x["delayed_pending"] == 3 and h["delayed_pending"] == 3, h
        assert {e["name"]: e for e in h["endpoints"]}["customer-a"]["delayed_pending"] == 0
        assert esb.depth("sb.out.vendor-x") == 0
    finally:
        sb.stop()
        esb.close()


def test_erasing_a_conversation_blanks_its_contents_and_keeps_what_happened(hub, esb):
    """A data-protection request: the conversation's bodies, what its timeline says of them, its attributes,
    its outbound bodies and its tickets' parked copies go; when, who, which rule stays; audited; the ticket
    goes on working afterwards. Through the API, then the CLI."""
    api = operator(hub)
    secret = "secret-" + uuid.uuid4().hex[:8]
    number = f"INC{uuid.uuid4().int % 10**7:07d}"
    local = {"value": "g-local", "display_value": "Local Service Desk"}
    esb.publish("customer-a", incident(number, assignment_group=local, description=secret), message_id=f"{number}-1")
    esb.publish("customer-a", incident(number, description=secret), message_id=f"{number}-2")
    [(create, body)] = esb.take("sb.out.vendor-x", 1)
    assert secret in body.decode()
    # The same message_id with other content: parked, with the ticket's id.
    esb.publish("customer-a", incident(number, description=secret + "-other"), message_id=f"{number}-2")
    p = parked_id(api, f"{number}-2")
    assert p["ticket"] == number
    [hit] = conversation_of(api, number)
    cid = hit["conversation_id"]
    before = api.get(f"/api/v1/conversations/{cid}").json()
    assert secret in json.dumps(before) and before["attributes"]

    assert viewer(hub).post(f"/api/v1/conversations/{cid}/erase", body={"reason": "x"}).status == 403
    assert api.post(f"/api/v1/conversations/{cid}/erase", body={}).status == 400
    answer = api.post(f"/api/v1/conversations/{cid}/erase", body={"reason": "data-protection request DP-1"})
    assert answer.status == 200, answer.text
    counts = answer.json()
    assert counts["attributes"] >= 1 and counts["parked"] == 1 and counts["outbound_bodies"] >= 1 and counts["timeline_entries"] >= 3, counts
    after = api.get(f"/api/v1/conversations/{cid}").json()
    assert secret not in json.dumps(after) and not after["attributes"]
    assert [e["kind"] for e in after["timeline"] if not e["kind"].startswith("admin-")] == \
        [e["kind"] for e in before["timeline"] if not e["kind"].startswith("admin-")]
    assert any(e["kind"] == "admin-erase" and "DP-1" in e["detail"] for e in after["timeline"])
    assert p["id"] not in [m["id"] for m in api.get("/api/v1/parked").json()["messages"]]
    assert secret not in hub.timeline("customer-a", number)
    rows = hub.query(f"SELECT length(body) FROM outbox WHERE conversation_id = '{cid}'")
    assert rows and all(r[0] == "0" for r in rows), rows
    # The ticket goes on: the next update is decided on the conversation as it is now.
    esb.publish("customer-a", incident(number, priority="1", description="after"), message_id=f"{number}-3")
    esb.publish("vendor-x", {"status": "ok", "key": "VX-" + number}, type="ack", correlation_id=create.message_id,
                message_id=f"{number}-ack")
    deadline = time.time() + 20
    while time.time() < deadline and "after" not in json.dumps(api.get(f"/api/v1/conversations/{cid}").json()):
        time.sleep(0.2)
    assert "after" in json.dumps(api.get(f"/api/v1/conversations/{cid}").json())
    # The CLI does the same, by either side's ticket id.
    r = subprocess.run([BINARY, "erase", "customer-a", number, "--reason", "DP-2", "--config", hub.config], env=hub.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"conversation {cid}: erased" in r.stdout
    assert "after" not in json.dumps(api.get(f"/api/v1/conversations/{cid}").json())
    records = [a for a in api.get("/api/v1/audit").json()["records"] if a["conversation_id"] == cid and a["action"] == "erase"]
    assert {a["reason"] for a in records} == {"data-protection request DP-1", "DP-2"} and {a["who"] for a in records} >= {"token:ops-script"}
    missing = subprocess.run([BINARY, "erase", "customer-a", "NO-SUCH", "--reason", "x", "--config", hub.config], env=hub.env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no conversation has customer-a/NO-SUCH" in missing.stderr
