"""Which messages are the same message: a resend (same message_id, same content) applies once, even as
two copies in one batch; a message_id reused by a message that says something else is parked, naming
both; acks without a message_id that answer different messages are different acks."""
import json
import uuid

import pytest

from conftest import COUNTING_RULES, incident, seen_counters, start_shape

DESK = {"value": "g2", "display_value": "Service Desk"}


@pytest.mark.parametrize("shape", ["run", "fleet"])
def test_copies_apply_once_and_a_reused_id_is_parked(esb, vhost, store_url, shape):
    sb = start_shape(vhost, shape, extra_config=COUNTING_RULES, store_url=store_url)
    try:
        ticket = "ID" + uuid.uuid4().hex[:6]
        first = incident(ticket, seq=1, assignment_group=DESK)
        # Two copies back to back (one batch), then the same id on a message that says something else.
        esb.publish("customer-a", first, message_id="same-1")
        esb.publish("customer-a", first, message_id="same-1")
        esb.publish("customer-a", incident(ticket, seq=2, assignment_group=DESK), message_id="same-1")
        # And the same id again later, on its own: still not applied.
        out = esb.take("sb.out.vendor-x", 1, timeout=20)
        assert [json.loads(b)["seq"] for _, b in out] == [1]
        esb.publish("customer-a", incident(ticket, seq=3, assignment_group=DESK), message_id="same-1")
        parked = sb.take_parked(2, timeout=20)
        assert len(parked) == 2
        for props, body in parked:
            reason = props.headers["x-sb-reason"]
            assert "message_id 'same-1' of endpoint 'customer-a' was already used by" in reason, reason
            assert "digest" in reason and "not a resend" in reason
        assert sorted(json.loads(b)["seq"] for _, b in parked) == [2, 3]
        assert esb.drain("sb.out.vendor-x", quiet=0.5) == []
        assert seen_counters(sb)[ticket] == 1
    finally:
        assert sb.stop() == 0
