"""Parked messages can be replayed once the cause is fixed; nothing is lost on the way."""
import json
import subprocess

import pytest

from conftest import BINARY, ESB, Switchboard, fresh_vhost

CRM_ENDPOINT = """
endpoints:
  crm-z:
    ticket_id: $.id
rules:
  - name: crm-to-vendor
    from: crm-z
    send: [{to: vendor-x, type: create, body: {from_crm: {field: $.id}}}]
"""


@pytest.fixture
def own():
    """A vhost of its own: the count replayed is this test's, not what an earlier test's timers parked later
    in a shared vhost (a local run replayed 6 instead of 2)."""
    gen = fresh_vhost("sb-test-replay-")
    vhost = next(gen)
    esb = ESB(vhost)
    yield esb, vhost
    esb.close()
    next(gen, None)


def test_replay_after_fixing_the_configuration(own):
    esb, vhost = own
    sb = Switchboard(vhost).start()
    try:
        esb.publish("crm-z", {"id": "Z-1"}, message_id="z-1")
        esb.publish("customer-a", b"{still broken", message_id="broken-1", raw=True)
        parked = sb.take_parked(2)
        assert {p.message_id for p, _ in parked} == {"z-1", "broken-1"}
    finally:
        assert sb.stop() == 0
    # The operator adds the endpoint, restarts, and replays.
    fixed = Switchboard(vhost, extra_config=CRM_ENDPOINT, data=sb.data).start()
    try:
        r = subprocess.run([BINARY, "parked", "replay", "--config", fixed.config], env=fixed.env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "replayed 2 parked message(s)" in r.stdout
        [(out, body)] = esb.take("sb.out.vendor-x", 1, timeout=10)
        assert json.loads(body) == {"from_crm": "Z-1"}
        assert out.correlation_id == "z-1"
        # Still broken: parked again, with its reason, not lost.
        [(again, _)] = fixed.take_parked(1, timeout=10)
        assert again.message_id == "broken-1"
        assert "not valid JSON" in again.headers["x-sb-reason"]
    finally:
        assert fixed.stop() == 0
