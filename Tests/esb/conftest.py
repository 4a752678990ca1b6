"""ESB-side tests: a real AMQP client (pika) talks to the real switchboard binary through the real broker.

Each test session gets a vhost of its own (created through the management API), so the contract's fixed
queue names never collide with a running `make run` or another session.
"""
import base64
import contextlib
import decimal
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.error
import urllib.request
import uuid

import pika
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("SB_BINARY", os.path.join(REPO, ".build", "debug", "switchboard"))
MGMT = os.environ.get("SB_TEST_MANAGEMENT_URL", "http://localhost:15672")
AMQP_HOST = os.environ.get("SB_TEST_AMQP_HOST", "localhost")
# This checkout's broker (`eval "$(Deploy/local/rabbitmq.sh env)"` sets these; Deploy/local/test.sh does):
# other ports than the standard ones when another broker held those at its first start.
AMQP_PORT = int(os.environ.get("SB_TEST_AMQP_PORT", "5672"))
AMQPS_PORT = int(os.environ.get("SB_TEST_AMQPS_PORT", "5671"))
PROMETHEUS_PORT = int(os.environ.get("SB_TEST_PROMETHEUS_PORT", "15692"))
# The local broker's CA and its server certificate for localhost (Deploy/local/rabbitmq.sh): the admin's
# HTTPS listener in the tests uses the same certificate.
TLS_DIR = os.path.dirname(os.environ.get("SB_TLS_CA_FILE", os.path.join(REPO, ".rabbitmq", "tls", "ca.pem")))


