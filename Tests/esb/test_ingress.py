"""Issue 26, webhook ingress: tools without an ESB post to `POST /hooks/<endpoint>`. Each request is
authenticated per endpoint (bearer, URL token, Basic with a bcrypt hash, HMAC over the raw body), published to
sb.in as the ingress's own broker user (write on sb.in only) and answered once the broker confirmed it; what
intake cannot use is parked and answered 202 with the parked id; a delivery id header makes a retried
delivery apply once; 503 with Retry-After only while the broker refuses the ingress."""
import base64
import hashlib
import hmac
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import subprocess

import pytest

from conftest import AMQP_HOST, AMQP_PORT, BINARY, ESB, REPO, Switchboard, amqp_url, free_port, fresh_vhost, mgmt

# One per test process: two xdist workers setting up this module at once must not race on one broker user.
INGRESS_USER = "sb-test-ingress-" + uuid.uuid4().hex[:8]
INGRESS_PASSWORD = "sb-test-ingress-pw"
TOKEN = "sbt_" + "a1" * 24
URL_TOKEN = "sbt_" + "b2" * 24
SECRET = "shared secret for hmac"
# bcrypt of "hook-password" at cost 4 (`switchboard admin hash-password --cost 4`)
BASIC_USER = "servicenow"
BASIC_PASSWORD = "hook-password"


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def config(port, secret_file, basic_hash):
    return f"""
ingress:
  listen: 127.0.0.1:{port}
  plain_http: true
  broker_url: ${{SB_INGRESS_BROKER_URL}}
  confirm_timeout_ms: 2000
  retry_after_seconds: 7
endpoints:
  hook-sn:
    ticket_id: $.number
    who: $.sys_updated_by
    webhook:
      auth: bearer
      token_sha256: {sha(TOKEN)}
      max_bytes: 4096
  hook-url:
    ticket_id: $.number
    webhook:
      auth: url_token
      token_sha256: {sha(URL_TOKEN)}
  hook-basic:
    ticket_id: $.number
    webhook:
      auth: basic
      user: {BASIC_USER}
      password_hash: "{basic_hash}"
  hook-jira:
    ticket_id: $.issue.key
    type_field: $.webhookEvent
    webhook:
      sender: jira
      auth: hmac
      signature_header: X-Hub-Signature
      secret_file: {secret_file}
rules:
  - name: test-hook-relay
    priority: 100000
    from: [hook-sn, hook-url, hook-basic, hook-jira]
    stop: true
    send:
      - to: vendor-x
        type: hook-relay
        body: {{via: {{field: $.via}}}}
"""


@pytest.fixture(scope="module")
def hook_vhost():
    """This module's own vhost: nothing an earlier test left in the session's (a delayed message due later)
    reaches sb.out.vendor-x here."""
    yield from fresh_vhost("sb-test-ingress-")


@pytest.fixture
def esb(hook_vhost):
    e = ESB(hook_vhost)
    e.purge("sb.out.vendor-x")
    yield e
    e.close()


@pytest.fixture(scope="module")
def ingress(hook_vhost):
    vhost = hook_vhost
    """A Switchboard with an ingress publishing as a user that may write to sb.in only."""
    # The user as operations make it (Deploy/rabbitmq/users.sh ingress): write on sb.in, nothing else.
    env = dict(os.environ, SB_USER_PASSWORD=INGRESS_PASSWORD, RABBITMQCTL=f"bash {REPO}/Deploy/local/rabbitmq.sh ctl")
    subprocess.run(["bash", os.path.join(REPO, "Deploy", "rabbitmq", "users.sh"), "ingress", vhost, INGRESS_USER], env=env, check=True,
                   capture_output=True, timeout=120)
    assert mgmt("GET", f"/api/permissions/{vhost}/{INGRESS_USER}")["write"] == r"^sb\.in$"
    port = free_port()
    directory = os.path.join(os.environ.get("TMPDIR", "/tmp"), "sb-ingress-" + uuid.uuid4().hex[:8])
    os.makedirs(directory)
    secret_file = os.path.join(directory, "jira.secret")
    with open(secret_file, "w") as f:
        f.write(SECRET + "\n")
    basic_hash = subprocess.run([BINARY, "admin", "hash-password", "--cost", "4"], input=BASIC_PASSWORD + "\n", text=True,
                                capture_output=True, check=True).stdout.strip()
    url = f"amqp://{INGRESS_USER}:{INGRESS_PASSWORD}@{AMQP_HOST}:{AMQP_PORT}/{urllib.parse.quote(vhost, safe='')}"
    sb = Switchboard(vhost, env={"SB_INGRESS_BROKER_URL": url}, extra_config=config(port, secret_file, basic_hash)).start()
    sb.base = f"http://127.0.0.1:{port}"
    yield sb
    sb.stop()
    mgmt("DELETE", f"/api/users/{INGRESS_USER}")


