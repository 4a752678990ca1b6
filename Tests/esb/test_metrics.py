"""Operating the fleet, checked with the real parts: a real Prometheus (Debian's) with the scrape configuration
and alert rules of Deploy/prometheus scrapes `switchboard run` and a fleet of separate role processes while
ESB traffic flows; PromQL says what flowed (per endpoint, per rule, parked by reason); `promtool check metrics`
reads every role's output; every metric the dashboard and the alerts use exists. And the readiness probe of
each role: ready only once it consumes, unready while its broker connection is cut, ready again after.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
import yaml

from conftest import (ESB, amqp_url, MGMT, PROMETHEUS_PORT, REPO, Switchboard, flow, free_port, fresh_vhost, http_get, incident, memory_alarm, mgmt,
                      rabbitmqctl, rabbitmqctl_ok)

DEPLOY = os.path.join(REPO, "Deploy", "prometheus")
FLOWS = 3
METRIC = re.compile(r"\bswitchboard_[a-z_]+")


def histograms():
    """Histogram family names, from the source's catalog (their series are name_bucket, _sum, _count)."""
    text = open(os.path.join(REPO, "Sources", "Telemetry", "Meters.swift")).read()
    return set(re.findall(r'name: "(switchboard_[a-z_]+)", kind: \.histogram', text))


class Prometheus:
    """Debian's prometheus with Deploy/prometheus/prometheus.yml and alerts.yml as they are, but for the
    intervals (1 s instead of 15 s, so the test does not wait minutes) and the target files it writes."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sb-prom-")
        for name in ("prometheus.yml", "alerts.yml"):
            shutil.copy(os.path.join(DEPLOY, name), self.dir)
        path = os.path.join(self.dir, "prometheus.yml")
        text = open(path).read()
        assert "scrape_interval: 15s" in text and "evaluation_interval: 15s" in text
        with open(path, "w") as f:
            f.write(text.replace("scrape_interval: 15s", "scrape_interval: 1s").replace("evaluation_interval: 15s", "evaluation_interval: 1s"))
        os.makedirs(os.path.join(self.dir, "targets"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = None

    def targets(self, groups):
        with open(os.path.join(self.dir, "targets", "switchboard-test.yml"), "w") as f:
            yaml.safe_dump(groups, f)

    def start(self):
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.dir}/prometheus.yml", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if http_get(self.url + "/-/ready")[0] == 200:
                return self
            assert self.proc.poll() is None, open(self.log.name).read()
            time.sleep(0.2)
        raise AssertionError("prometheus did not become ready:\n" + open(self.log.name).read())

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(20)

    def query(self, promql):
        status, body = http_get(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert status == 200, (promql, body)
        return json.loads(body)["data"]["result"]

    def value(self, promql):
        """The query's single value, or None when it has no result."""
        result = self.query(promql)
        assert len(result) <= 1, (promql, result)
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, promql, expected, timeout=30):
        deadline = time.time() + timeout
        got = None
        while time.time() < deadline:
            got = self.value(promql)
            if got == expected:
                return
            time.sleep(0.5)
        raise AssertionError(f"{promql} = {got}, expected {expected}")


@pytest.fixture(scope="module")
def prometheus():
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        pytest.fail("Debian's prometheus package is missing: `make test` installs it (Deploy/local/install-test.sh)")
    p = Prometheus()
    yield p
    p.stop()


def traffic(esb, keeper):
    """FLOWS tickets through create, ok ack, update and an error ack (handled by the retry policy vendor-locked, which
    starts a timer), one body that is not JSON and one message for an endpoint nobody configured."""
    for _ in range(FLOWS):
        number, key = f"INC{uuid.uuid4().int % 10**7:07d}", f"VX-{uuid.uuid4().int % 10**5}"
        flow(esb, number, key)
    esb.publish("customer-a", b"{not json", message_id=f"bad-{uuid.uuid4().hex[:6]}", raw=True)
    esb.publish("nobody", {"x": 1}, message_id=f"nobody-{uuid.uuid4().hex[:6]}")
    deadline = time.time() + 20
    while keeper.parked_count() < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert keeper.parked_count() == 2 and esb.depth("sb.parked") == 0


def promtool_check(text, who):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), f"{who}: {r.stdout}{r.stderr}"


