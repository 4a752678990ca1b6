"""Issue 26, "Waits scoped like the limit": against a fake Jira Cloud (a real HTTP server), the delivery waits
out a per-issue 429 for that ticket only (its later messages behind it, in order; other tickets flow), an
endpoint-wide 429 for the whole endpoint (no request before its Retry-After), and a host that takes no
connection with an open circuit (no attempt of the rules used); a message whose wait budget is spent goes to
the rules as a refusal. Quorum queues and the production policies, like every ESB test."""
import json
import re
import time
import uuid

import pytest

from fake_apis import FakeJira, rest_hub, wait

TOKEN = "jira-" + uuid.uuid4().hex


def config(port):
    rules = []
    for endpoint, flag in (("jira-w", "w"), ("jira-tight", "tight")):
        rules.append(f"""
  - name: {endpoint}-create
    priority: 100000
    from: customer-a
    when:
      - {{field: $.{flag}, exists: true}}
      - {{reference: {endpoint}, exists: false}}
    stop: true
    send:
      - to: {endpoint}
        type: create
        body: {{fields: {{summary: {{field: $.short_description}}, project: {{key: VX}}}}}}
  - name: {endpoint}-update
    priority: 100000
    from: customer-a
    when:
      - {{field: $.{flag}, exists: true}}
      - {{reference: {endpoint}, exists: true}}
    stop: true
    send:
      - to: {endpoint}
        type: update
        body: {{key: {{reference: {endpoint}}}, fields: {{summary: {{field: $.short_description}}}}}}""")
    return f"""
endpoints:
  jira-w:
    ticket_id: $.issue.key
    who: $.user.displayName
    echo:
      - {{field: $.user.accountId, in: [sb-integration]}}
    rest:
      profile: jira-cloud
      base_url: http://127.0.0.1:{port}
      auth: bearer
      token_env: SB_TEST_JIRA_TOKEN
      timeout_ms: 1000
      max_wait: 4s
  jira-tight:
    ticket_id: $.issue.key
    rest:
      profile: jira-cloud
      base_url: http://127.0.0.1:{port}
      auth: bearer
      token_env: SB_TEST_JIRA_TOKEN
      wait_budget: 3s
rules:{"".join(rules)}
  - name: jira-w-comment
    priority: 100001
    from: customer-a
    when:
      - {{field: $.w, exists: true}}
      - {{field: $.comments, exists: true}}
      - {{reference: jira-w, exists: true}}
    stop: true
    send:
      - to: jira-w
        type: comment
        body: {{key: {{reference: jira-w}}, body: {{field: $.comments}}}}
  - name: jira-w-to-customer
    from: jira-w
    stop: true
    send:
      - to: customer-a
        type: update
        body: {{number: {{reference: customer-a}}, comments: {{field: $.comment}}}}
"""


@pytest.fixture(scope="module")
def hub():
    fake = FakeJira(TOKEN)
    yield from rest_hub("sb-test-waits-", fake, {"SB_TEST_JIRA_TOKEN": TOKEN}, config(fake.port))


def tickets(sb, fake, esb, n, flag="w"):
    """n tickets created at the fake and linked; their (number, key)."""
    made = []
    for _ in range(n):
        number = "INCW" + uuid.uuid4().hex[:8]
        esb.publish("customer-a", {"number": number, flag: True, "short_description": f"{number} created"}, message_id=f"{number}-0")
        made.append(number)
    out = []
    for number in made:
        key = wait(lambda: fake.key_of(f"{number} created"))
        assert key, fake.requests
        assert wait(lambda: key in sb.timeline("customer-a", number)), sb.timeline("customer-a", number)
        out.append((number, key))
    return out


def update(esb, number, summary, flag="w"):
    esb.publish("customer-a", {"number": number, flag: True, "short_description": summary}, message_id=f"{number}-{summary}")


