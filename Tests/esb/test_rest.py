"""Issue 26, REST delivery: an endpoint with a `rest` section is delivered by Switchboard itself. Against a
fake ServiceNow (a real HTTP server: Table API, Basic authentication), a ticket is created (201, its sys_id
linked as the conversation's reference by the answer alone), updated by that reference (PATCH), and the
seed's locked ticket (403 "aborted by business rule") is retried by the retry policy, then given up with a
comment back to the sender's ESB."""
import base64
import json
import socket
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port
from fake_apis import rest_hub, wait

PASSWORD = "sn-" + uuid.uuid4().hex


class FakeServiceNow:
    """The Table API of one table: POST creates (201, result.sys_id), PATCH updates (200), 403 from a business
    rule while a record is locked, 401 without the right Basic credentials. Records every request."""

    def __init__(self):
        self.records, self.requests, self.locked = {}, [], {}
        # Creates to make and then answer with a dropped connection (the outcome unknown to the sender).
        self.reset_creates = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                with fake.lock:
                    fake.requests.append((self.command, self.path, self.headers.get("Authorization"), body))
                expected = "Basic " + base64.b64encode(f"sb-integration:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self.answer(401, {"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}})
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:4] != ["api", "now", "table", "incident"]:
                    return self.answer(404, {"error": {"message": "Invalid table"}})
                with fake.lock:
                    if self.command == "GET" and len(parts) == 4:
                        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("sysparm_query", [""])[0]
                        field, _, value = query.partition("=")
                        rows = [{"sys_id": r["sys_id"]} for r in fake.records.values() if field and str(r.get(field)) == value]
                        return self.answer(200, {"result": rows[:1]})
                    if self.command == "POST" and len(parts) == 4:
                        sys_id = uuid.uuid4().hex
                        fake.records[sys_id] = dict(body, sys_id=sys_id)
                        if fake.reset_creates > 0:
                            fake.reset_creates -= 1
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return None
                        return self.answer(201, {"result": fake.records[sys_id]})
                    if self.command == "PATCH" and len(parts) == 5 and parts[4] in fake.records:
                        sys_id = parts[4]
                        if fake.locked.get(sys_id, 0) > 0:
                            fake.locked[sys_id] -= 1
                            return self.answer(403, {"error": {
                                "message": "Operation against file 'incident' was aborted by Business Rule 'Ticket locked^" + sys_id + "'.",
                                "detail": "Operation against file 'incident' was aborted by Business Rule"}, "status": "failure"})
                        fake.records[sys_id].update(body)
                        return self.answer(200, {"result": fake.records[sys_id]})
                return self.answer(404, {"error": {"message": "No Record found"}})

            do_GET = do_POST = do_PATCH = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def patches(self, sys_id):
        with self.lock:
            return [b for (m, p, _, b) in self.requests if m == "PATCH" and p.endswith("/" + sys_id)]

    def stop(self):
        self.server.shutdown()


def config(port):
    return f"""
endpoints:
  sn-rest:
    ticket_id: $.sys_id
    rest:
      profile: servicenow-table
      base_url: http://127.0.0.1:{port}
      table: incident
      auth: basic
      user: sb-integration
      password_env: SB_TEST_SN_PASSWORD
      hold_ticket_on: [403]
      hold_for: 1m
rules:
  - name: test-rest-create
    priority: 100000
    from: customer-a
    when:
      - {{field: $.test_rest, exists: true}}
      - {{reference: sn-rest, exists: false}}
    stop: true
    send:
      - to: sn-rest
        type: create
        body: {{short_description: {{field: $.short_description}}, correlation_id: {{field: $.number}}}}
  - name: test-rest-update
    priority: 100000
    from: customer-a
    when:
      - {{field: $.test_rest, exists: true}}
      - {{reference: sn-rest, exists: true}}
    stop: true
    send:
      - to: sn-rest
        type: update
        body: {{sys_id: {{reference: sn-rest}}, short_description: {{field: $.short_description}}}}
retries:
  - name: test-sn-locked
    endpoint: sn-rest
    when:
      - {{field: $.code, equals: 403}}
    wait: 2s
    attempts: 2
    resend: same
    give_up:
      - to: customer-a
        type: comment
        body: {{number: {{reference: customer-a}}, comments: "ServiceNow kept the ticket locked: ${{counter:retry:test-sn-locked:update}} tries"}}
"""


@pytest.fixture(scope="module")
def rest():
    fake = FakeServiceNow()
    yield from rest_hub("sb-test-rest-", fake, {"SB_TEST_SN_PASSWORD": PASSWORD}, config(fake.port))


def created(fake, number):
    with fake.lock:
        return next((sid for sid, r in fake.records.items() if r.get("correlation_id") == number), None)