def used_metrics():
    """Every switchboard_* metric the alert rules and the dashboard query."""
    exprs = []
    for group in yaml.safe_load(open(os.path.join(DEPLOY, "alerts.yml")))["groups"]:
        exprs += [r["expr"] for r in group["rules"]]
    dashboard = json.load(open(os.path.join(REPO, "Deploy", "grafana", "switchboard.json")))

    def walk(panels):
        for p in panels:
            yield from (t["expr"] for t in p.get("targets", []))
            yield from walk(p.get("panels", []))
    exprs += list(walk(dashboard["panels"]))
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    names = set()
    hist = histograms()
    for e in exprs:
        for name in METRIC.findall(e):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            names.add(base if base in hist else name)
    return names, len(exprs)


def test_prometheus_sees_what_flowed_through_run_and_a_fleet(prometheus):
    run_vhost_gen, fleet_vhost_gen = fresh_vhost("sb-metrics-"), fresh_vhost("sb-metrics-")
    run_vhost, fleet_vhost = next(run_vhost_gen), next(fleet_vhost_gen)
    # The run has a webhook ingress too (its own broker user, write on sb.in only): its metrics are scraped.
    mgmt("PUT", "/api/users/sb-metrics-ingress", {"password": "sb-metrics-ingress", "tags": ""})
    mgmt("PUT", f"/api/permissions/{run_vhost}/sb-metrics-ingress", {"configure": "^$", "write": r"^sb\.in$", "read": "^$"})
    hooks_port, token, dead_port = free_port(), "sbt_" + uuid.uuid4().hex, free_port()
    # ... and a REST endpoint whose host takes no connection (nothing listens on its port): the webhooks'
    # messages go there, and its circuit opens.
    ingress_config = f"""
ingress:
  listen: 127.0.0.1:{hooks_port}
  plain_http: true
  broker_url: amqp://sb-metrics-ingress:sb-metrics-ingress@{urllib.parse.urlsplit(amqp_url(run_vhost)).netloc.split("@")[1]}/{urllib.parse.quote(run_vhost, safe="")}
endpoints:
  hook-m:
    ticket_id: $.number
    webhook: {{auth: bearer, token_sha256: {hashlib.sha256(token.encode()).hexdigest()}}}
  rest-m:
    ticket_id: $.id
    rest: {{profile: generic-rest, base_url: "http://127.0.0.1:{dead_port}", auth: bearer, token_env: SB_TEST_REST_M_TOKEN, timeout_ms: 500}}
rules:
  - name: hook-to-rest
    from: hook-m
    send: [{{to: rest-m, type: create, body: {{number: {{field: $.number}}}}}}]
"""
    run = Switchboard(run_vhost, extra_config=ingress_config, env={"SB_TEST_REST_M_TOKEN": "t"})
    store = Switchboard(fleet_vhost, args=["store"])
    intake = Switchboard(fleet_vhost, args=["intake"])
    worker = Switchboard(fleet_vhost, args=["worker"])
    processes = {"run": run, "store": store, "intake": intake, "worker": worker}

    def target(p, role, shape):
        return {"targets": [p.env["SB_METRICS_LISTEN"]], "labels": {"role": role, "shape": shape}}
    prometheus.targets([target(run, "run", "run")] + [target(p, r, "fleet") for r, p in processes.items() if r != "run"])
    prometheus.start()
    esbs = []
    try:
        for p in (run, store, intake, worker):
            p.start()
        for vhost, keeper in ((run_vhost, run), (fleet_vhost, store)):
            esb = ESB(vhost)
            esbs.append(esb)
            traffic(esb, keeper)

        # Prometheus scraped every process.
        prometheus.wait_value('count(up{job="switchboard"} == 1)', 4.0)
        for shape in ("run", "fleet"):
            s = f'shape="{shape}"'
            prometheus.wait_value(f'sum(switchboard_intake_messages_total{{{s}, endpoint="customer-a", outcome="routed"}})', 3.0 * FLOWS)
            prometheus.wait_value(f'sum(switchboard_intake_messages_total{{{s}, endpoint="vendor-x", kind="ack", outcome="routed"}})', 2.0 * FLOWS)
            prometheus.wait_value(f'sum(switchboard_worker_messages_total{{{s}, endpoint="customer-a", outcome="applied"}})', 3.0 * FLOWS)
            prometheus.wait_value(f'sum(switchboard_rule_matches_total{{{s}, rule="create-at-vendor"}})', 1.0 * FLOWS)
            prometheus.wait_value(f'sum(switchboard_rule_matches_total{{{s}, rule="retry:vendor-locked"}})', 1.0 * FLOWS)
            prometheus.wait_value(f'sum(switchboard_rule_matches_total{{{s}, rule="hand-back-to-customer"}})', 0.0)
            prometheus.wait_value(f'sum(switchboard_outbound_messages_total{{{s}, target="vendor-x", type="create"}})', 1.0 * FLOWS)
            prometheus.wait_value(f'sum(switchboard_outbound_messages_total{{{s}, target="vendor-x", type="update"}})', 1.0 * FLOWS)
            prometheus.wait_value(f'sum(switchboard_acks_total{{{s}, endpoint="vendor-x", outcome="ok"}})', 1.0 * FLOWS)
            prometheus.wait_value(f'sum(switchboard_acks_total{{{s}, endpoint="vendor-x", outcome="error"}})', 1.0 * FLOWS)
            prometheus.wait_value(f'sum(switchboard_timers_scheduled_total{{{s}}})', 1.0 * FLOWS)
            prometheus.wait_value(f'sum(switchboard_parked_messages_total{{{s}, endpoint="customer-a", reason="invalid_json"}})', 1.0)
            prometheus.wait_value(f'sum(switchboard_parked_messages_total{{{s}, endpoint="none", reason="unknown_endpoint"}})', 1.0)
            prometheus.wait_value(f'max(switchboard_parked_stored{{{s}}})', 2.0, timeout=30)
            prometheus.wait_value(f'max(switchboard_queue_consumers{{{s}, queue="sb.work.0"}})', 1.0)
            prometheus.wait_value(f'max(switchboard_endpoint_backlog_threshold{{{s}, endpoint="vendor-x"}})', 100.0)
            # Every message a worker decided took a measurable time from intake; none was counted twice.
            prometheus.wait_value(f'sum(switchboard_message_latency_seconds_count{{{s}}})', 5.0 * FLOWS)
            assert prometheus.value(f'sum(switchboard_message_latency_seconds_sum{{{s}}})') > 0
            assert prometheus.value(f'sum(switchboard_store_request_duration_seconds_count{{{s}, op="commit", backend="sqlite"}})') >= 1
        # Webhooks after the counts above (each one a message decided: the latency count would have 2 more).
        for n, auth in enumerate((token, token, "sbt_wrong")):
            req = urllib.request.Request(f"http://127.0.0.1:{hooks_port}/hooks/hook-m", method="POST",
                                         data=json.dumps({"number": f"HM{n}"}).encode(), headers={"Authorization": f"Bearer {auth}"})
            try:
                urllib.request.urlopen(req, timeout=10).close()
            except urllib.error.HTTPError as e:
                assert e.code == 401
        prometheus.wait_value('sum(switchboard_ingress_requests_total{shape="run", endpoint="hook-m", outcome="accepted"})', 2.0)
        prometheus.wait_value('sum(switchboard_ingress_requests_total{shape="run", endpoint="hook-m", outcome="unauthorized"})', 1.0)
        prometheus.wait_value('sum(switchboard_ingress_seconds_count{shape="run", endpoint="hook-m"})', 2.0)
        # Their messages went to rest-m, whose host refuses: the circuit opened (what the alert watches).
        prometheus.wait_value('max(switchboard_rest_circuit_open{shape="run", endpoint="rest-m"})', 1.0, timeout=60)
        assert prometheus.value('sum(switchboard_rest_waits_total{shape="run", endpoint="rest-m", scope="circuit"})') >= 1
        # The roles' own series are where they belong: intake counts at the intake, the worker's at the worker,
        # the store's commits at the store, the worker's round trips to it as backend "remote".
        prometheus.wait_value('sum(switchboard_intake_messages_total{role="intake"})', 5.0 * FLOWS + 2)
        assert prometheus.value('sum(switchboard_intake_messages_total{role="worker"})') is None
        assert prometheus.value('sum(switchboard_store_request_duration_seconds_count{role="worker", op="commit", backend="remote"})') >= FLOWS
        prometheus.wait_value('max(switchboard_partitions_owned{role="worker"})', 8.0)
        prometheus.wait_value('max(switchboard_workers_live{role="worker"})', 1.0)
        # Every process ready (a part may be briefly unready under load, e.g. a batch's confirms late: the
        # wait is long; on failure, which process and what its /health/ready says).
        try:
            prometheus.wait_value('min(switchboard_ready)', 1.0, timeout=90)
        except AssertionError:
            details = {}
            for r in prometheus.query('switchboard_ready == 0'):
                p = processes.get(r["metric"].get("role"))
                try:
                    details[r["metric"].get("role")] = urllib.request.urlopen(p.metrics_url + "/health/ready", timeout=5).read().decode()
                except urllib.error.HTTPError as e:
                    details[r["metric"].get("role")] = e.read().decode()
                except Exception as e:  # noqa: BLE001 (a diagnosis, not the assertion)
                    details[r["metric"].get("role")] = repr(e)
            raise AssertionError(f"not ready: {details}")
        prometheus.wait_value('count(switchboard_build_info)', 4.0)
        hashes = prometheus.query('switchboard_config_info{shape="fleet"}')
        assert len({r["metric"]["hash"] for r in hashes}) == 1 and len(hashes) == 3, hashes

        # promtool has nothing to say about any role's output.
        for role, p in processes.items():
            promtool_check(p.metrics(), role)

        # Every metric the alerts and the dashboard use exists in Prometheus.
        names, count = used_metrics()
        assert count > 20 and len(names) > 15, (count, names)
        missing = [n for n in sorted(names) if prometheus.value(f'count({{__name__=~"{n}(_bucket)?"}})') is None]
        assert not missing, missing
        # Every dashboard query is valid PromQL and shows something for this traffic. A rate needs two samples
        # in its window: wait until every target has been scraped a few times (the test can be that quick).
        deadline = time.time() + 30
        while (prometheus.value('min(count_over_time(up{job="switchboard"}[1m]))') or 0) < 3 and time.time() < deadline:
            time.sleep(0.5)
        dashboard = json.load(open(os.path.join(REPO, "Deploy", "grafana", "switchboard.json")))
        empty = []
        for panel in dashboard["panels"]:
            for t in panel.get("targets", []):
                expr = t["expr"].replace("$__rate_interval", "1m").replace('job=~"$job"', 'job=~".+"')
                if not prometheus.query(expr):
                    empty.append((panel["title"], expr))
        assert not empty, empty
        # The alert rules loaded, evaluate, and none fires on this healthy fleet but the parked messages'.
        status, body = http_get(prometheus.url + "/api/v1/rules")
        groups = json.loads(body)["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == 14 and all(r["health"] == "ok" for r in rules), rules
        firing = {a["labels"]["alertname"] for a in json.loads(http_get(prometheus.url + "/api/v1/alerts")[1])["data"]["alerts"]
                  if a["state"] == "firing"}
        assert firing <= {"SwitchboardParkedGrowing"}, firing
    finally:
        for esb in esbs:
            esb.close()
        for p in (worker, intake, store, run):
            p.stop()
        for gen in (run_vhost_gen, fleet_vhost_gen):
            next(gen, None)


def set_access(vhost, allowed):
    if allowed:
        mgmt("PUT", f"/api/permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    else:
        mgmt("DELETE", f"/api/permissions/{vhost}/guest")


def consumers(esb, queue):
    return esb.ch.queue_declare(queue, passive=True).method.consumer_count


def wait_ready(p, want, timeout=30):
    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        status, body = p.ready()
        if status == want:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{p.args}: /health/ready stayed {status}, wanted {want}: {p.ready()}\n{p.output()[-3000:]}")


def alert_expr(name):
    return next(r["expr"] for g in yaml.safe_load(open(os.path.join(DEPLOY, "alerts.yml")))["groups"]
                for r in g["rules"] if r.get("alert") == name)


@pytest.mark.serial  # a memory alarm blocks every publisher of the broker
@pytest.mark.xdist_group("memory-alarm")  # after the other alarm test, never beside it
def test_a_broker_resource_alarm_shows_in_prometheus_through_the_alerts_expression():
    """SwitchboardBrokerBlocked reads RabbitMQ's own metrics (job rabbitmq, the Prometheus plugin): with the
    local node scraped by a real Prometheus, its expression is empty while all is well, says 1 for the node
    while a memory alarm holds, and is empty again once it clears. (`for: 1m` is promtool's to test.)"""
    if not rabbitmqctl_ok():
        pytest.skip("the broker is not the one Deploy/local/rabbitmq.sh started; cannot raise its alarm")
    prometheus = Prometheus()
    with open(os.path.join(prometheus.dir, "targets", "rabbitmq-test.yml"), "w") as f:
        yaml.safe_dump([{"targets": [f"localhost:{PROMETHEUS_PORT}"]}], f)
    prometheus.start()
    expr = alert_expr("SwitchboardBrokerBlocked")
    try:
        prometheus.wait_value('count(rabbitmq_alarms_memory_used_watermark{job="rabbitmq"})', 1.0)
        assert prometheus.query(expr) == []
        with memory_alarm():
            prometheus.wait_value(f"count({expr})", 1.0)
        prometheus.wait_value(f"count({expr})", None)
    finally:
        prometheus.stop()


def test_each_role_is_ready_only_while_it_consumes_and_unready_while_the_broker_is_cut():
    if not rabbitmqctl_ok():
        pytest.skip("the broker is not the one Deploy/local/rabbitmq.sh started")
    gen = fresh_vhost("sb-probes-")
    vhost = next(gen)
    roles = {name: Switchboard(vhost, args=args, consumers=0) for name, args in
             (("store", ["store"]), ("intake", ["intake"]), ("worker", ["worker", "--threads", "1"]))}
    # The broker refuses the guest user on this vhost: nothing can connect while the roles start.
    set_access(vhost, False)
    try:
        for p in roles.values():
            p.start()
        for p in roles.values():
            # Live (the process runs) but not ready: it has no broker connection, and says so.
            status, body = wait_ready(p, 503), None
            assert http_get(p.metrics_url + "/health/live")[0] == 200
        time.sleep(2)
        for name, p in roles.items():
            status, body = p.ready()
            assert status == 503, (name, status, body)
            assert any("broker" in part["detail"] or "store" in part["detail"] for part in body["parts"] if not part["ready"]), body
        set_access(vhost, True)
        esb = ESB(vhost)
        for p in roles.values():
            wait_ready(p, 200)
        # Ready means consuming: the broker shows each role's consumers.
        assert consumers(esb, "sb.store") == 1
        assert consumers(esb, "sb.in.customer-a") == 1 and consumers(esb, "sb.in.vendor-x") == 1
        assert all(consumers(esb, f"sb.work.{n}") == 1 for n in range(8))
        esb.publish("customer-a", incident("INCPROBE1", assignment_group={"value": "g1", "display_value": "Local"}),
                    message_id="probe-1")
        esb.publish("customer-a", incident("INCPROBE1"), message_id="probe-2")
        assert len(esb.take("sb.out.vendor-x", 1)) == 1

        # Cut: access revoked and every connection of the vhost closed. Each role turns unready.
        esb.close()
        set_access(vhost, False)
        assert rabbitmqctl("close_all_connections", "-p", vhost, "test: broker cut").returncode == 0
        for name, p in roles.items():
            body = wait_ready(p, 503, timeout=20)
            assert not all(part["ready"] for part in body["parts"]), (name, body)
        time.sleep(1)
        assert all(p.ready()[0] == 503 for p in roles.values())
        assert all(http_get(p.metrics_url + "/health/live")[0] == 200 for p in roles.values())
        # Back: each role reconnects by itself and is ready again, and messages flow.
        set_access(vhost, True)
        for p in roles.values():
            wait_ready(p, 200, timeout=30)
        esb = ESB(vhost)
        esb.publish("customer-a", incident("INCPROBE1", priority="1"), message_id="probe-3")
        assert len(esb.take("sb.out.vendor-x", 1)) == 1
        assert "switchboard_broker_reconnects_total" in roles["intake"].metrics()
        reconnects = [l for l in roles["intake"].metrics().splitlines() if l.startswith("switchboard_broker_reconnects_total")]
        assert any(float(l.rsplit(" ", 1)[1]) >= 1 for l in reconnects), reconnects
        esb.close()
    finally:
        set_access(vhost, True)
        for p in roles.values():
            p.stop()
        next(gen, None)


def test_run_turns_ready_only_once_every_role_consumes():
    """`switchboard run`: its first 200 comes after store, intake, coordinator and worker threads are all
    consuming; before, the probe answers 503 (or nothing listens yet)."""
    gen = fresh_vhost("sb-probes-")
    vhost = next(gen)
    run = Switchboard(vhost, consumers=0)
    try:
        run.start()
        seen = []
        deadline = time.time() + 30
        while time.time() < deadline:
            status, body = run.ready()
            seen.append(status)
            if status == 200:
                break
            time.sleep(0.02)
        assert seen[-1] == 200, seen
        names = {p["name"] for p in body["parts"]}
        assert {"store", "intake", "coordinator", "worker-0", "worker-1", "admin", "admin-store"} <= names, body
        assert all(p["ready"] for p in body["parts"])
        esb = ESB(vhost)
        assert consumers(esb, "sb.in.customer-a") == 1 and consumers(esb, "sb.store") == 1
        assert all(consumers(esb, f"sb.work.{n}") == 1 for n in range(8))
        esb.close()
    finally:
        run.stop()
        next(gen, None)


def test_json_logs_are_one_object_per_line_with_the_metadata_and_no_secret():
    gen = fresh_vhost("sb-logs-")
    vhost = next(gen)
    intake = Switchboard(vhost, args=["intake"], env={"SB_LOG_FORMAT": "json"})
    try:
        intake.start()
        esb = ESB(vhost)
        esb.publish("customer-a", {"no": "ticket id"}, message_id="json-log-1")
        deadline = time.time() + 20
        while esb.depth("sb.parked") < 1 and time.time() < deadline:
            time.sleep(0.1)
        esb.close()
    finally:
        assert intake.stop() == 0
        next(gen, None)
    lines = [l for l in intake.output().splitlines() if l.strip()]
    objects = [json.loads(l) for l in lines]  # every line, stdout's status lines too, is one JSON object
    assert all({"time", "level", "message"} <= o.keys() for o in objects)
    [parked] = [o for o in objects if o["message"] == "message parked"]
    assert parked["level"] == "warning" and parked["sb.endpoint"] == "customer-a" and parked["sb.message-id"] == "json-log-1"
    assert "no ticket id" in parked["sb.reason"]
    assert any(o.get("sb.role") == "intake" and o["message"] == "consuming" for o in objects)
    assert any("metrics and health probes at" in o["message"] for o in objects)
    assert "guest:guest" not in intake.output() and "guest:***" in intake.output()


def test_management_credentials_refused_are_counted_and_named_not_waited_on():
    """A 401 from the management API (FoundationNetworking's URLSession would wait on it forever) is an error
    the metrics count and the log names, with the user and without the password."""
    gen = fresh_vhost("sb-mgmt-")
    vhost = next(gen)
    store = Switchboard(vhost, args=["store"], env={"SB_MANAGEMENT_URL": MGMT.replace("://", "://nobody:not-the-password@")})
    try:
        store.start()
        deadline = time.time() + 20
        count = 0
        while time.time() < deadline and count < 2:
            lines = [l for l in store.metrics().splitlines() if l.startswith('switchboard_queue_read_errors_total{source="management"}')]
            count = float(lines[0].rsplit(" ", 1)[1]) if lines else 0
            time.sleep(0.5)
        assert count >= 2, store.metrics()
        # The depths still come (by AMQP), the ages do not.
        assert 'switchboard_queue_messages{queue="sb.parked"}' in store.metrics()
        assert "refused user 'nobody' (401)" in store.output()
        assert "not-the-password" not in store.output()
    finally:
        store.stop()
        next(gen, None)


def metrics_url_of(p, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for line in p.output().splitlines():
            if "metrics and health probes at " in line:
                return line.split("metrics and health probes at ", 1)[1].split()[0].rstrip("/")
        time.sleep(0.1)
    raise AssertionError("no metrics URL in the output:\n" + p.output())


def test_two_roles_of_a_kind_on_one_machine_do_not_collide_and_a_taken_address_is_an_error():
    """Without metrics_listen, a second intake finds the role's default port taken and listens on a free one
    (and says so); an address set in metrics_listen that is taken stops the process with a clear error."""
    gen = fresh_vhost("sb-ports-")
    vhost = next(gen)
    first = Switchboard(vhost, args=["intake"], env={"SB_METRICS_LISTEN": ""}, consumers=0)
    second = Switchboard(vhost, args=["intake"], env={"SB_METRICS_LISTEN": ""}, consumers=0)
    try:
        first.start()
        a = metrics_url_of(first)
        second.start()
        b = metrics_url_of(second)
        assert a != b, (a, b)
        assert http_get(a + "/health/live")[0] == 200 and http_get(b + "/health/live")[0] == 200
        if a.endswith(":9462"):
            assert "port 9462 was in use" in second.output()
        taken = a.split("//", 1)[1]
        third = Switchboard(vhost, args=["intake"], env={"SB_METRICS_LISTEN": taken}, consumers=0).start()
        assert third.proc.wait(30) == 1
        assert f"metrics_listen {taken}: the address is in use" in third.output()
    finally:
        for p in (second, first):
            p.stop()
        next(gen, None)