def test_a_per_issue_limit_holds_only_that_ticket_and_its_later_updates_follow_in_order(hub):
    sb, fake, esb = hub
    (hot, hot_key), (a, a_key), (b, b_key) = tickets(sb, fake, esb, 3)
    with fake.lock:
        fake.limited[hot_key] = 2
    update(esb, hot, "u1")
    update(esb, a, "a1")
    update(esb, hot, "u2")
    update(esb, b, "b1")
    update(esb, hot, "u3")
    assert wait(lambda: fake.issues[hot_key]["fields"]["summary"] == "u3", timeout=40), fake.writes(hot_key)
    hot_writes = fake.writes(hot_key)
    # The hot ticket: refused twice (429 per issue, Retry-After 2 s), then its updates in the order written.
    assert [c for (_, _, _, c) in hot_writes] == [429, 429, 204, 204, 204], hot_writes
    assert [w[2]["fields"]["summary"] for w in hot_writes] == ["u1", "u1", "u1", "u2", "u3"], hot_writes
    # No request to it earlier than the Retry-After of the answer before.
    for before, after in zip(hot_writes, hot_writes[1:]):
        if before[3] == 429:
            assert after[0] - before[0] >= 2.0, hot_writes
    # The other tickets did not wait on the hot ticket's limit: written before its first wait was over.
    first_limit = hot_writes[0][0]
    for key in (a_key, b_key):
        [(t, _, body, code)] = [w for w in fake.writes(key) if w[1] == "PUT"]
        assert code == 204 and t - first_limit < 1.5, (key, t - first_limit, fake.writes(key))
    # The timeline says who waited and why; the rules saw no refusal, nothing failed; the other tickets
    # never waited.
    shown = sb.timeline("customer-a", hot)
    assert shown.count("update waits (ticket): 429 jira-per-issue-on-write") == 2, shown
    assert shown.count("update waits (behind): 429 jira-per-issue-on-write") == 2, shown
    assert "error ack" not in shown and "marked failed" not in shown, shown
    for number in (a, b):
        assert "waits" not in sb.timeline("customer-a", number), sb.timeline("customer-a", number)
    metrics = sb.metrics()
    assert re.search(r'switchboard_rest_waits_total\{endpoint="jira-w",scope="ticket"\} 2', metrics), metrics
    assert re.search(r'switchboard_rest_waits_total\{endpoint="jira-w",scope="behind"\} [1-9]', metrics), metrics


def test_an_endpoint_wide_limit_holds_every_ticket_until_its_time(hub):
    sb, fake, esb = hub
    made = tickets(sb, fake, esb, 3)
    with fake.lock:
        fake.endpoint_limited = 1
        start = len(fake.requests)
    for number, _ in made:
        update(esb, number, "e1")
    assert wait(lambda: all(fake.issues[k]["fields"]["summary"] == "e1" for _, k in made), timeout=40), fake.requests[start:]
    with fake.lock:
        seen = fake.requests[start:]
    assert seen[0][4] == 429, seen
    # Nothing at all was sent to the endpoint before the Retry-After (2 s) was over; then each once.
    assert all(t - seen[0][0] >= 2.0 for (t, *_rest) in seen[1:]), seen
    assert sorted(c for (*_x, c) in seen[1:]) == [204, 204, 204], seen


def test_a_host_that_takes_no_connection_opens_a_circuit_and_nothing_is_lost(hub):
    sb, fake, esb = hub
    [(number, key)] = tickets(sb, fake, esb, 1)
    fake.stop()
    try:
        update(esb, number, "while down")
        # The circuit opens; the update waits (the rules get no refusal) while the host is down.
        assert wait(lambda: 'switchboard_rest_circuit_open{endpoint="jira-w"} 1' in sb.metrics(), timeout=20), sb.metrics()
        time.sleep(3)
        assert "while down" not in str(fake.issues[key]), fake.issues[key]
        shown = sb.timeline("customer-a", number)
        assert "matched no rule" not in shown and "failed" not in shown, shown
    finally:
        fake.start()
    assert wait(lambda: fake.issues[key]["fields"]["summary"] == "while down", timeout=30), fake.requests[-5:]
    assert wait(lambda: 'switchboard_rest_circuit_open{endpoint="jira-w"} 0' in sb.metrics(), timeout=20), sb.metrics()
    assert re.search(r'switchboard_rest_waits_total\{endpoint="jira-w",scope="circuit"\} [1-9]', sb.metrics())