# With SB_QUEUE_TYPE=quorum (what `make test` sets; `SB_QUEUE_TYPE=classic make test` for classic queues) the
# ESB tests run in the configuration we ship: every Switchboard declares quorum queues (the variable reaches
# it), and every test vhost gets the data queues' policy of Deploy/rabbitmq/apply.sh, with RabbitMQ 4's
# default delivery limit (20) set by us.
QUORUM = os.environ.get("SB_QUEUE_TYPE") == "quorum"
PRODUCTION_POLICY = {"delivery-limit": 20, "dead-letter-exchange": "", "dead-letter-routing-key": "sb.parked",
                     "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}


def mgmt(method, path, body=None):
    req = urllib.request.Request(MGMT + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        data = r.read()
        return json.loads(data) if data else None


def fresh_vhost(prefix="sb-test-"):
    """A vhost made for the caller and deleted after it (a generator for fixtures): what is still on its
    way there (a timer due in a minute) goes with it instead of reaching another test's Switchboard."""
    name = prefix + uuid.uuid4().hex[:8]
    mgmt("PUT", f"/api/vhosts/{name}", {})
    mgmt("PUT", f"/api/permissions/{name}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    if QUORUM:
        mgmt("PUT", f"/api/policies/{name}/sb-data", {"pattern": r"^sb\.(in|out|work)\.", "apply-to": "queues", "priority": 10,
                                                     "definition": PRODUCTION_POLICY})
    yield name
    mgmt("DELETE", f"/api/vhosts/{name}")


@pytest.fixture(scope="session")
def vhost():
    yield from fresh_vhost()


def amqp_url(vhost):
    return f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"


class ESB:
    """The ESB side: publishes to sb.in, reads sb.out.<endpoint> and sb.parked."""

    def __init__(self, vhost, url=None):
        self.vhost = vhost
        self.url = url or amqp_url(vhost)
        self.connect()

    def connect(self):
        self.conn = pika.BlockingConnection(pika.URLParameters(self.url))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass

    def publish(self, endpoint, body, message_id=None, type=None, correlation_id=None, raw=False):
        data = body if raw else json.dumps(body).encode()
        props = pika.BasicProperties(
            message_id=message_id, type=type, correlation_id=correlation_id,
            content_type="application/json", delivery_mode=2)
        self.ch.basic_publish("sb.in", endpoint, data, props)

    def depth(self, queue):
        return self.ch.queue_declare(queue, passive=True).method.message_count

    def take(self, queue, count, timeout=20.0):
        """Waits for `count` messages on `queue`; returns (properties, body) pairs in arrival order."""
        got = []
        deadline = time.time() + timeout
        while len(got) < count and time.time() < deadline:
            method, props, body = self.ch.basic_get(queue, auto_ack=True)
            if method is None:
                self.conn.sleep(0.05)
                continue
            got.append((props, body))
        return got

    def drain(self, queue, quiet=1.0):
        """Everything that arrives on `queue` until it has been quiet for `quiet` seconds."""
        got = []
        last = time.time()
        while time.time() - last < quiet:
            method, props, body = self.ch.basic_get(queue, auto_ack=True)
            if method is None:
                self.conn.sleep(0.05)
                continue
            got.append((props, body))
            last = time.time()
        return got

    def purge(self, *queues):
        for q in queues:
            try:
                self.ch.queue_purge(q)
            except pika.exceptions.ChannelClosedByBroker:
                self.ch = self.conn.channel()
                self.ch.confirm_delivery()


# Every message of a ticket increments its conversation's counter `seen` and produces one outbound message.
COUNTING_RULES = """
rules:
  - name: test-count
    priority: 1000
    from: customer-a
    when: {field: $.seq, exists: true}
    stop: true
    counters: [{counter: seen, increment: 1}]
    send: [{to: vendor-x, type: update, body: {number: {field: $.number}, seq: {field: $.seq}, seen: {counter: seen}}}]
"""


# Every update of either side increments the conversation's counter `n` and sends its value to the other side.
BOTH_SIDES_RULES = """
rules:
  - name: test-both-a
    priority: 1000
    from: customer-a
    when: {field: $.seq, exists: true}
    stop: true
    counters: [{counter: n, increment: 1}]
    send: [{to: vendor-x, type: update, body: {side: a, ticket: {field: $.number}, seq: {field: $.seq}, n: {counter: n}}}]
  - name: test-both-x
    priority: 1000
    from: vendor-x
    when: {field: $.seq, exists: true}
    stop: true
    counters: [{counter: n, increment: 1}]
    send: [{to: customer-a, type: update, body: {side: x, ticket: {field: $.issue.key}, seq: {field: $.seq}, n: {counter: n}}}]
"""


def publish_sides(vhost, tickets, seqs, pause=0.0, url=None):
    """Both sides at once, each ESB on a connection of its own: customer-a's tickets TWOA<t> and vendor-x's
    TWOX-<t>, updates `seqs` in order (with BOTH_SIDES_RULES each is its own conversation). Returns the
    started threads. `url`: the broker to publish to (default: the test broker's vhost)."""
    def side(endpoint, make):
        esb = ESB(vhost, url=url)
        try:
            for seq in seqs:
                for t in range(tickets):
                    body, mid = make(t, seq)
                    esb.publish(endpoint, body, message_id=mid)
                if pause:
                    time.sleep(pause)
        finally:
            esb.close()

    def vendor(t, seq):
        body = jira(f"TWOX-{t}", None)
        body["seq"] = seq
        return body, f"twox-{t}-{seq}"

    threads = [threading.Thread(target=side, args=("customer-a", lambda t, seq: (incident(f"TWOA{t:03d}", seq=seq), f"twoa-{t}-{seq}"))),
               threading.Thread(target=side, args=("vendor-x", vendor))]
    for th in threads:
        th.start()
    return threads


def assert_each_once_in_order(messages, tickets, seqs):
    """Every ticket's updates arrived once each, in order, each applied once (its count is its position).
    A message re-sent with the same message_id (at-least-once after a broker failure) counts once."""
    per = {}
    seen_ids = set()
    for props, body in messages:
        if props.message_id in seen_ids:
            continue
        seen_ids.add(props.message_id)
        m = json.loads(body)
        per.setdefault(m["ticket"], []).append((m["seq"], m["n"]))
    assert len(per) == tickets, sorted(per)
    for ticket, got in per.items():
        assert [s for s, _ in got] == list(seqs), (ticket, got)
        assert [n for _, n in got] == [s + 1 for s in seqs], (ticket, got)


def take_unique(esb, queue, count, timeout):
    """Messages of `queue` until `count` distinct message ids have arrived (re-sent ones kept too): what a
    receiver that de-duplicates on message_id sees after a failure (docs/esb-contract.md)."""
    got, ids = [], set()
    deadline = time.time() + timeout
    while len(ids) < count and time.time() < deadline:
        batch = esb.take(queue, count - len(ids), timeout=max(0.5, min(5, deadline - time.time())))
        got += batch
        ids |= {props.message_id for props, _ in batch}
    return got


def seen_counters(store):
    """customer-a ticket id -> its conversation's counter `seen`, read from a store process's database."""
    return {ticket: int(value) for ticket, value in store.query(
        "SELECT r.ticket_id, c.value FROM counter c JOIN reference r ON r.conversation_id = c.conversation_id "
        "WHERE c.name = 'seen' AND r.endpoint = 'customer-a'")}


def assert_standby_takes_over(esb, first, standby, ticket, timeout):
    """`standby` was refused as a second exclusive consumer and waits; once `first` stops, it takes over and
    the ticket's next message goes through."""
    deadline = time.time() + 15
    while "exclusive" not in standby.output().lower() and time.time() < deadline:
        time.sleep(0.2)
    assert "exclusive" in standby.output().lower() or "access_refused" in standby.output().lower(), standby.output()
    desk = {"value": "g2", "display_value": "Service Desk"}
    esb.publish("customer-a", incident(ticket, seq=0, assignment_group=desk), message_id=f"{ticket}-0")
    assert len(esb.take("sb.out.vendor-x", 1, timeout=timeout)) == 1
    assert first.stop() == 0
    esb.publish("customer-a", incident(ticket, seq=1, assignment_group=desk), message_id=f"{ticket}-1")
    got = esb.take("sb.out.vendor-x", 1, timeout=timeout * 2)
    assert [json.loads(b)["seq"] for _, b in got] == [1]
    assert "consuming" in standby.output()


def postgres_url(schema):
    """A store_url in a schema of its own on the PostgreSQL that `make test` starts."""
    base = os.environ.get("SB_TEST_POSTGRES_URL")
    if not base:
        pytest.fail("SB_TEST_POSTGRES_URL is not set: `make test` starts a PostgreSQL and sets it")
    return f"{base}?schema={schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request):
    """Both store backends, for the tests that must hold on each: 'sqlite' or a fresh PostgreSQL schema."""
    return "sqlite" if request.param == "sqlite" else postgres_url("esb_" + uuid.uuid4().hex[:12])


CREATED_DIRS = []


def pytest_sessionfinish(session, exitstatus):
    """Temporary folders (configuration copy, data, logs) go when every test passed; kept for a look otherwise."""
    if exitstatus == 0:
        for d in CREATED_DIRS:
            shutil.rmtree(d, ignore_errors=True)


# The modules whose tests run longest (outages held on purpose, processes killed and restarted, a broker of
# their own booted), first: run in parallel (`-n 4`), the suite then ends with short tests on every worker
# instead of one long test alone at the end. The rest keep their order; each module's tests stay together.
LONGEST_FIRST = ["test_outage.py", "test_faults.py", "test_deploy.py", "test_both_sides.py", "test_end_to_end.py",
                 "test_quorum.py", "test_metrics.py"]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)), len(rank)))


