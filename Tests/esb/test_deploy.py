"""The deployment files, checked by the tools their users run: promtool for the Prometheus configuration and
the alert rules (with their unit tests), kubernetes-validate for the Kubernetes manifests, KEDA's CRD models
(cloudcoil's, generated from KEDA's CRDs) for the ScaledObject and TriggerAuthentication, systemd-analyze for
the units, and the Grafana dashboard's shape.
"""
import glob
import json
import os
import re
import subprocess
import time

import pytest
import yaml

from conftest import REPO

DEPLOY = os.path.join(REPO, "Deploy")
KUBERNETES_VERSION = "1.30.0"


def run(*args, cwd=None):
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120)


def test_prometheus_configuration_and_alert_rules_pass_promtool():
    d = os.path.join(DEPLOY, "prometheus")
    r = run("promtool", "check", "config", "prometheus.yml", cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("promtool", "check", "rules", "alerts.yml", cwd=d)
    assert r.returncode == 0 and "SUCCESS: 14 rules found" in r.stdout, r.stdout + r.stderr
    r = run("promtool", "test", "rules", "alerts_test.yml", cwd=d)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    # Every alert has a unit test and a runbook section in docs/operations.md.
    alerts = [rule["alert"] for g in yaml.safe_load(open(os.path.join(d, "alerts.yml")))["groups"] for rule in g["rules"]]
    tested = {t["alertname"] for test in yaml.safe_load(open(os.path.join(d, "alerts_test.yml")))["tests"]
              for t in test["alert_rule_test"] if t["exp_alerts"]}
    assert set(alerts) == tested, set(alerts) ^ tested
    operations = open(os.path.join(REPO, "docs", "operations.md")).read()
    for alert in alerts:
        assert f"### {alert}" in operations, f"docs/operations.md has no section for {alert}"


def test_the_alert_tests_can_fail(tmp_path):
    """A rule broken on purpose fails its unit test (the tests are not vacuous)."""
    d = os.path.join(DEPLOY, "prometheus")
    text = open(os.path.join(d, "alerts.yml")).read().replace("switchboard_endpoint_oldest_message_age_seconds) > 120",
                                                               "switchboard_endpoint_oldest_message_age_seconds) > 1200")
    (tmp_path / "alerts.yml").write_text(text)
    (tmp_path / "alerts_test.yml").write_text(open(os.path.join(d, "alerts_test.yml")).read())
    r = run("promtool", "test", "rules", "alerts_test.yml", cwd=str(tmp_path))
    assert r.returncode != 0 and "SwitchboardEndpointMessageOld" in r.stdout + r.stderr


def manifests():
    for path in sorted(glob.glob(os.path.join(DEPLOY, "kubernetes", "**", "*.yaml"), recursive=True)):
        for doc in yaml.safe_load_all(open(path)):
            if doc:
                yield os.path.relpath(path, REPO), doc


def test_kubernetes_manifests_validate_against_the_kubernetes_schemas():
    import kubernetes_validate
    kinds = []
    for path, doc in manifests():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{path}: {doc['kind']} {doc['metadata']['name']}: {e.message} at {list(e.path)}")
        kinds.append(doc["kind"])
    for kind in ("Namespace", "ConfigMap", "Deployment", "StatefulSet", "PodDisruptionBudget", "Service"):
        assert kind in kinds, kinds


def test_kubernetes_manifests_wire_probes_drain_resources_and_secrets():
    deployments = {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] in ("Deployment", "StatefulSet")}
    assert {"switchboard-intake", "switchboard-worker", "switchboard-store", "switchboard-admin"} <= deployments.keys()
    secrets = set()
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        # Long enough to finish a batch: publisher confirms are awaited for up to 30 s.
        assert pod["terminationGracePeriodSeconds"] >= 45, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready", name
            assert c["livenessProbe"]["httpGet"]["path"] == "/health/live", name
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports[c["readinessProbe"]["httpGet"]["port"]] in (9460, 9464), name
            for e in c.get("env", []):
                if "valueFrom" in e:
                    secrets.add(e["valueFrom"]["secretKeyRef"]["name"])
                else:
                    # No credentials in plain values: no URL with a user part, no password or token.
                    assert not re.search(r"://[^/]*@", str(e.get("value", ""))), e
                    assert not re.search("PASSWORD|TOKEN|SECRET", e["name"]), e
    docs = list(manifests())
    assert not [d for _, d in docs if d["kind"] == "Secret"], "secrets are named, never included"
    readme = open(os.path.join(DEPLOY, "kubernetes", "README.md")).read()
    for s in secrets | {"switchboard-tls", "switchboard-keda-rabbitmq"}:
        assert f"`{s}`" in readme, f"secret {s} is not named in Deploy/kubernetes/README.md"
    pdbs = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for _, d in docs if d["kind"] == "PodDisruptionBudget"}
    assert {"intake", "worker", "store"} <= pdbs