def post(sb, path, body, headers=None, raw=False):
    data = body if raw else json.dumps(body).encode()
    req = urllib.request.Request(sb.base + path, data=data, method="POST", headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, dict(e.headers), (json.loads(text) if text else None)


def bearer(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def signed(body, secret=SECRET):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def relayed(esb, count, timeout=20):
    return [json.loads(b) for _, b in esb.take("sb.out.vendor-x", count, timeout=timeout)]


def test_an_authenticated_webhook_flows_through_the_rules_and_is_answered_after_the_broker_confirmed(esb, ingress):
    number = "HK" + uuid.uuid4().hex[:8]
    status, headers, answer = post(ingress, "/hooks/hook-sn", {"number": number, "via": "bearer", "sys_updated_by": "sn.user"}, bearer())
    assert status == 200, answer
    assert answer["status"] == "accepted" and answer["message_id"]
    assert relayed(esb, 1) == [{"via": "bearer"}]
    shown = ingress.timeline("hook-sn", number)
    assert "sn.user" in shown, shown


def test_each_kind_of_authentication_admits_the_right_credentials_only(esb, ingress):
    n = uuid.uuid4().hex[:8]
    # URL token
    assert post(ingress, f"/hooks/hook-url/{URL_TOKEN}", {"number": "U" + n, "via": "url"})[0] == 200
    assert post(ingress, "/hooks/hook-url/sbt_wrong", {"number": "U" + n, "via": "url-wrong"})[0] == 401
    assert post(ingress, "/hooks/hook-url", {"number": "U" + n, "via": "url-none"})[0] == 401
    # Basic (twice: the second is answered from the verified credentials, same outcome)
    good = {"Authorization": "Basic " + base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(f"{BASIC_USER}:nope".encode()).decode()}
    assert post(ingress, "/hooks/hook-basic", {"number": "B" + n, "via": "basic"}, good)[0] == 200
    assert post(ingress, "/hooks/hook-basic", {"number": "B" + n, "via": "basic-again"}, good)[0] == 200
    status, headers, _ = post(ingress, "/hooks/hook-basic", {"number": "B" + n, "via": "basic-wrong"}, bad)
    assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Basic")
    # HMAC of the raw body
    body = json.dumps({"issue": {"key": "J-" + n}, "webhookEvent": "jira:issue_updated", "via": "hmac"}).encode()
    assert post(ingress, "/hooks/hook-jira", body, {"X-Hub-Signature": signed(body)}, raw=True)[0] == 200
    assert post(ingress, "/hooks/hook-jira", body, {"X-Hub-Signature": signed(body, "other secret")}, raw=True)[0] == 401
    assert post(ingress, "/hooks/hook-jira", body + b" ", {"X-Hub-Signature": signed(body)}, raw=True)[0] == 401
    assert post(ingress, "/hooks/hook-jira", body, raw=True)[0] == 401
    # Bearer: wrong token, and another endpoint's token
    assert post(ingress, "/hooks/hook-sn", {"number": "S" + n, "via": "bearer-wrong"}, bearer("sbt_nope"))[0] == 401
    assert post(ingress, "/hooks/hook-sn", {"number": "S" + n, "via": "bearer-other"}, bearer(URL_TOKEN))[0] == 401
    # No such webhook (an endpoint without one, or none at all)
    assert post(ingress, "/hooks/customer-a", {"number": "S" + n}, bearer())[0] == 404
    assert post(ingress, "/hooks/nobody", {"number": "S" + n}, bearer())[0] == 404
    got = sorted(m["via"] for m in relayed(esb, 4))
    assert got == ["basic", "basic-again", "hmac", "url"]
    assert esb.drain("sb.out.vendor-x", quiet=1.5) == []


def test_content_intake_cannot_use_is_parked_and_answered_202_with_its_parked_id(esb, ingress):
    n = uuid.uuid4().hex[:8]
    status, _, answer = post(ingress, "/hooks/hook-sn", b"<xml>not json</xml>", bearer(), raw=True)
    assert status == 202, answer
    assert answer["status"] == "parked" and len(answer["parked_id"]) == 16 and "JSON" in answer["reason"]
    status, _, no_ticket = post(ingress, "/hooks/hook-sn", {"short_description": "no number " + n}, bearer())
    assert status == 202 and no_ticket["status"] == "parked", no_ticket
    deadline = time.time() + 20
    rows = {}
    while time.time() < deadline and not {answer["parked_id"], no_ticket["parked_id"]} <= rows.keys():
        rows = {r["id"]: r for r in ingress.parked()}
        time.sleep(0.3)
    assert answer["parked_id"] in rows and no_ticket["parked_id"] in rows, rows.keys()
    assert rows[answer["parked_id"]]["endpoint"] == "hook-sn" and rows[answer["parked_id"]]["body"] == "<xml>not json</xml>"
    assert rows[no_ticket["parked_id"]]["stage"] == "intake"
    # Credentials never travel with the message.
    for r in (rows[answer["parked_id"]], rows[no_ticket["parked_id"]]):
        assert TOKEN not in json.dumps(r), r


def test_a_body_over_the_endpoints_limit_is_refused_413_and_nothing_is_published(esb, ingress):
    big = {"number": "BIG", "via": "x" * 5000}
    status, _, answer = post(ingress, "/hooks/hook-sn", big, bearer())
    assert status == 413 and "4096" in answer["detail"]
    assert esb.drain("sb.out.vendor-x", quiet=1.0) == []


def test_a_retried_delivery_with_the_same_identifier_applies_once(esb, ingress):
    key = "J-" + uuid.uuid4().hex[:8]
    delivery = str(uuid.uuid4())
    body = json.dumps({"issue": {"key": key}, "webhookEvent": "jira:issue_updated", "via": "retried"}).encode()
    answers = []
    for retry in range(3):
        headers = {"X-Hub-Signature": signed(body), "X-Atlassian-Webhook-Identifier": delivery, "X-Atlassian-Webhook-Retry": str(retry)}
        status, _, answer = post(ingress, "/hooks/hook-jira", body, headers, raw=True)
        assert status == 200, answer
        answers.append(answer["message_id"])
    assert answers == [delivery] * 3
    assert relayed(esb, 1) == [{"via": "retried"}]
    assert esb.drain("sb.out.vendor-x", quiet=2.0) == []


def test_while_the_broker_refuses_the_ingress_it_answers_503_with_retry_after_then_recovers(esb, ingress, hook_vhost):
    vhost = hook_vhost
    assert post(ingress, "/hooks/hook-sn", {"number": "OUT-0", "via": "wrong"}, bearer("sbt_wrong"))[0] == 401
    mgmt("DELETE", f"/api/permissions/{vhost}/{INGRESS_USER}")
    try:
        for c in mgmt("GET", "/api/connections") or []:
            if c.get("user") == INGRESS_USER and c.get("vhost") == vhost:
                mgmt("DELETE", "/api/connections/" + urllib.parse.quote(c["name"], safe=""))
        deadline = time.time() + 20
        status = None
        while time.time() < deadline:
            status, headers, answer = post(ingress, "/hooks/hook-sn", {"number": "OUT-1", "via": "outage"}, bearer())
            if status == 503:
                break
            time.sleep(0.3)
        assert status == 503, (status, answer)
        assert headers.get("Retry-After") == "7" and answer["status"] == "unavailable"
    finally:
        mgmt("PUT", f"/api/permissions/{vhost}/{INGRESS_USER}", {"configure": "^$", "write": r"^sb\.in$", "read": "^$"})
    deadline = time.time() + 40
    while time.time() < deadline:
        status, _, answer = post(ingress, "/hooks/hook-sn", {"number": "OUT-2", "via": "recovered"}, bearer())
        if status == 200:
            break
        time.sleep(0.5)
    assert status == 200, answer
    got = [m["via"] for m in relayed(esb, 1)]
    # What was refused 503 was not published: the sender retries it.
    assert got == ["recovered"]
    assert esb.drain("sb.out.vendor-x", quiet=1.5) == []
    metrics = ingress.metrics()
    assert re.search(r'switchboard_ingress_requests_total\{endpoint="hook-sn",outcome="unavailable"\} [1-9]', metrics), metrics
    assert re.search(r'switchboard_ingress_requests_total\{endpoint="hook-sn",outcome="accepted"\} [1-9]', metrics)
    assert re.search(r'switchboard_ingress_requests_total\{endpoint="hook-sn",outcome="unauthorized"\} [1-9]', metrics)
    assert re.search(r'switchboard_ingress_seconds_count\{endpoint="hook-sn"\} [1-9]', metrics)


def test_the_ingress_cannot_be_run_as_switchboards_own_broker_user(vhost):
    sb = Switchboard(vhost, env={"SB_INGRESS_BROKER_URL": amqp_url(vhost)}, extra_config=config(free_port(), "/nonexistent", "$2b$04$abcdefghijklmnopqrstuv"),
                     args=("ingress",), consumers=0).start()
    try:
        deadline = time.time() + 20
        while sb.proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert sb.proc.poll() not in (None, 0)
        assert "Switchboard's own" in sb.output()
    finally:
        sb.stop()


def test_the_ingress_serves_https_with_tls_1_2_or_later_only(ingress, hook_vhost):
    import ssl

    from conftest import TLS_DIR
    port = free_port()
    url = f"amqp://{INGRESS_USER}:{INGRESS_PASSWORD}@{AMQP_HOST}:{AMQP_PORT}/{urllib.parse.quote(hook_vhost, safe='')}"
    tls = config(port, "/nonexistent", "$2b$04$abcdefghijklmnopqrstuv").replace(
        "  plain_http: true\n", f"  tls_cert_file: {os.path.join(TLS_DIR, 'server.pem')}\n  tls_key_file: {os.path.join(TLS_DIR, 'server.key')}\n")
    # Only endpoints whose secrets exist: the hmac one reads /nonexistent.
    tls = tls.replace("      secret_file: /nonexistent", f"      secret_file: {os.path.abspath(__file__)}")
    sb = Switchboard(hook_vhost, env={"SB_INGRESS_BROKER_URL": url}, extra_config=tls, args=("ingress",), consumers=0).start()
    try:
        context = ssl.create_default_context(cafile=os.path.join(TLS_DIR, "ca.pem"))
        deadline, status = time.time() + 20, None
        while time.time() < deadline:
            req = urllib.request.Request(f"https://localhost:{port}/hooks/hook-sn", data=json.dumps({"number": "TLS-1", "via": "tls"}).encode(),
                                         method="POST", headers={"content-type": "application/json", **bearer()})
            try:
                with urllib.request.urlopen(req, timeout=5, context=context) as r:
                    status = r.status
                    break
            except urllib.error.HTTPError as e:
                status = e.code
                if status != 503:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.3)
        assert status == 200, sb.output()
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(os.path.join(TLS_DIR, "ca.pem"))
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            old.set_ciphers("DEFAULT:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            import socket
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with old.wrap_socket(raw, server_hostname="localhost"):
                    pass
    finally:
        sb.stop()