def test_a_message_whose_wait_budget_is_spent_goes_to_the_rules(hub):
    sb, fake, esb = hub
    [(number, key)] = tickets(sb, fake, esb, 1, flag="tight")
    with fake.lock:
        fake.limited[key] = 1000
    update(esb, number, "never", flag="tight")
    # jira-tight's wait_budget is 3 s: the 429 waits twice (2 s each would pass it), then the refusal is the
    # rules' (no retry policy here: the outbound message is marked failed on the timeline).
    assert wait(lambda: "matched no rule" in sb.timeline("customer-a", number), timeout=30), sb.timeline("customer-a", number)
    shown = sb.timeline("customer-a", number)
    assert "429" in shown, shown
    with fake.lock:
        fake.limited[key] = 0
    writes = [w for w in fake.writes(key) if w[1] == "PUT"]
    assert 1 <= len(writes) <= 3 and {c for (*_x, c) in writes} == {429}, writes


def test_our_own_write_coming_back_is_an_echo_and_a_persons_change_is_not(hub):
    sb, fake, esb = hub
    [(number, key)] = tickets(sb, fake, esb, 1)
    esb.purge("sb.out.customer-a")
    # Jira's webhook fires for the edit Switchboard made: the actor is our integration user.
    esb.publish("jira-w", {"webhookEvent": "jira:issue_updated", "issue": {"key": key}, "comment": "ours",
                           "user": {"accountId": "sb-integration", "displayName": "Switchboard"}}, message_id=f"{key}-echo")
    esb.publish("jira-w", {"webhookEvent": "jira:issue_updated", "issue": {"key": key}, "comment": "a person's",
                           "user": {"accountId": "557058:bob", "displayName": "Bob"}}, message_id=f"{key}-bob")
    [(_, body)] = esb.take("sb.out.customer-a", 1)
    assert json.loads(body) == {"number": number, "comments": "a person's"}, body
    assert esb.take("sb.out.customer-a", 1, timeout=2) == []
    shown = sb.timeline("customer-a", number)
    assert "echo of our own write to jira-w (its echo condition 1 matched): no rule ran" in shown, shown
    assert re.search(r'switchboard_echoes_total\{endpoint="jira-w"\} 1', sb.metrics()), sb.metrics()


def test_a_comment_we_made_coming_back_by_a_persons_account_is_known_by_its_id(hub):
    """Jira's comment events carry no stamp of ours (no historyMetadata, no properties), and here the
    comment's author is not our integration user: the comment's id, answered when Switchboard made it, is
    what tells the echo from a person's comment."""
    sb, fake, esb = hub
    [(number, key)] = tickets(sb, fake, esb, 1)
    esb.purge("sb.out.customer-a")
    esb.publish("customer-a", {"number": number, "w": True, "comments": "from the customer"}, message_id=f"{number}-c1")
    assert wait(lambda: fake.issues[key]["comments"]), fake.requests
    [made] = [w for w in fake.writes(key) if w[1] == "POST" and w[3] == 201]
    assert wait(lambda: "ok ack of comment" in sb.timeline("customer-a", number)), sb.timeline("customer-a", number)
    with fake.lock:
        comment_id = str(10000 + fake.comments_made)
    person = {"accountId": "557058:carol", "displayName": "Carol"}
    esb.publish("jira-w", {"webhookEvent": "comment_created", "issue": {"key": key}, "user": person,
                           "comment": {"id": comment_id, "author": person, "body": made[2]["body"]}}, message_id=f"{key}-cc1")
    esb.publish("jira-w", {"webhookEvent": "comment_created", "issue": {"key": key}, "user": person,
                           "comment": {"id": "99" + comment_id, "author": person, "body": "Carol's own"}}, message_id=f"{key}-cc2")
    [(_, body)] = esb.take("sb.out.customer-a", 1)
    assert json.loads(body)["comments"]["id"] == "99" + comment_id, body
    assert esb.take("sb.out.customer-a", 1, timeout=2) == []
    shown = sb.timeline("customer-a", number)
    assert f"echo of our own write to jira-w (comment {comment_id}, which Switchboard created): no rule ran" in shown, shown
    # The ids are the engine's own bookkeeping: not among the conversation's attributes people read.
    assert "sb.comments" not in shown, shown
