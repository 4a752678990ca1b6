"""Issue 26, REST delivery: an endpoint with a `rest` section is delivered by Switchboard itself. Against a
fake ServiceNow (a real HTTP server: Table API, Basic authentication), a ticket is created (201, its sys_id
linked as the conversation's reference by the answer alone), updated by that reference (PATCH), and the
seed's locked ticket (403 "aborted by business rule") is retried by the retry policy, then given up with a
comment back to the sender's ESB."""
import json
import time
import uuid

import pytest

from fake_apis import FakeServiceNow, FakeTicketAPI, rest_hub, wait

PASSWORD = "sn-" + uuid.uuid4().hex
TICKETS_TOKEN = "tickets-" + uuid.uuid4().hex
# The generic-rest fake beside the module's ServiceNow (set by the fixture).
GENERIC = [None]


def config(port, generic_port):
    return f"""
endpoints:
  tickets-rest:
    ticket_id: $.id
    rest:
      profile: generic-rest
      base_url: http://127.0.0.1:{generic_port}
      auth: bearer
      token_env: SB_TEST_TICKETS_TOKEN
      create_path: /tickets
      update_path: /tickets/{{ref}}
      correlation_field: external_id
      lookup_path: /tickets?external_id={{correlation}}
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
  - name: test-generic-create
    priority: 100000
    from: customer-a
    when:
      - {{field: $.test_generic, exists: true}}
      - {{reference: tickets-rest, exists: false}}
    stop: true
    send:
      - to: tickets-rest
        type: create
        body: {{title: {{field: $.short_description}}, external_id: {{field: $.number}}}}
  - name: test-generic-update
    priority: 100000
    from: customer-a
    when:
      - {{field: $.test_generic, exists: true}}
      - {{reference: tickets-rest, exists: true}}
    stop: true
    send:
      - to: tickets-rest
        type: update
        body: {{id: {{reference: tickets-rest}}, title: {{field: $.short_description}}}}
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
    fake = FakeServiceNow(PASSWORD)
    generic = GENERIC[0] = FakeTicketAPI(TICKETS_TOKEN)
    yield from rest_hub("sb-test-rest-", fake, {"SB_TEST_SN_PASSWORD": PASSWORD, "SB_TEST_TICKETS_TOKEN": TICKETS_TOKEN},
                        config(fake.port, generic.port))
    generic.stop()


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


def test_a_generic_rest_create_whose_answer_was_lost_is_found_by_its_lookup_path_and_never_made_twice(rest):
    sb, _, esb = rest
    api = GENERIC[0]
    number = "INCY" + uuid.uuid4().hex[:6]
    with api.lock:
        api.reset_creates = 1
    esb.publish("customer-a", {"number": number, "test_generic": True, "short_description": "lost"}, message_id=f"{number}-1")

    def made():
        with api.lock:
            return [i for i, t in api.tickets.items() if t.get("external_id") == number]
    assert wait(made), api.requests
    # Adopted: the looked-up id is linked and the next update PATCHes that ticket; made once, looked up once.
    ticket_id = made()[0]
    assert wait(lambda: ticket_id in sb.timeline("customer-a", number)), sb.timeline("customer-a", number)
    esb.publish("customer-a", {"number": number, "test_generic": True, "short_description": "after"}, message_id=f"{number}-2")
    assert wait(lambda: api.calls("PATCH", f"/tickets/{ticket_id}")), api.requests
    assert made() == [ticket_id] and api.tickets[ticket_id]["title"] == "after"
    assert [r[1] for r in api.calls("GET", "/tickets")] == [f"/tickets?external_id={number}"], api.requests
    assert [r[3] for r in api.calls("POST", "/tickets")] == [0], "one create, its answer lost"
    assert "adopted" in sb.timeline("customer-a", number)