HANDED_OUT_PORTS = set()


def free_port():
    """A TCP port nothing listens on now (the kernel's choice), for a process's metrics listener; never one
    handed out before in this session. (The kernel may offer a port again once it is closed: a fleet's
    worker once got its store's metrics port, exited with "the address is in use", and its start() saw
    the store's /health/ready answer on that port.)"""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in HANDED_OUT_PORTS:
            HANDED_OUT_PORTS.add(port)
            return port


def http_get(url, timeout=5):
    """(status, body text) of a GET; (None, error) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        return None, str(e)


def typed(value):
    """A header value from `switchboard parked list --json` as pika gives it: tagged bytes, decimals and
    timestamps back to their Python types."""
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        if set(value) == {"$decimal"}:
            return decimal.Decimal(value["$decimal"])
        if set(value) == {"$timestamp"}:
            return value["$timestamp"]
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return value


def parked_properties(row):
    """A stored parked message like pika's properties: its own AMQP properties as attributes (None when
    absent), `headers` a dict, and the store's fields (id, reason, stage, origin, endpoint, ticket, ...)."""
    props = typed(row["properties"])
    fields = {k: None for k in ("content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "reply_to",
                                "expiration", "timestamp", "type", "user_id", "app_id", "cluster_id")}
    fields.update({k: v for k, v in props.items() if k != "headers"})
    fields["headers"] = props.get("headers", {})
    fields.update({k: v for k, v in row.items() if k not in ("properties", "body", "body_base64")})
    return types.SimpleNamespace(**fields)


