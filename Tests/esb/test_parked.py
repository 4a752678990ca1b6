"""Parked messages are data: the store role moves what arrives in sb.parked into its parked table, and the
admin's pages, the API and the CLI read the store, never the queue. So looking at them (RabbitMQ 4 gives
quorum queues a delivery limit of 20 and drops what passes it; here it is 2) takes nothing away, and a
partial replay keeps each ticket's order for the rest."""
import json
import time

from admin_client import Admin, Secrets, wait_job
from conftest import ESB, Switchboard, fresh_vhost, mgmt, rabbitmqctl

SECRETS = Secrets()
ENV = dict(SECRETS.env, SB_QUEUE_TYPE="quorum")
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
        type: update
        body: {number: {field: $.number}, seq: {field: $.seq}}
"""
TICKETS, SEQS = 5, 4


def test_looking_at_parked_messages_fifty_times_takes_nothing_and_replays_keep_each_tickets_order():
    gen = fresh_vhost("sb-test-parked-")
    vhost = next(gen)
    esb = ESB(vhost)
    before = Switchboard(vhost, env=ENV).start()
    try:
        # The limits RabbitMQ 4 would apply, set low: sb.parked and the work partitions redeliver at most twice
        # (what passes the limit is dropped from sb.parked, dead-lettered from the partitions).
        for name, pattern, definition in [
            ("sb-parked-limit", r"^sb\.parked$", {"delivery-limit": 2}),
            ("sb-data", r"^sb\.(in|out|work)\.",
             {"delivery-limit": 2, "dead-letter-exchange": "", "dead-letter-routing-key": "sb.parked",
              "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}),
        ]:
            r = rabbitmqctl("set_policy", "-p", vhost, "--apply-to", "queues", "--priority", "10", name, pattern, json.dumps(definition))
            assert r.returncode == 0, r.stderr
        deadline = time.time() + 10
        while mgmt("GET", f"/api/queues/{vhost}/sb.parked").get("policy") != "sb-parked-limit" and time.time() < deadline:
            time.sleep(0.2)
        # customer-b is not configured yet: each of its messages is parked, in the order sent.
        for seq in range(SEQS):
            for t in range(TICKETS):
                esb.publish("customer-b", {"number": f"B{t}", "seq": seq}, message_id=f"b{t}-{seq}")
        rows = before.take_parked(TICKETS * SEQS, timeout=30)
        assert len(rows) == TICKETS * SEQS
        api = Admin(before.admin_url(), token=SECRETS.operator_token)
        page = Admin(before.admin_url())
        page.sign_in("admin", SECRETS.admin_password)
        one = rows[0][0].id
        for _ in range(50):
            listed = api.get("/api/v1/parked").json()
            assert listed["total"] == TICKETS * SEQS and len(listed["messages"]) == TICKETS * SEQS
            assert api.get(f"/api/v1/parked/{one}").status == 200
            assert api.get("/api/v1/messages?state=parked").status == 200
            for path in ("/parked", "/feed", f"/parked/{one}", "/endpoints"):
                assert page.get(path).status == 200, path
        assert esb.depth("sb.parked") == 0
        after_looking = before.parked()
        assert [r["id"] for r in after_looking] == [p.id for p, _ in rows]
        # Listings show bounded excerpts, in the order parked.
        assert all(len(m["excerpt"]) <= 161 for m in listed["messages"])
        assert [m["message_id"] for m in listed["messages"]] == [f"b{t}-{seq}" for seq in range(SEQS) for t in range(TICKETS)]
        ids = [m["id"] for m in listed["messages"]]
    finally:
        assert before.stop() == 0
    after = Switchboard(vhost, env=ENV, extra_config=CUSTOMER_B, data=before.data).start()
    try:
        api = Admin(after.admin_url(), token=SECRETS.operator_token)
        # Part of the group first (the oldest half, in the order listed but sent reversed: the store's order
        # decides), then the rest.
        half = len(ids) // 2
        job = wait_job(api, api.post("/api/v1/parked/actions", body={
            "action": "replay", "ids": list(reversed(ids[:half])), "reason": "customer-b configured (first half)"}).json()["id"])
        assert (job["state"], job["replayed"], job["failed"]) == ("done", half, 0), job
        assert [r["message_id"] for r in after.parked()] == [f"b{t}-{seq}" for seq in range(SEQS) for t in range(TICKETS)][half:]
        job = wait_job(api, api.post("/api/v1/parked/actions", body={
            "action": "replay", "ids": ids[half:], "reason": "customer-b configured (the rest)"}).json()["id"])
        assert (job["state"], job["replayed"], job["failed"]) == ("done", len(ids) - half, 0), job
        got = esb.take("sb.out.vendor-x", TICKETS * SEQS, timeout=60) + esb.drain("sb.out.vendor-x", quiet=1.0)
        bodies = [json.loads(b) for _, b in got]
        assert len(bodies) == TICKETS * SEQS, bodies
        for t in range(TICKETS):
            assert [b["seq"] for b in bodies if b["number"] == f"B{t}"] == list(range(SEQS)), bodies
        assert after.parked_count() == 0 and esb.depth("sb.parked") == 0
        audit = api.get("/api/v1/audit?limit=100").json()["records"]
        assert sum(r["action"] == "replay" for r in audit) == TICKETS * SEQS
    finally:
        assert after.stop() == 0
        esb.close()
        next(gen, None)
