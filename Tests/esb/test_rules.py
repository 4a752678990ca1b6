"""`switchboard rules test` and `config check` on the example configuration's rule tests (Config/*_test.yaml),
as a user runs them: the real binary, no broker. A changed translation makes them fail, naming the test,
the step, the rule and the difference; JUnit XML for CI."""
import json
import os
import re
import shutil
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

from conftest import BINARY, REPO, Switchboard, flow, incident, take_ticket


def switchboard(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=60)


def test_the_example_configurations_rule_tests_pass():
    r = switchboard("rules", "test", os.path.join(REPO, "Config"))
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"rule tests: (\d+) passed, 0 failed", r.stdout)
    assert m and int(m.group(1)) >= 6, r.stdout
    check = switchboard("config", "check", os.path.join(REPO, "Config"))
    assert check.returncode == 0 and "rule tests:" in check.stdout, check.stdout + check.stderr


def test_the_servicenow_jira_examples_rule_tests_pass():
    """The worked ServiceNow <-> Jira configuration (issue 26, Examples/servicenow-jira): its rule tests and
    `config check`, with the one secret the loader checks (a bcrypt hash) from the environment."""
    example = os.path.join(REPO, "Examples", "servicenow-jira")
    digest = subprocess.run([BINARY, "admin", "hash-password", "--cost", "4"], input="pw", capture_output=True, text=True, timeout=60)
    env = dict(os.environ, SN_WEBHOOK_PASSWORD_HASH=digest.stdout.strip())
    r = subprocess.run([BINARY, "rules", "test", example], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and re.search(r"rule tests: ([4-9]|\d\d+) passed, 0 failed", r.stdout), r.stdout + r.stderr
    check = subprocess.run([BINARY, "config", "check", example], capture_output=True, text=True, timeout=60, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    lint = subprocess.run([BINARY, "rules", "lint", example], capture_output=True, text=True, timeout=60, env=env)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_a_changed_translation_fails_the_tests_that_use_it(tmp_path):
    config = tmp_path / "Config"
    shutil.copytree(os.path.join(REPO, "Config"), config)
    translations = (config / "translations.yaml").read_text()
    assert '"2": High\n' in translations
    (config / "translations.yaml").write_text(translations.replace('"2": High\n', '"2": Very High\n'))
    junit = tmp_path / "report.xml"
    r = switchboard("rules", "test", str(config), "--junit", str(junit))
    assert r.returncode == 1, r.stdout + r.stderr
    # Exactly the test whose message has priority 2, at its step and rule, with the difference.
    assert re.search(r"rule tests: \d+ passed, 1 failed", r.stdout), r.stdout
    assert "FAIL hand-back returns the ticket to the group it came from" in r.stderr, r.stderr
    assert ("step 2 (message from customer-a): sent[0] (create to vendor-x, rule 'create-at-vendor') body: "
            '$.fields.priority.name: expected "High", got "Very High"') in r.stderr, r.stderr
    assert re.search(r"stories_test\.yaml:\d+: test 'hand-back", r.stderr), r.stderr
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and suite.get("failures") == "1", ET.tostring(suite)
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["hand-back returns the ticket to the group it came from"]
    # `config check` refuses a configuration whose own tests fail.
    check = switchboard("config", "check", str(config))
    assert check.returncode == 1 and "create-at-vendor" in check.stderr, check.stdout + check.stderr


def test_a_test_file_with_a_mistake_is_refused_with_its_line(tmp_path):
    config = tmp_path / "Config"
    shutil.copytree(os.path.join(REPO, "Config"), config)
    (config / "broken_test.yaml").write_text("tests:\n  - name: x\n    steps:\n      - from: customer-a\n")
    r = switchboard("rules", "test", str(config))
    assert r.returncode == 1
    assert "broken_test.yaml:4: a message step needs a body (or body_file)" in r.stderr, r.stderr


def test_rules_try_decides_against_a_stored_conversation_and_changes_nothing(esb, vhost, tmp_path):
    """A real conversation (created at vendor X, linked by its ok ack, then refused as locked): what an update
    from A would do now, against its stored references and counters; the store and the queues are untouched."""
    sb = Switchboard(vhost).start()
    try:
        number, key = f"INC{uuid.uuid4().int % 10**7:07d}", f"VX-{uuid.uuid4().int % 10**5}"
        flow(esb, number, key)
        deadline = time.time() + 20
        while "retry:vendor-locked:update = 1" not in (text := sb.timeline("customer-a", number)) and time.time() < deadline:
            time.sleep(0.2)
        assert "retry:vendor-locked:update = 1" in text, text
        head = text.splitlines()[0]
        conversation = re.match(r"conversation (\S+) \(version (\d+)\)", head)
        assert conversation, head
        message = tmp_path / "m.json"
        message.write_text(json.dumps({"number": number, "priority": "1", "sys_updated_by": "zoe"}))
        esb.purge("sb.out.vendor-x")
        r = subprocess.run([BINARY, "rules", "try", "--config", sb.config, "--message", str(message),
                            "--conversation", conversation.group(1)], env=sb.env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        out = r.stdout.splitlines()
        assert out[0] == f"message: update of customer-a/{number} by zoe", out
        assert out[1].startswith(f"conversation {conversation.group(1)} (version {conversation.group(2)}): ") and f"vendor-x/{key}" in out[1], out
        assert "  counter retry:vendor-locked:update = 1" in out, out  # the LOCKED ack of flow() counted one retry
        assert "  matched  update-at-vendor" in out, out
        assert any(l.startswith("  no       create-at-vendor: condition ") for l in out), out
        sent = next(l for l in out if l.startswith("  update to vendor-x (rule 'update-at-vendor'): "))
        body = json.loads(sent.split("): ", 1)[1])
        assert body["key"] == key and body["fields"]["priority"]["name"] == "Highest", body
        assert out[-1] == "(nothing was sent or stored)"
        # Nothing changed: the conversation's version, and nothing went to the vendor.
        assert sb.timeline("customer-a", number).splitlines()[0] == head
        assert esb.take("sb.out.vendor-x", 1, timeout=1) == []
    finally:
        assert sb.stop() == 0


def test_rules_lint_finds_what_a_rebuilt_retry_would_lose_and_config_check_refuses_it(tmp_path):
    clean = switchboard("rules", "lint", os.path.join(REPO, "Config"))
    assert clean.returncode == 0 and "lint: 0 error(s), 0 warning(s)" in clean.stdout, clean.stdout + clean.stderr
    config = tmp_path / "Config"
    shutil.copytree(os.path.join(REPO, "Config"), config)
    rules = (config / "rules.yaml").read_text()
    # comment-at-vendor's message, read from the customer's message instead of the conversation: the retry
    # policy rebuilds it when it sends it again, and the message is not at hand then.
    old = "          comment: { attribute: vendor_comment }\n          customer_reference: { reference: customer-a }\n"
    assert old in rules
    (config / "rules.yaml").write_text(rules.replace(old, old.replace("{ reference: customer-a }", "{ field: $.number }")))
    r = switchboard("rules", "lint", str(config))
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"rules\.yaml:\d+: error: rule 'comment-at-vendor' sends comment to vendor-x, which retry policy 'vendor-locked' "
                     r"rebuilds from the conversation when it sends it again, but its body reads \$\.number from the message that "
                     r"triggered the rule", r.stderr), r.stderr
    assert "lint: 1 error(s)" in r.stdout, r.stdout
    check = switchboard("config", "check", str(config))
    assert check.returncode == 1 and "comment-at-vendor" in check.stderr, check.stdout + check.stderr


def test_a_conversation_captured_from_real_traffic_passes_and_fails_once_a_translation_it_used_changes(esb, vhost, tmp_path):
    sb = Switchboard(vhost).start()
    try:
        number, key = f"INC{uuid.uuid4().int % 10**7:07d}", f"VX-{uuid.uuid4().int % 10**5}"
        flow(esb, number, key)  # created at vendor X, acked ok with its key, an update refused as LOCKED
        deadline = time.time() + 20
        while "retry:vendor-locked:update = 1" not in (text := sb.timeline("customer-a", number)) and time.time() < deadline:
            time.sleep(0.2)
        conversation = re.match(r"conversation (\S+) ", text).group(1)
        # The personal fields of customer-a's messages, named in the configuration capture reads.
        config = tmp_path / "Config"
        shutil.copytree(sb.config, config)
        endpoints = (config / "endpoints.yaml").read_text()
        (config / "endpoints.yaml").write_text(endpoints.replace("    who: $.sys_updated_by\n",
                                                                 "    who: $.sys_updated_by\n    personal: [$.sys_updated_by]\n", 1))
        out = config / "captured_test.yaml"
        r = subprocess.run([BINARY, "rules", "capture", conversation, "--config", str(config), "--name", "the flow",
                            "--output", str(out)], env=sb.env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        captured = out.read_text()
        assert "alice" not in captured and "bob" not in captured and "(redacted)" in captured, captured
        assert captured.count("- from: \"customer-a\"") == 3 and captured.count("- ack: \"vendor-x\"") == 2, captured
        assert '"create-at-vendor"' in captured and '"retry:vendor-locked"' in captured, captured
        ok = switchboard("rules", "test", str(config))
        assert ok.returncode == 0, ok.stdout + ok.stderr + captured
        # A changed translation: the captured test fails, naming the rule whose message it changed.
        translations = (config / "translations.yaml").read_text()
        (config / "translations.yaml").write_text(translations.replace('"2": High\n', '"2": Very High\n'))
        failed = switchboard("rules", "test", str(config))
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert re.search(r"captured_test\.yaml:\d+: test 'the flow', step \d+ \(message from customer-a \(type update\)\): sent\[0\] \(create to "
                         r"vendor-x, rule 'create-at-vendor'\) body: \$\.fields\.priority\.name: expected \"High\", got \"Very High\"",
                         failed.stderr), failed.stderr
    finally:
        assert sb.stop() == 0


def test_replaying_recorded_traffic_finds_no_difference_and_then_exactly_the_conversation_a_change_touches(esb, vhost, tmp_path):
    sb = Switchboard(vhost).start()
    try:
        number, key = f"INC{uuid.uuid4().int % 10**7:07d}", f"VX-{uuid.uuid4().int % 10**5}"
        flow(esb, number, key)  # priority 2 at its create
        other = f"INC{uuid.uuid4().int % 10**7:07d}"
        esb.publish("customer-a", incident(other, priority="3"), message_id=f"{other}-1")
        [(create, _)] = take_ticket(esb, other)
        assert create.type == "create"
        deadline = time.time() + 20
        while "retry:vendor-locked:update = 1" not in sb.timeline("customer-a", number) and time.time() < deadline:
            time.sleep(0.2)

        def replay(candidate):
            return subprocess.run([BINARY, "rules", "replay", "--config", sb.config, "--candidate", str(candidate), "--since", "1h"],
                                  env=sb.env, capture_output=True, text=True, timeout=60)

        same = replay(sb.config)
        assert same.returncode == 0, same.stdout + same.stderr
        assert "replayed 2 conversation(s)" in same.stdout and "0 would differ, 0 not replayable" in same.stdout, same.stdout
        candidate = tmp_path / "Candidate"
        shutil.copytree(sb.config, candidate)
        translations = (candidate / "translations.yaml").read_text()
        (candidate / "translations.yaml").write_text(translations.replace('"2": High\n', '"2": Very High\n'))
        changed = replay(candidate)
        assert changed.returncode == 1, changed.stdout + changed.stderr
        differing = re.findall(r"^DIFFERS conversation (\S+)$", changed.stdout, re.M)
        assert len(differing) == 1, changed.stdout
        assert differing[0] in sb.timeline("customer-a", number).splitlines()[0], changed.stdout
        assert "rule 'create-at-vendor': 1 conversation(s) would differ" in changed.stdout, changed.stdout
        assert 'expected "High", got "Very High"' in changed.stdout, changed.stdout
        assert "replayed 2 conversation(s)" in changed.stdout and "1 would differ" in changed.stdout, changed.stdout
    finally:
        assert sb.stop() == 0


def test_lint_with_history_checks_translations_against_what_the_endpoints_really_sent(esb, vhost):
    sb = Switchboard(vhost).start()
    try:
        numbers = [f"INC{uuid.uuid4().int % 10**7:07d}" for _ in range(3)]
        for number, priority in zip(numbers, ["1", "9", "9"]):
            esb.publish("customer-a", incident(number, priority=priority), message_id=f"{number}-lint")
            [(create, body)] = take_ticket(esb, number)
            assert create.type == "create"
        r = subprocess.run([BINARY, "rules", "lint", sb.config, "--history", "--since", "1h"], env=sb.env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr  # findings against history are warnings
        assert "checked the translations against 3 message(s) recorded since 1h ago" in r.stdout, r.stdout
        assert re.search(r"translations\.yaml:\d+: warning: translation table 'priority-a-to-x': key\(s\) '2', '3', '4', '5' never "
                         r"occurred at \$\.priority of rule 'create-at-vendor', \$\.priority of rule 'update-at-vendor' in 3 recorded message\(s\)",
                         r.stderr), r.stderr
        assert ("translation table 'priority-a-to-x' has no key \"9\", which 2 recorded message(s) carried at $.priority of rule "
                "'create-at-vendor', $.priority of rule 'update-at-vendor': it got the table's default \"Medium\"") in r.stderr, r.stderr
        strict = subprocess.run([BINARY, "rules", "lint", sb.config, "--history", "--strict"], env=sb.env,
                                capture_output=True, text=True, timeout=60)
        assert strict.returncode == 1, strict.stdout + strict.stderr
    finally:
        assert sb.stop() == 0
