"""Poison messages: a message whose processing fails because of what it says (a regular expression that
backtracks without end on it, a value the store refuses) is parked with the reason, and the messages
behind it in its partition go on. Outages are retried instead (test_fleet, test_faults)."""
import json
import time
import uuid

import pytest

from conftest import Fleet, Switchboard, incident, start_shape

POISON_RULES = """
rules:
  - name: test-slow-regex
    priority: 1000
    from: customer-a
    when: [{field: $.short_description, regex: '(x+x+)+y'}]
    stop: true
    send: [{to: vendor-x, type: update, body: {never: true}}]
  - name: test-note
    priority: 999
    from: customer-a
    when: {field: $.seq, exists: true}
    stop: true
    set: [{attribute: note, value: {field: $.note}}]
    send: [{to: vendor-x, type: update, body: {number: {field: $.number}, seq: {field: $.seq}, note: {field: $.note}}}]
"""

DESK = {"value": "g2", "display_value": "Service Desk"}


@pytest.mark.parametrize("shape", ["run", "fleet"])
def test_a_poison_message_is_parked_and_its_partition_goes_on(esb, vhost, store_url, shape):
    sb = start_shape(vhost, shape, extra_config=POISON_RULES, store_url=store_url)
    try:
        ticket = "PZ" + uuid.uuid4().hex[:6]
        esb.publish("customer-a", incident(ticket, seq=0, note="fine"), message_id=f"{ticket}-0")
        esb.publish("customer-a", incident(ticket, seq=1, note="x", short_description="x" * 30),
                    message_id=f"{ticket}-1")
        # U+0000 in who changed it (the timeline's `who`): SQLite keeps it; PostgreSQL cannot hold it in
        # text and refuses the commit.
        esb.publish("customer-a", incident(ticket, seq=2, note="two", sys_updated_by="nul\u0000inside"), message_id=f"{ticket}-2")
        esb.publish("customer-a", incident(ticket, seq=3, note="after"), message_id=f"{ticket}-3")
        postgres = store_url != "sqlite"
        expected = [0, 3] if postgres else [0, 2, 3]
        out = esb.take("sb.out.vendor-x", len(expected), timeout=60)
        assert [json.loads(b)["seq"] for _, b in out] == expected
        parked = {p.message_id: p.headers["x-sb-reason"] for p, _ in sb.take_parked(2 if postgres else 1, timeout=30)}
        assert "gave up on a text of 30 characters" in parked[f"{ticket}-1"], parked
        if postgres:
            assert "the store refused what this message changes" in parked[f"{ticket}-2"], parked
        time.sleep(0.5)
        assert sb.parked_count() == (2 if postgres else 1)
    finally:
        assert sb.stop() == 0


def test_ticket_ids_that_cannot_be_keys_are_parked_at_intake(esb, vhost):
    sb = Switchboard(vhost).start()
    try:
        esb.publish("customer-a", incident("INC" + "9" * 300), message_id="long-id")
        esb.publish("customer-a", incident("INC\u00001"), message_id="nul-id")
        esb.publish("customer-a", incident("INC\n2"), message_id="newline-id")
        parked = {p.message_id: (p.headers["x-sb-reason"], p.headers["x-sb-stage"]) for p, _ in sb.take_parked(3)}
        assert "is 303 characters long; the limit is 255" in parked["long-id"][0]
        assert "control character U+0000 at position 4" in parked["nul-id"][0]
        assert "control character U+000A at position 4" in parked["newline-id"][0]
        assert {stage for _, stage in parked.values()} == {"intake"}
    finally:
        assert sb.stop() == 0


def test_a_batch_beyond_a_store_request_is_split_and_a_commit_too_large_is_parked(esb, vhost, store_url):
    # Workers send the store requests of at most 300 kB: batches of 60 kB notes go in several, keeping
    # their order; a 250 kB note (its attribute and its outbound body, base64, make over 300 kB) is parked.
    sb = Fleet(vhost, env={"SB_STORE_MAX_REQUEST_BYTES": "300000"}, extra_config=POISON_RULES, store_url=store_url).start()
    try:
        ticket = "BIG" + uuid.uuid4().hex[:6]
        for seq in range(6):
            note = ("y" if seq == 3 else "n") * (250_000 if seq == 3 else 60_000)
            esb.publish("customer-a", incident(ticket, seq=seq, note=note), message_id=f"{ticket}-{seq}")
        out = esb.take("sb.out.vendor-x", 5, timeout=60)
        assert [json.loads(b)["seq"] for _, b in out] == [0, 1, 2, 4, 5]
        [(parked, _)] = sb.take_parked(1, timeout=30)
        assert parked.message_id == f"{ticket}-3"
        assert "larger than a store request may be (300000 bytes" in parked.headers["x-sb-reason"], parked.headers["x-sb-reason"]
    finally:
        assert sb.stop() == 0


AMOUNT_RULES = """
rules:
  - name: test-amount
    priority: 1000
    from: customer-a
    when: {field: $.seq, exists: true}
    stop: true
    set: [{attribute: amount, value: {field: $.amount}, when: {field: $.amount, exists: true}}]
    send: [{to: vendor-x, type: update, body: {seq: {field: $.seq}, amount: {attribute: amount}}}]
"""


@pytest.mark.parametrize("shape", ["run", "fleet"])
def test_numbers_and_strings_kept_in_attributes_cross_the_store_exactly(esb, vhost, store_url, shape):
    sb = start_shape(vhost, shape, extra_config=AMOUNT_RULES, store_url=store_url)
    try:
        ticket = "AM" + uuid.uuid4().hex[:6]
        raw = ('{"number": "%s", "seq": 0, "amount": {"net": 1.50, "id": 123456789012345678901234567890123456789012, '
               '"text": "e\\u0301 \\u00e9 \\ud834\\udd1e nul\\u0000 \\"q\\""}}' % ticket).encode()
        esb.publish("customer-a", raw, message_id=f"{ticket}-0", raw=True)
        esb.publish("customer-a", {"number": ticket, "seq": 1}, message_id=f"{ticket}-1")
        out = esb.take("sb.out.vendor-x", 2, timeout=30)
        assert [json.loads(b)["seq"] for _, b in out] == [0, 1]
        # The second one's amount comes from the conversation, as the store (through its RPC in a fleet) kept it.
        for _, body in out:
            assert b'"net":1.50' in body and b'"id":123456789012345678901234567890123456789012' in body, body
            assert json.loads(body)["amount"]["text"] == "e\u0301 \u00e9 \U0001d11e nul\u0000 \"q\""
    finally:
        assert sb.stop() == 0