def test_a_ticket_is_created_then_updated_by_the_reference_its_answer_linked(rest):
    sb, fake, esb = rest
    number = "INCR" + uuid.uuid4().hex[:6]
    esb.publish("customer-a", {"number": number, "test_rest": True, "short_description": "first"}, message_id=f"{number}-1")
    sys_id = wait(lambda: created(fake, number))
    assert sys_id, fake.requests
    # Linked by the ack alone (no rule stores it): the timeline shows the ok ack with the sys_id.
    assert wait(lambda: sys_id in sb.timeline("customer-a", number)), sb.timeline("customer-a", number)
    esb.publish("customer-a", {"number": number, "test_rest": True, "short_description": "second"}, message_id=f"{number}-2")
    assert wait(lambda: fake.patches(sys_id)), fake.requests
    assert fake.records[sys_id]["short_description"] == "second"
    posts = [r for r in fake.requests if r[0] == "POST" and r[3].get("correlation_id") == number]
    assert len(posts) == 1, "created once"
    assert posts[0][2].startswith("Basic ") and PASSWORD not in sb.output()


def locked_ticket(sb, fake, esb, number, refusals):
    """A record made for `number` and linked, then locked for its next `refusals` writes; its sys_id."""
    esb.publish("customer-a", {"number": number, "test_rest": True, "short_description": "one"}, message_id=f"{number}-1")
    sys_id = wait(lambda: created(fake, number))
    assert wait(lambda: sys_id in sb.timeline("customer-a", number))
    with fake.lock:
        fake.locked[sys_id] = refusals
    return sys_id


def test_a_locked_ticket_is_retried_by_the_policy_and_goes_through_once_unlocked(rest):
    sb, fake, esb = rest
    number = "INCL" + uuid.uuid4().hex[:6]
    sys_id = locked_ticket(sb, fake, esb, number, 1)
    esb.publish("customer-a", {"number": number, "test_rest": True, "short_description": "two"}, message_id=f"{number}-2")
    assert wait(lambda: len(fake.patches(sys_id)) >= 2, timeout=40), fake.patches(sys_id)
    assert [p["short_description"] for p in fake.patches(sys_id)] == ["two", "two"]
    assert fake.records[sys_id]["short_description"] == "two"
    shown = sb.timeline("customer-a", number)
    assert "retry:test-sn-locked" in shown and "aborted by Business Rule" in shown, shown


def test_a_ticket_locked_for_good_is_given_up_with_a_comment_to_the_sender(rest):
    sb, fake, esb = rest
    number = "INCG" + uuid.uuid4().hex[:6]
    sys_id = locked_ticket(sb, fake, esb, number, 100)
    esb.publish("customer-a", {"number": number, "test_rest": True, "short_description": "two"}, message_id=f"{number}-2")
    got = esb.take("sb.out.customer-a", 1, timeout=40)
    assert len(got) == 1, fake.patches(sys_id)
    props, body = got[0]
    comment = json.loads(body)
    assert props.type == "comment" and comment["number"] == number and "locked" in comment["comments"], comment
    # The first send and two sends again, then nothing more.
    assert len(fake.patches(sys_id)) == 3
    time.sleep(3)
    assert len(fake.patches(sys_id)) == 3


def test_a_create_whose_answer_was_lost_is_found_by_its_correlation_id_and_never_made_twice(rest):
    sb, fake, esb = rest
    number = "INCX" + uuid.uuid4().hex[:6]
    with fake.lock:
        fake.reset_creates = 1
    esb.publish("customer-a", {"number": number, "test_rest": True, "short_description": "lost answer"}, message_id=f"{number}-1")
    sys_id = wait(lambda: created(fake, number))
    assert sys_id
    # Adopted: linked by the looked-up sys_id, so the next update PATCHes it.
    assert wait(lambda: sys_id in sb.timeline("customer-a", number)), sb.timeline("customer-a", number)
    esb.publish("customer-a", {"number": number, "test_rest": True, "short_description": "after"}, message_id=f"{number}-2")
    assert wait(lambda: fake.patches(sys_id)), fake.requests
    with fake.lock:
        assert [r for r in fake.records.values() if r.get("correlation_id") == number] == [fake.records[sys_id]], "made once"
        lookups = [r for r in fake.requests if r[0] == "GET" and number in r[1]]
    assert len(lookups) == 1, lookups
    assert "adopted" in sb.timeline("customer-a", number)


def test_a_locked_tickets_later_update_waits_for_the_resend_and_the_newest_value_wins(rest):
    sb, fake, esb = rest
    number = "INCH" + uuid.uuid4().hex[:6]
    sys_id = locked_ticket(sb, fake, esb, number, 1)
    esb.publish("customer-a", {"number": number, "test_rest": True, "short_description": "two"}, message_id=f"{number}-2")
    assert wait(lambda: fake.patches(sys_id)), fake.requests
    # While the policy waits to send "two" again (2 s), "three" comes: it waits behind the lock (hold_ticket_on:
    # 403) instead of going first and then being overwritten by the older "two".
    esb.publish("customer-a", {"number": number, "test_rest": True, "short_description": "three"}, message_id=f"{number}-3")
    assert wait(lambda: len(fake.patches(sys_id)) >= 3, timeout=40), fake.patches(sys_id)
    assert [p["short_description"] for p in fake.patches(sys_id)] == ["two", "two", "three"], fake.patches(sys_id)
    assert wait(lambda: fake.records[sys_id]["short_description"] == "three")
    shown = sb.timeline("customer-a", number)
    assert "update waits (behind): held: 403" in shown, shown