def test_the_keda_objects_validate_against_kedas_crd_models():
    """cloudcoil's pydantic models are generated from KEDA's CRDs; a field they do not know is dropped on the
    way through, so a round trip that changes nothing means every field is KEDA's."""
    from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
    models = {"ScaledObject": ScaledObject, "TriggerAuthentication": TriggerAuthentication}
    keda = [(p, d) for p, d in manifests() if d["apiVersion"].startswith("keda.sh/")]
    assert sorted(d["kind"] for _, d in keda) == ["ScaledObject", "TriggerAuthentication"]
    for path, doc in keda:
        model = models[doc["kind"]].model_validate(doc)
        assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc, f"{path}: fields KEDA does not know"
    so = next(d for _, d in keda if d["kind"] == "ScaledObject")
    [trigger] = so["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq" and trigger["metadata"]["mode"] == "QueueLength"
    assert re.fullmatch(trigger["metadata"]["queueName"], "sb.work.7") and not re.fullmatch(trigger["metadata"]["queueName"], "sb.workers")
    assert so["spec"]["scaleTargetRef"]["name"] == "switchboard-worker"
    # A broken object is refused (the check is not vacuous).
    broken = json.loads(json.dumps(so))
    del broken["spec"]["scaleTargetRef"]
    with pytest.raises(Exception):
        ScaledObject.model_validate(broken)
    broken = json.loads(json.dumps(so))
    broken["spec"]["triggers"][0]["metadata"]["value"] = 500
    with pytest.raises(Exception):
        ScaledObject.model_validate(broken)


def test_the_grafana_dashboard_is_well_formed():
    dash = json.load(open(os.path.join(DEPLOY, "grafana", "switchboard.json")))
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for topic in ("endpoint", "latency", "backlog", "oldest", "parked", "acks", "store", "workers", "partitions"):
        assert topic in titles, topic
    for p in panels:
        assert p["targets"] and all(t["expr"] and t["datasource"]["uid"] == "${datasource}" for t in p["targets"]), p["title"]
        x, w = p["gridPos"]["x"], p["gridPos"]["w"]
        assert 0 <= x and x + w <= 24, p["title"]


def test_systemd_units_are_hardened():
    units = sorted(glob.glob(os.path.join(DEPLOY, "systemd", "*.service")))
    assert len(units) >= 4
    for unit in units:
        text = open(unit).read()
        for directive in ("UMask=0077", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/switchboard",
                          "PrivateTmp=yes", "ProtectHome=yes", "CapabilityBoundingSet=", "SystemCallFilter=@system-service",
                          "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "TimeoutStopSec="):
            assert directive in text, f"{os.path.basename(unit)}: {directive}"
        r = run("systemd-analyze", "security", "--offline=yes", "--threshold=30", "--no-pager", unit)
        exposure = re.search(r"Overall exposure level for .*: ([0-9.]+)", r.stdout + r.stderr)
        assert exposure, r.stdout + r.stderr
        # 10 is "UNSAFE" (systemd's default for a unit); ours must be "OK" (under 3).
        assert float(exposure.group(1)) < 3.0, f"{os.path.basename(unit)}: exposure {exposure.group(1)}\n{r.stdout}"


def test_rabbitmq_apply_gives_quorum_queues_the_policy_and_each_user_least_privilege():
    """Deploy/rabbitmq/apply.sh on the real broker, twice (idempotent), then Switchboard with
    queue_type quorum as the user it made, and its metrics reading ages as the monitoring user."""
    from conftest import AMQP_PORT, ESB, MGMT, Switchboard, incident, mgmt, rabbitmqctl_ok
    import pika
    import uuid
    if not rabbitmqctl_ok():
        pytest.skip("the broker is not the one Deploy/local/rabbitmq.sh started")
    tag = uuid.uuid4().hex[:8]
    vhost, sb_user, mon_user, esb_user = f"sb-prod-{tag}", f"sb-{tag}", f"mon-{tag}", f"esb-{tag}"
    secrets = {"SB_SWITCHBOARD_PASSWORD": uuid.uuid4().hex, "SB_MONITORING_PASSWORD": uuid.uuid4().hex}
    env = dict(os.environ, RABBITMQCTL=f"bash {REPO}/Deploy/local/rabbitmq.sh ctl", SB_SWITCHBOARD_USER=sb_user,
               SB_MONITORING_USER=mon_user, **secrets)
    sb = None
    try:
        for _ in range(2):
            r = subprocess.run(["bash", os.path.join(DEPLOY, "rabbitmq", "apply.sh"), vhost], env=env,
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            assert not any(s in r.stdout + r.stderr for s in secrets.values())
        r = subprocess.run(["bash", os.path.join(DEPLOY, "rabbitmq", "users.sh"), "esb", vhost, esb_user, "customer-a"],
                           env=dict(env, SB_USER_PASSWORD="esb-" + tag), capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stderr
        mgmt("PUT", f"/api/permissions/{vhost}/guest", {"configure": "", "write": "^sb\\.in$", "read": "^sb\\.(out|parked).*"})
        broker = f"amqp://{sb_user}:{secrets['SB_SWITCHBOARD_PASSWORD']}@localhost:{AMQP_PORT}/{vhost}"
        management = MGMT.replace("://", f"://{mon_user}:{secrets['SB_MONITORING_PASSWORD']}@")
        sb = Switchboard(vhost, env={"SB_BROKER_URL": broker, "SB_QUEUE_TYPE": "quorum", "SB_MANAGEMENT_URL": management}).start()
        esb = ESB(vhost)
        esb.publish("customer-a", incident("INCPROD1", assignment_group={"value": "g1", "display_value": "Local"}), message_id="prod-1")
        esb.publish("customer-a", incident("INCPROD1"), message_id="prod-2")
        assert len(esb.take("sb.out.vendor-x", 1)) == 1
        esb.close()
        # The management API fills in a new queue's details (policy and all) with its statistics, within 5 s.
        deadline = time.time() + 15
        while True:
            queues = {q["name"]: q for q in mgmt("GET", f"/api/queues/{vhost}")}
            if all("effective_policy_definition" in q for q in queues.values()) or time.time() > deadline:
                break
            time.sleep(0.5)
        for name in ("sb.in.customer-a", "sb.out.vendor-x", "sb.work.0", "sb.in.unrouted"):
            assert queues[name]["type"] == "quorum", (name, queues[name]["type"])
            assert queues[name]["policy"] == "sb-data", name
            definition = queues[name]["effective_policy_definition"]
            assert definition["delivery-limit"] == 100 and definition["dead-letter-strategy"] == "at-least-once", definition
        assert queues["sb.parked"]["type"] == "quorum" and queues["sb.parked"].get("policy") in (None, "")
        # Nothing RabbitMQ 4 deprecates: every queue durable (no transient non-exclusive queue), the store's
        # request queues replicated too; every data queue names its delivery limit and dead-letter target.
        assert queues["sb.store"]["type"] == "quorum" and queues["sb.store.members"]["type"] == "quorum"
        for name, q in queues.items():
            if name.startswith("sb.lock."):
                # The locks of the loops that consume a queue alone: exclusive (owned by a connection,
                # which RabbitMQ 4 keeps), never holding a message.
                assert q["exclusive"] and q.get("messages", 0) == 0, (name, q)
                continue
            assert q["durable"] and not q["auto_delete"] and not q["exclusive"], (name, q)
        for name in ("sb.in.customer-a", "sb.out.vendor-x", "sb.work.0", "sb.in.unrouted"):
            args = queues[name]["arguments"]
            assert args["x-delivery-limit"] == 100 and args["x-dead-letter-routing-key"] == "sb.parked", (name, args)
            assert args["x-dead-letter-exchange"] == "" and args["x-dead-letter-strategy"] == "at-least-once", (name, args)
        assert "x-delivery-limit" not in queues["sb.parked"]["arguments"]
        # The monitoring user reads the ages for Switchboard's metrics: no management error counted.
        deadline = time.time() + 20
        while time.time() < deadline and 'switchboard_endpoint_oldest_message_age_seconds{endpoint="vendor-x",direction="out"}' not in sb.metrics():
            time.sleep(0.5)
        text = sb.metrics()
        assert 'switchboard_endpoint_oldest_message_age_seconds{endpoint="vendor-x",direction="out"}' in text
        assert 'switchboard_queue_read_errors_total{source="management"} 0' in text
        # The ESB's user may publish and read its own outbound queue, nothing else.
        params = pika.URLParameters(f"amqp://{esb_user}:esb-{tag}@localhost:{AMQP_PORT}/{vhost}")
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.queue_declare("sb.out.customer-a", passive=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.basic_get("sb.work.0")
        assert refused.value.reply_code == 403
        conn.close()
        # And the monitoring user may not touch a message.
        conn = pika.BlockingConnection(pika.URLParameters(f"amqp://{mon_user}:{secrets['SB_MONITORING_PASSWORD']}@localhost:{AMQP_PORT}/{vhost}"))
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            conn.channel().basic_get("sb.out.vendor-x")
        assert refused.value.reply_code == 403
        conn.close()
    finally:
        if sb:
            sb.stop()
        for path in (f"/api/vhosts/{vhost}", f"/api/users/{sb_user}", f"/api/users/{mon_user}", f"/api/users/{esb_user}"):
            try:
                mgmt("DELETE", path)
            except Exception:
                pass


def test_the_production_rabbitmq_conf_boots_a_node_that_speaks_tls_12_and_13_only(tmp_path):
    """Deploy/rabbitmq/rabbitmq.conf on a RabbitMQ node of its own (the test's certificates and free ports
    instead of /etc/rabbitmq/tls and the standard ones): it boots (RabbitMQ refuses unknown keys), listens
    for AMQP over TLS and the management API over TLS only, and refuses TLS 1.1."""
    from conftest import TLS_DIR, free_port
    import shutil as sh
    bindir = "/usr/lib/rabbitmq/bin" if os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server") else os.path.dirname(sh.which("rabbitmq-server") or "")
    if not bindir or not os.path.exists(os.path.join(bindir, "rabbitmq-server")):
        pytest.skip("no rabbitmq-server on this machine")
    amqps, mgmt_tls, prom, dist = free_port(), free_port(), free_port(), free_port()
    text = open(os.path.join(DEPLOY, "rabbitmq", "rabbitmq.conf")).read()
    text = text.replace("/etc/rabbitmq/tls/", TLS_DIR + "/").replace("listeners.ssl.default = 5671", f"listeners.ssl.default = {amqps}")
    text = text.replace("management.ssl.port = 15671", f"management.ssl.port = {mgmt_tls}").replace("prometheus.tcp.port = 15692", f"prometheus.tcp.port = {prom}")
    text = text.replace("disk_free_limit.absolute = 5GB", "disk_free_limit.absolute = 50MB")
    (tmp_path / "rabbitmq.conf").write_text(text)
    (tmp_path / "enabled_plugins").write_text(open(os.path.join(DEPLOY, "rabbitmq", "enabled_plugins")).read())
    node = f"sbprod{os.getpid()}@localhost"
    env = dict(os.environ, RABBITMQ_NODENAME=node, RABBITMQ_MNESIA_BASE=str(tmp_path / "mnesia"), RABBITMQ_LOG_BASE=str(tmp_path / "log"),
               RABBITMQ_CONFIG_FILE=str(tmp_path / "rabbitmq.conf"), RABBITMQ_ENABLED_PLUGINS_FILE=str(tmp_path / "enabled_plugins"),
               RABBITMQ_PID_FILE=str(tmp_path / "pid"), RABBITMQ_DIST_PORT=str(dist), RABBITMQ_ADVANCED_CONFIG_FILE=str(tmp_path / "advanced.config"))
    (tmp_path / "advanced.config").write_text("[].\n")
    (tmp_path / "mnesia").mkdir()
    (tmp_path / "log").mkdir()
    ctl = os.path.join(bindir, "rabbitmqctl")
    # cwd: a node that fails to boot writes erl_crash.dump where it runs.
    r = subprocess.run([os.path.join(bindir, "rabbitmq-server"), "-detached"], env=env, cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        deadline = time.time() + 90
        while True:
            r = subprocess.run([ctl, "-n", node, "await_startup", "--timeout", "5"], env=env, capture_output=True, text=True, timeout=60)
            if r.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
        logs = "".join(open(p).read() for p in glob.glob(str(tmp_path / "log" / "*.log")))
        assert r.returncode == 0, r.stdout + r.stderr + logs[-3000:]
        r = subprocess.run([os.path.join(bindir, "rabbitmq-diagnostics"), "-n", node, "listeners", "--formatter", "json"],
                           env=env, capture_output=True, text=True, timeout=60)
        listeners = {(l["protocol"], l["port"]) for l in json.loads(r.stdout)["listeners"]}
        assert ("amqp/ssl", amqps) in listeners and ("https", mgmt_tls) in listeners, listeners
        assert not any(p in ("amqp", "http") for p, _ in listeners), listeners
        for version, accepted in (("-tls1_3", True), ("-tls1_2", True), ("-tls1_1", False)):
            s = subprocess.run(["openssl", "s_client", "-connect", f"localhost:{amqps}", version, "-CAfile", os.path.join(TLS_DIR, "ca.pem"),
                                "-verify_return_error", "-cipher", "DEFAULT@SECLEVEL=0"],
                               input="", capture_output=True, text=True, timeout=30)
            handshake = "Verify return code: 0 (ok)" in s.stdout and "Cipher is (NONE)" not in s.stdout and "Cipher is" in s.stdout
            assert handshake == accepted, (version, s.stdout[-1500:], s.stderr[-1500:])
    finally:
        subprocess.run([ctl, "-n", node, "stop"], env=env, capture_output=True, timeout=60)
