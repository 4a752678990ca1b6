"""Issue 26, REST delivery with the jira-cloud profile against a fake Jira Cloud (a real HTTP server): create
(201 {id, key}, the key linked by the answer), edit by key (PUT, 204, no body), a plain-text comment sent as
ADF, and a per-issue 429 with Retry-After waited out by the delivery itself (no ack, no attempt of the retry
policy used). test_rest_waits.py has the waits' scopes and order."""
import urllib.parse
import uuid

import pytest

from fake_apis import FakeJira, rest_hub, wait

TOKEN = "jira-" + uuid.uuid4().hex


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
  - name: test-jira-transition
    priority: 100002
    from: customer-a
    when:
      - {{field: $.test_jira, exists: true}}
      - {{field: $.state, exists: true}}
      - {{reference: jira-rest, exists: true}}
    stop: true
    send:
      - to: jira-rest
        type: update
        body: {{key: {{reference: jira-rest}}, transition: {{field: $.state}}}}
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
    fake = FakeJira(TOKEN)
    yield from rest_hub("sb-test-jira-", fake, {"SB_TEST_JIRA_TOKEN": TOKEN}, config(fake.port))


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
    puts = [(t, b, c) for (t, m, b, c) in fake.writes(k) if m == "PUT"]
    assert [c for _, _, c in puts] == [429, 204] and all(b["fields"] == {"summary": "second"} for _, b, _ in puts), puts
    # Each write stamped as ours (issue 26, echoes): Switchboard in the history, the message id as a property.
    assert all(b["historyMetadata"]["generator"]["id"] == "switchboard" and b["properties"][0]["key"] == "switchboard"
               for _, b, _ in puts), puts
    # Not before the Retry-After (2 s) the answer named.
    assert puts[1][0] - puts[0][0] >= 2.0, puts
    esb.publish("customer-a", {"number": number, "test_jira": True, "short_description": "second", "comments": "line one\nline two"},
                message_id=f"{number}-3")
    assert wait(lambda: fake.issues[k]["comments"]), fake.requests
    adf = fake.issues[k]["comments"][0]
    assert adf["type"] == "doc" and [p["content"][0]["text"] for p in adf["content"]] == ["line one", "line two"], adf
    # The delivery waited: the rules never saw the 429 (no retry, nothing marked failed).
    shown = sb.timeline("customer-a", number)
    assert "retry:test-jira-limited" not in shown and "Rate limit exceeded" not in shown, shown
    assert 'switchboard_rest_waits_total{endpoint="jira-rest",scope="ticket"} 1' in sb.metrics(), sb.metrics()


def test_a_create_whose_answer_was_lost_is_found_by_its_label_and_never_made_twice(jira):
    sb, fake, esb = jira
    number = "INCL" + uuid.uuid4().hex[:6]
    with fake.lock:
        fake.reset_creates = 1
    esb.publish("customer-a", {"number": number, "test_jira": True, "short_description": f"{number} lost"}, message_id=f"{number}-1")
    key = wait(lambda: fake.key_of(f"{number} lost"))
    assert key, fake.requests
    # Adopted: the issue the create made (its label sb-<conversation>) is linked, and the next update edits it.
    assert wait(lambda: key in sb.timeline("customer-a", number)), sb.timeline("customer-a", number)
    assert "adopted" in sb.timeline("customer-a", number)
    labels = fake.issues[key]["fields"]["labels"]
    assert len(labels) == 1 and labels[0].startswith("sb-") and len(labels[0]) == 35, labels
    esb.publish("customer-a", {"number": number, "test_jira": True, "short_description": f"{number} after"}, message_id=f"{number}-2")
    assert wait(lambda: fake.issues[key]["fields"]["summary"] == f"{number} after"), fake.writes(key)
    with fake.lock:
        made = [k for k, i in fake.issues.items() if labels[0] in i["fields"].get("labels", [])]
        lookups = [r for r in fake.requests if r[1] == "GET" and labels[0] in urllib.parse.unquote(r[2])]
    assert made == [key], made
    assert len(lookups) == 1, lookups


def test_a_status_is_reached_by_the_transition_that_leads_there(jira):
    sb, fake, esb = jira
    number = "INCT" + uuid.uuid4().hex[:6]
    esb.publish("customer-a", {"number": number, "test_jira": True, "short_description": f"{number} t"}, message_id=f"{number}-1")
    key = wait(lambda: fake.key_of(f"{number} t"))
    assert key and wait(lambda: key in sb.timeline("customer-a", number)), fake.requests
    for n, state in enumerate(["In Progress", "done", "Done", "Nowhere"], start=2):
        esb.publish("customer-a", {"number": number, "test_jira": True, "state": state}, message_id=f"{number}-{n}")
        if state == "In Progress":
            assert wait(lambda: fake.issues[key]["status"] == "In Progress"), fake.writes(key)
    assert wait(lambda: "no transition of" in sb.timeline("customer-a", number)), sb.timeline("customer-a", number)
    assert fake.issues[key]["status"] == "Done"
    # Looked up by the status's name (either case); "Done" the second time from the project's cache, which the
    # issue then refuses (it is Done already: 400), so it is looked up again, none leads there, and the
    # issue's status says it is there: ok. No way to "Nowhere": a 409 ack naming the statuses there are.
    moves = [(c, b["transition"]["id"]) for (_, m, b, c) in fake.writes(key) if m == "POST"]
    assert moves == [(204, "11"), (204, "21"), (400, "21")], fake.writes(key)
    assert sb.timeline("customer-a", number).count("ok ack of update") == 3
    shown = sb.timeline("customer-a", number)
    assert "no transition of %s leads to 'Nowhere' (there are: In Progress, To Do)" % key in shown, shown
    assert not [w for w in fake.writes(key) if w[1] == "PUT"], "a transition alone sends no edit"
