"""`switchboard rules test` and `config check` on the example configuration's rule tests (Config/*_test.yaml),
as a user runs them: the real binary, no broker. A changed translation makes them fail, naming the test,
the step, the rule and the difference; JUnit XML for CI."""
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

from conftest import BINARY, REPO


def switchboard(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=60)


def test_the_example_configurations_rule_tests_pass():
    r = switchboard("rules", "test", os.path.join(REPO, "Config"))
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"rule tests: (\d+) passed, 0 failed", r.stdout)
    assert m and int(m.group(1)) >= 6, r.stdout
    check = switchboard("config", "check", os.path.join(REPO, "Config"))
    assert check.returncode == 0 and "rule tests:" in check.stdout, check.stdout + check.stderr


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