class Switchboard:
    """The real binary, `switchboard run` by default, on a copy of Config/ with a data folder of its own.
    Its metrics and probes listen on a port of its own (`metrics_url`); `start()` waits for /health/ready."""

    def __init__(self, vhost, env=None, data=None, extra_config=None, args=("run",), consumers=None, store_url=None, wrap=()):
        self.dir = tempfile.mkdtemp(prefix="sb-esb-")
        CREATED_DIRS.append(self.dir)
        self.config = os.path.join(self.dir, "Config")
        shutil.copytree(os.path.join(REPO, "Config"), self.config)
        if extra_config:
            with open(os.path.join(self.config, "zz-test.yaml"), "w") as f:
                f.write(extra_config)
        self.data = data or os.path.join(self.dir, "data")
        self.env = dict(os.environ, SB_BROKER_URL=amqp_url(vhost), SB_DATA_DIR=self.data, SB_LOG_LEVEL="info",
                        SB_ADMIN_LISTEN="127.0.0.1:0", SB_ADMIN_TLS_CERT=os.path.join(TLS_DIR, "server.pem"),
                        SB_ADMIN_TLS_KEY=os.path.join(TLS_DIR, "server.key"))
        self.env["SB_METRICS_LISTEN"] = f"127.0.0.1:{free_port()}"
        self.own_metrics_port = "SB_METRICS_LISTEN" not in (env or {})
        if MGMT != "http://localhost:15672":
            # Not where Switchboard looks by default (the broker's host, port 15672): this checkout's broker.
            self.env["SB_MANAGEMENT_URL"] = MGMT.replace("://", "://guest:guest@")
        self.env.update(env or {})
        self.metrics_url = "http://" + self.env["SB_METRICS_LISTEN"]
        self.store_url = store_url or "sqlite"
        self.env["SB_STORE_URL"] = self.store_url
        self.log_path = os.path.join(self.dir, "switchboard.log")
        self.proc = None
        self.args = list(args)
        # Run through this command first (e.g. one that puts the process in a memory cgroup, then execs).
        self.wrap = list(wrap)
        # 0: a process that will not be ready at once (a standby, the admin alone): start() does not wait.
        self.consumers = consumers

    def start(self, timeout=30):
        if self.proc is not None and self.own_metrics_port:
            # A restart listens on a new port: while this process was down, its old one may have become
            # another connection's ephemeral source port (seen: "the address is in use" after an outage).
            self.env["SB_METRICS_LISTEN"] = f"127.0.0.1:{free_port()}"
            self.metrics_url = "http://" + self.env["SB_METRICS_LISTEN"]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*self.wrap, BINARY, *self.args, "--config", self.config], env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if self.consumers == 0:
            return self
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("switchboard exited at start:\n" + self.output())
            if self.ready()[0] == 200:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"switchboard did not become ready: {self.ready()}\n" + self.output())

    def ready(self):
        """(HTTP status, parsed body) of /health/ready; (None, error text) while nothing listens."""
        status, body = http_get(self.metrics_url + "/health/ready", timeout=2)
        return status, (json.loads(body) if status else body)

    def metrics(self):
        status, body = http_get(self.metrics_url + "/metrics")
        assert status == 200, body
        return body

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def threads(self):
        """Every thread's stack (gdb), for a test that finds the process wedged: where it waits."""
        if self.proc is None or self.proc.poll() is not None or shutil.which("gdb") is None:
            return "(no stacks: the process is gone or gdb is missing)"
        r = subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-ex", "thread apply all bt 40"],
                           capture_output=True, text=True, timeout=120)
        return r.stdout

    def admin_url(self, timeout=15):
        """The web UI's URL, as the process printed it once its listener was bound."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in self.output().splitlines():
                if "web UI and API at " in line:
                    return line.split("web UI and API at ", 1)[1].strip().rstrip("/")
            time.sleep(0.1)
        raise RuntimeError("no web UI URL in the output:\n" + self.output())

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # Wedged in shutdown: say where every thread waits before killing it (pytest shows this on failure).
                print(f"switchboard {self.args} did not stop within {timeout} s of {sig!r}; its threads:\n"
                      + self.threads() + "\nits output:\n" + self.output()[-20000:], file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def timeline(self, endpoint, ticket):
        r = subprocess.run([BINARY, "timeline", endpoint, ticket, "--config", self.config], env=self.env,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def parked(self):
        """The parked messages in the store, oldest first (`switchboard parked list --json`): dicts with id,
        reason, stage, origin, endpoint, ticket, message_id, headers (as text), body (text), body_base64."""
        r = subprocess.run([BINARY, "parked", "list", "--json", "--limit", "100000", "--config", self.config], env=self.env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def take_parked(self, count, timeout=20.0):
        """Waits until the store holds at least `count` parked messages; returns the first `count` as
        (properties, body) pairs like ESB.take's: properties with message_id, headers and the store's fields."""
        deadline = time.time() + timeout
        rows = self.parked()
        while len(rows) < count and time.time() < deadline:
            time.sleep(0.2)
            rows = self.parked()
        return [(parked_properties(r), base64.b64decode(r["body_base64"])) for r in rows[:count]]

    def parked_count(self):
        """How many are parked in the store (`switchboard parked list`'s first line; no bodies read)."""
        r = subprocess.run([BINARY, "parked", "list", "--limit", "0", "--config", self.config], env=self.env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return int(r.stdout.split(" ", 1)[0])

    def db(self):
        return sqlite3.connect(os.path.join(self.data, "switchboard.sqlite"))

    def query(self, sql):
        """Rows of a query on this Switchboard's store, SQLite or PostgreSQL (through psql), as tuples of str."""
        if self.store_url == "sqlite":
            with self.db() as db:
                return [tuple(str(v) for v in row) for row in db.execute(sql).fetchall()]
        base, schema = self.store_url.split("?schema=")
        r = subprocess.run(["psql", base, "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           env=dict(os.environ, PGOPTIONS=f"-c search_path={schema}"), capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        return [tuple(line.split("\t")) for line in r.stdout.splitlines() if line]


class Fleet:
    """The same roles as separate processes: one store, one intake and two stateless worker processes
    (partitions 0-3 and 4-7, two threads each), sharing a configuration. Starts, stops and shows
    timelines like `Switchboard`; `config`, `env` and `data` are the store's."""

    def __init__(self, vhost, env=None, extra_config=None, store_url=None, data=None):
        def role(args, consumers, data=None):
            return Switchboard(vhost, env=env, extra_config=extra_config, args=args, consumers=consumers,
                               store_url=store_url, data=data)
        self.store = role(["store"], 1, data)
        self.intake = role(["intake"], 1)
        self.workers = [role(["worker", "--partitions", p], 2) for p in ("0-3", "4-7")]
        self.config, self.env, self.data = self.store.config, self.store.env, self.store.data

    def start(self):
        for p in (self.store, self.intake, *self.workers):
            p.start()
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        codes = [p.stop(sig, timeout) for p in (*self.workers, self.intake, self.store)]
        return next((c for c in codes if c != 0), 0)

    def timeline(self, endpoint, ticket):
        return self.store.timeline(endpoint, ticket)

    def parked(self):
        return self.store.parked()

    def take_parked(self, count, timeout=20.0):
        return self.store.take_parked(count, timeout)

    def parked_count(self):
        return self.store.parked_count()

    def query(self, sql):
        return self.store.query(sql)

    def output(self):
        return "\n".join(p.output() for p in (self.store, self.intake, *self.workers))


def start_shape(vhost, shape, **kwargs):
    """`run` (every role in one process) or `fleet` (store, intake, two worker processes)."""
    return (Switchboard(vhost, **kwargs) if shape == "run" else Fleet(vhost, **kwargs)).start()


@pytest.fixture
def esb(vhost):
    e = ESB(vhost)
    # sb.work.* too: what a failed test left unprocessed there would reach the next test's outbound queues.
    e.purge("sb.parked", "sb.out.vendor-x", "sb.out.customer-a", "sb.in.customer-a", "sb.in.vendor-x",
            *(f"sb.work.{p}" for p in range(8)))
    yield e
    e.close()


@pytest.fixture
def switchboard(vhost, esb):
    sb = Switchboard(vhost).start()
    yield sb
    rc = sb.stop()
    if rc != 0:
        sys.stderr.write(sb.output())


def incident(number, **fields):
    body = {
        "number": number, "sys_id": uuid.uuid4().hex, "short_description": "SAP down", "description": "Nothing works",
        "priority": "2", "state": "2",
        "assignment_group": {"value": "g-sap", "display_value": "SAP Support"},
        "sys_updated_by": "alice",
    }
    body.update(fields)
    return body


def jira(key, customer_ref, event="jira:issue_updated", status="In Progress", user="Bob Vendor"):
    return {
        "webhookEvent": event, "user": {"displayName": user},
        "issue": {"key": key, "fields": {"summary": "SAP down", "description": "x", "priority": {"name": "High"},
                                         "status": {"name": status}, "customfield_10400": customer_ref}},
    }


def take_ticket(esb, number, timeout=20.0):
    """The next message to vendor-x for ticket `number`, passing over other tickets' (a previous test's flow
    ends with a LOCKED error ack, whose rule resends that ticket's update a second later, after the queue
    was purged for the next test)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for props, body in esb.take("sb.out.vendor-x", 1, timeout=max(0.1, deadline - time.time())):
            if json.loads(body).get("customer_reference") == number:
                return [(props, body)]
    return []


def flow(esb, number, key):
    """A ticket from A's local desk to SAP Support (created at X, acked with X's key), then an update that X
    refuses as locked. Returns the create's and the update's outbound message ids."""
    local = {"value": "g-local", "display_value": "Local Service Desk"}
    esb.publish("customer-a", incident(number, assignment_group=local, sys_updated_by="alice"), message_id=f"{number}-1")
    esb.publish("customer-a", incident(number, sys_updated_by="alice"), message_id=f"{number}-2")
    [(create, _)] = take_ticket(esb, number)
    assert create.type == "create"
    esb.publish("vendor-x", {"status": "ok", "key": key}, type="ack", correlation_id=create.message_id, message_id=f"{key}-ack-1")
    time.sleep(0.3)
    esb.publish("customer-a", incident(number, priority="1", sys_updated_by="bob"), message_id=f"{number}-3")
    [(update, _)] = take_ticket(esb, number)
    assert update.type == "update"
    esb.publish("vendor-x", {"status": "error", "code": "LOCKED", "message": "open in another session"}, type="ack",
                correlation_id=update.message_id, message_id=f"{key}-ack-2")
    return create.message_id, update.message_id


def rabbitmqctl(*args):
    return subprocess.run(["bash", os.path.join(REPO, "Deploy/local/rabbitmq.sh"), "ctl", *args],
                          capture_output=True, text=True, timeout=120)


def broker_log_lines_since(offset):
    """The local broker's log from byte `offset` on (its size now, when `offset` is None)."""
    path = os.environ.get("SB_TEST_RABBITMQ_LOG", os.path.join(REPO, ".rabbitmq", "log", "switchboard@localhost.log"))
    assert os.path.exists(path), f"the local broker's log is not at {path}"
    if offset is None:
        return os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace").splitlines()


def rabbitmqctl_ok():
    return rabbitmqctl("status").returncode == 0


@contextlib.contextmanager
def memory_alarm():
    """The local broker's memory alarm: raised (a watermark below what the node uses), then cleared (the
    default watermark, 0.4) whatever happens inside."""
    assert rabbitmqctl("set_vm_memory_high_watermark", "0.0000001").returncode == 0
    try:
        yield
    finally:
        assert rabbitmqctl("set_vm_memory_high_watermark", "0.4").returncode == 0
