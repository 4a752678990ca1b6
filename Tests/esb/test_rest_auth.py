"""Issue 26, REST delivery authenticated by OAuth 2.0 client credentials against a fake Jira Cloud with a
token endpoint: the token is fetched once and kept, a 401 (the token revoked) fetches a new one and the
request goes through, and the client secret is in no log. And by a client certificate (mutual TLS) against
a fake that requires one, its own certificate verified against the endpoint's CA file."""
import uuid

import pytest

from fake_apis import FakeJira, rest_hub, make_pki, wait

SECRET = "oauth-secret-" + uuid.uuid4().hex


def config(port):
    return f"""
endpoints:
  jira-o:
    ticket_id: $.issue.key
    rest:
      profile: jira-cloud
      base_url: http://127.0.0.1:{port}
      auth: oauth2
      token_url: http://127.0.0.1:{port}/oauth/token
      client_id: sb-client
      client_secret_env: SB_TEST_OAUTH_SECRET
      scope: write:jira-work
rules:
  - name: oauth-create
    priority: 100000
    from: customer-a
    when:
      - {{field: $.oauth, exists: true}}
      - {{reference: jira-o, exists: false}}
    stop: true
    send:
      - {{to: jira-o, type: create, body: {{fields: {{summary: {{field: $.short_description}}}}}}}}
  - name: oauth-update
    priority: 100000
    from: customer-a
    when:
      - {{field: $.oauth, exists: true}}
      - {{reference: jira-o, exists: true}}
    stop: true
    send:
      - {{to: jira-o, type: update, body: {{key: {{reference: jira-o}}, fields: {{summary: {{field: $.short_description}}}}}}}}
"""


@pytest.fixture(scope="module")
def hub():
    fake = FakeJira("no-token-yet", oauth=("sb-client", SECRET))
    yield from rest_hub("sb-test-oauth-", fake, {"SB_TEST_OAUTH_SECRET": SECRET}, config(fake.port))


def test_a_client_credentials_token_is_kept_and_renewed_when_the_api_answers_401(hub):
    sb, fake, esb = hub
    number = "INCO" + uuid.uuid4().hex[:6]
    esb.publish("customer-a", {"number": number, "oauth": True, "short_description": "one"}, message_id=f"{number}-1")
    key = wait(lambda: fake.key_of("one"))
    assert key and wait(lambda: key in sb.timeline("customer-a", number)), fake.requests
    esb.publish("customer-a", {"number": number, "oauth": True, "short_description": "two"}, message_id=f"{number}-2")
    assert wait(lambda: fake.issues[key]["fields"]["summary"] == "two"), fake.requests
    assert fake.tokens_issued == 1, fake.requests
    [token_request] = [r for r in fake.requests if r[1] == "TOKEN"]
    assert token_request[3] == {"grant_type": ["client_credentials"], "scope": ["write:jira-work"]}, token_request
    # The token revoked: the API answers 401, a new token is fetched, the edit goes through.
    with fake.lock:
        fake.token = "revoked"
    esb.publish("customer-a", {"number": number, "oauth": True, "short_description": "three"}, message_id=f"{number}-3")
    assert wait(lambda: fake.issues[key]["fields"]["summary"] == "three"), fake.requests
    assert fake.tokens_issued == 2
    assert [c for (_, m, _, c) in fake.writes(key) if m == "PUT"] == [204, 401, 204], fake.writes(key)
    assert "marked failed" not in sb.timeline("customer-a", number)
    assert SECRET not in sb.output() and "tok-" not in sb.output()


@pytest.fixture(scope="module")
def mtls(tmp_path_factory):
    pki = make_pki(str(tmp_path_factory.mktemp("pki")))
    fake = FakeJira("mtls-token", tls=(pki["server.pem"], pki["server.key"], pki["ca.pem"]))
    extra = f"""
endpoints:
  jira-m:
    ticket_id: $.issue.key
    rest:
      profile: jira-cloud
      base_url: https://127.0.0.1:{fake.port}
      auth: bearer
      token_env: SB_TEST_MTLS_TOKEN
      client_cert_file: {pki["client.pem"]}
      client_key_file: {pki["client.key"]}
      ca_file: {pki["ca.pem"]}
rules:
  - name: mtls-create
    priority: 100000
    from: customer-a
    when: [{{field: $.mtls, exists: true}}]
    stop: true
    send:
      - {{to: jira-m, type: create, body: {{fields: {{summary: {{field: $.short_description}}}}}}}}
"""
    yield from rest_hub("sb-test-mtls-", fake, {"SB_TEST_MTLS_TOKEN": "mtls-token"}, extra)


def test_a_client_certificate_is_presented_and_the_servers_verified_against_the_ca_file(mtls):
    sb, fake, esb = mtls
    number = "INCM" + uuid.uuid4().hex[:6]
    esb.publish("customer-a", {"number": number, "mtls": True, "short_description": f"{number} mtls"}, message_id=f"{number}-1")
    key = wait(lambda: fake.key_of(f"{number} mtls"))
    assert key and wait(lambda: key in sb.timeline("customer-a", number)), (fake.requests, sb.output()[-3000:])
    assert set(fake.client_subjects) == {"switchboard-client"}, fake.client_subjects
