"""Issue 26, REST delivery with the jira-cloud profile against a fake Jira Cloud (a real HTTP server): create
(201 {id, key}, the key linked by the answer), edit by key (PUT, 204, no body), a plain-text comment sent as
ADF, and a per-issue 429 with Retry-After honoured by a retry policy that waits what the answer said."""
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ESB, Switchboard, free_port, fresh_vhost

TOKEN = "jira-" + uuid.uuid4().hex


class FakeJira:
    def __init__(self):
        self.issues, self.requests, self.limited = {}, [], {}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, code, body=None, headers=None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with fake.lock:
                    fake.requests.append((time.monotonic(), self.command, self.path, body))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self.answer(401, {"errorMessages": ["You are not authenticated."]})
                parts = self.path.strip("/").split("/")
                if parts[:4] != ["rest", "api", "3", "issue"]:
                    return self.answer(404, {"errorMessages": ["Not found"]})
                with fake.lock:
                    if self.command == "POST" and len(parts) == 4:
                        key = f"VX-{len(fake.issues) + 1}"
                        fake.issues[key] = {"fields": body["fields"], "comments": []}
                        return self.answer(201, {"id": str(10000 + len(fake.issues)), "key": key, "self": "x"})
                    key = parts[4] if len(parts) > 4 else None
                    if key not in fake.issues:
                        return self.answer(404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]})
                    if fake.limited.get(key, 0) > 0:
                        fake.limited[key] -= 1
                        return self.answer(429, {"errorMessages": ["Rate limit exceeded."]},
                                           {"Retry-After": "2", "RateLimit-Reason": "jira-per-issue-on-write"})
                    if self.command == "PUT" and len(parts) == 5:
                        fake.issues[key]["fields"].update(body["fields"])
                        return self.answer(204)
                    if self.command == "POST" and parts[5:] == ["comment"]:
                        fake.issues[key]["comments"].append(body["body"])
                        return self.answer(201, {"id": "1"})
                return self.answer(405, {"errorMessages": ["Method not allowed"]})

            do_POST = do_PUT = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def config(port):
    return f"""
endpoints:
  jira-rest:
    ticket_id: $.issue.key
    rest:
      profile: jira-cloud
      base_url: http://127.0.0.1:{port}
      auth: bearer
      token_env: SB_TEST_JIRA_TOKEN
rules:
  - name: test-jira-create
    priority: 100000
    from: customer-a
    when:
      - {{field: $.test_jira, exists: true}}
      - {{reference: jira-rest, exists: false}}
    stop: true
    send:
      - to: jira-rest
        type: create
        body: {{fields: {{summary: {{field: $.short_description}}, project: {{key: VX}}}}}}
  - name: test-jira-comment
    priority: 100001
    from: customer-a
    when:
      - {{field: $.test_jira, exists: true}}
      - {{field: $.comments, exists: true}}
      - {{reference: jira-rest, exists: true}}
    stop: true
    send:
      - to: jira-rest
        type: comment
        body: {{key: {{reference: jira-rest}}, body: {{field: $.comments}}}}
  - name: test-jira-update
    priority: 100000
    from: customer-a
    when:
      - {{field: $.test_jira, exists: true}}
      - {{reference: jira-rest, exists: true}}
    stop: true
    send:
      - to: jira-rest
        type: update
        body: {{key: {{reference: jira-rest}}, fields: {{summary: {{field: $.short_description}}}}}}
retries:
  - name: test-jira-limited
    endpoint: jira-rest
    when:
      - {{field: $.retryable, equals: true}}
    wait: {{from: $.retry_after, default: 1s, max: 10s}}
    attempts: 3
    resend: same
"""


@pytest.fixture(scope="module")
def jira():
    gen = fresh_vhost("sb-test-jira-")
    vhost = next(gen)
    fake = FakeJira()
    sb = Switchboard(vhost, env={"SB_TEST_JIRA_TOKEN": TOKEN}, extra_config=config(fake.port)).start()
    esb = ESB(vhost)
    yield sb, fake, esb
    esb.close()
    sb.stop()
    fake.stop()
    next(gen, None)


def wait(what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    return what()


def test_create_edit_comment_and_a_per_issue_limit_waited_out(jira):
    sb, fake, esb = jira
    number = "INCJ" + uuid.uuid4().hex[:6]
    esb.publish("customer-a", {"number": number, "test_jira": True, "short_description": "first"}, message_id=f"{number}-1")

    def key():
        with fake.lock:
            return next((k for k, i in fake.issues.items() if i["fields"].get("summary") in ("first", "second")), None)
    k = wait(key)
    assert k, fake.requests
    assert wait(lambda: k in sb.timeline("customer-a", number)), sb.timeline("customer-a", number)
    with fake.lock:
        fake.limited[k] = 1
    esb.publish("customer-a", {"number": number, "test_jira": True, "short_description": "second"}, message_id=f"{number}-2")
    assert wait(lambda: fake.issues[k]["fields"]["summary"] == "second", timeout=40), fake.requests
    puts = [(t, b) for (t, m, p, b) in fake.requests if m == "PUT" and p.endswith("/" + k)]
    assert len(puts) == 2 and all(b == {"fields": {"summary": "second"}} for _, b in puts), puts
    # Not before the Retry-After (2 s) the answer named.
    assert puts[1][0] - puts[0][0] >= 2.0, puts
    esb.publish("customer-a", {"number": number, "test_jira": True, "short_description": "second", "comments": "line one\nline two"},
                message_id=f"{number}-3")
    assert wait(lambda: fake.issues[k]["comments"]), fake.requests
    adf = fake.issues[k]["comments"][0]
    assert adf["type"] == "doc" and [p["content"][0]["text"] for p in adf["content"]] == ["line one", "line two"], adf
    shown = sb.timeline("customer-a", number)
    assert "retry:test-jira-limited" in shown and "Rate limit exceeded" in shown, shown
