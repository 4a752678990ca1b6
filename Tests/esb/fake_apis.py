"""Fake ticket APIs for the REST delivery tests (issue 26): real HTTP servers on loopback that answer like
Jira Cloud's REST API v3, with faults a test switches on (per-issue and endpoint-wide 429s, down), and the
polling helper those tests share."""
import base64
import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import ESB, Switchboard, free_port, fresh_vhost


def wait(what, timeout=30):
    """`what()` once it is truthy, polled every 0.2 s; its last value after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    return what()


def rest_hub(prefix, fake, env, extra_config):
    """A module's Switchboard (`run`, its own vhost) delivering to `fake`: yields (switchboard, fake, esb);
    everything stopped and the vhost removed after."""
    gen = fresh_vhost(prefix)
    vhost = next(gen)
    sb = Switchboard(vhost, env=env, extra_config=extra_config).start()
    esb = ESB(vhost)
    yield sb, fake, esb
    esb.close()
    sb.stop()
    fake.stop()
    next(gen, None)


class JSONHandler(BaseHTTPRequestHandler):
    """What the fakes' request handlers share: quiet, and JSON answers."""

    def log_message(self, *args):
        pass

    def send_json(self, code, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def drop(self):
        """The connection closed with no answer (the request was taken)."""
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class FakeJira:
    """Jira Cloud's issue API: create (201 {id, key}), edit (PUT, 204), comment (201 {id, body}: ids unique
    across issues, as Jira's are), bearer auth.
    `limited[key] = n`: the next n writes to that issue answer 429 with RateLimit-Reason
    jira-per-issue-on-write; `endpoint_limited = n`: the next n requests answer 429 for everyone;
    `reset_creates = n`: the next n creates are made and then the connection is dropped unanswered. Issues
    are found by label with `GET /rest/api/3/search/jql?jql=labels = "<label>"`. Each issue starts in "To
    Do"; `WORKFLOW` says which transitions lead where (`GET`/`POST …/transitions`; 400 for one not offered).
    `requests` holds (monotonic time, method, path, body, code answered)."""

    WORKFLOW = {"11": ("Start progress", "In Progress"), "21": ("Resolve", "Done"), "31": ("Reopen", "To Do")}

    def __init__(self, token, retry_after="2", port=None, oauth=None, tls=None):
        """`oauth`: (client id, secret) of an OAuth 2.0 client-credentials token endpoint at /oauth/token; each
        token it issues replaces `token` (the one bearer token the API takes). `tls`: (certificate, key, CA) to
        serve HTTPS and require a client certificate signed by that CA; `client_subjects` lists their CNs."""
        self.tls, self.client_subjects = tls, []
        self.token, self.retry_after, self.oauth, self.tokens_issued = token, retry_after, oauth, 0
        self.issues, self.requests, self.limited, self.endpoint_limited, self.reset_creates = {}, [], {}, 0, 0
        self.comments_made = 0
        # Harness hooks: `fault(method, key)` may answer a write instead ((code, body, headers) or None);
        # `on_write(kind, key, body, answer)` hears of every write made (as the tool's webhook would).
        self.fault, self.on_write, self.basic = None, None, None
        self.lock = threading.Lock()
        self.port = port or free_port()
        self.server = None
        self.start()

    def start(self):
        fake = self

        class Handler(JSONHandler):
            def answer(self, code, body=None, headers=None, logged=None):
                if logged is not None:
                    with fake.lock:
                        fake.requests.append(logged + (code,))
                self.send_json(code, body, headers)

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw and self.headers.get("Content-Type", "").startswith("application/json") else None
                if self.command == "POST" and self.path == "/oauth/token" and fake.oauth:
                    form = urllib.parse.parse_qs(raw.decode())
                    expected = "Basic " + base64.b64encode(f"{fake.oauth[0]}:{fake.oauth[1]}".encode()).decode()
                    logged = (time.monotonic(), "TOKEN", self.path, form)
                    if self.headers.get("Authorization") != expected or form.get("grant_type") != ["client_credentials"]:
                        return self.answer(401, {"error": "invalid_client"}, logged=logged)
                    with fake.lock:
                        fake.tokens_issued += 1
                        fake.token = f"tok-{fake.tokens_issued}-{uuid.uuid4().hex}"
                        token = fake.token
                    return self.answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}, logged=logged)
                seen = (time.monotonic(), self.command, self.path, body)
                if fake.tls:
                    subject = dict(x[0] for x in self.connection.getpeercert()["subject"])
                    with fake.lock:
                        fake.client_subjects.append(subject.get("commonName"))
                basic = fake.basic and "Basic " + base64.b64encode(f"{fake.basic[0]}:{fake.basic[1]}".encode()).decode()
                if self.headers.get("Authorization") not in (f"Bearer {fake.token}", basic):
                    return self.answer(401, {"errorMessages": ["You are not authenticated."]}, logged=seen)
                url = urllib.parse.urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                if self.command == "GET" and parts == ["rest", "api", "3", "search", "jql"]:
                    jql = urllib.parse.parse_qs(url.query).get("jql", [""])[0]
                    label = jql.split('"')[1] if jql.startswith("labels = ") and jql.count('"') == 2 else None
                    with fake.lock:
                        found = [{"id": "1", "key": k} for k, i in fake.issues.items() if label in i["fields"].get("labels", [])]
                    return self.answer(200, {"issues": found[:1]}, logged=seen)
                if parts[:4] != ["rest", "api", "3", "issue"]:
                    return self.answer(404, {"errorMessages": ["Not found"]}, logged=seen)
                with fake.lock:
                    if fake.endpoint_limited > 0:
                        fake.endpoint_limited -= 1
                        limited = True
                    else:
                        limited = False
                if limited:
                    return self.answer(429, {"errorMessages": ["Rate limit exceeded."]}, {"Retry-After": fake.retry_after}, logged=seen)
                if fake.fault and self.command in ("POST", "PUT"):
                    injected = fake.fault(self.command, parts[4] if len(parts) > 4 else None)
                    if injected:
                        return self.answer(*injected, logged=seen)
                kind = None
                with fake.lock:
                    if self.command == "POST" and len(parts) == 4:
                        key = f"VX-{len(fake.issues) + 1}"
                        fake.issues[key] = {"fields": body["fields"], "comments": [], "status": "To Do"}
                        answer = (201, {"id": str(10000 + len(fake.issues)), "key": key, "self": "x"}, None)
                        kind = "create"
                        if fake.reset_creates > 0:
                            fake.reset_creates -= 1
                            fake.requests.append(seen + (0,))
                            if fake.on_write:
                                fake.on_write(kind, key, body, answer[1])
                            return self.drop()
                    else:
                        key = parts[4] if len(parts) > 4 else None
                        if key not in fake.issues:
                            answer = (404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}, None)
                        elif fake.limited.get(key, 0) > 0:
                            fake.limited[key] -= 1
                            answer = (429, {"errorMessages": ["Rate limit exceeded."]},
                                      {"Retry-After": fake.retry_after, "RateLimit-Reason": "jira-per-issue-on-write"})
                        elif parts[5:] == ["transitions"]:
                            issue = fake.issues[key]
                            offered = {i: t for i, t in FakeJira.WORKFLOW.items() if t[1] != issue["status"]}
                            if self.command == "GET":
                                answer = (200, {"transitions": [{"id": i, "name": n, "to": {"name": to}} for i, (n, to) in offered.items()]}, None)
                            elif (body or {}).get("transition", {}).get("id") in offered:
                                issue["status"] = offered[body["transition"]["id"]][1]
                                answer = (204, None, None)
                                kind = "transition"
                            else:
                                answer = (400, {"errorMessages": ["Transition id is not valid for this issue."]}, None)
                        elif self.command == "GET" and len(parts) == 5:
                            answer = (200, {"key": key, "fields": {"status": {"name": fake.issues[key]["status"]}}}, None)
                        elif self.command == "PUT" and len(parts) == 5:
                            fake.issues[key]["fields"].update(body["fields"])
                            answer = (204, None, None)
                            kind = "edit"
                        elif self.command == "POST" and parts[5:] == ["comment"]:
                            fake.issues[key]["comments"].append(body["body"])
                            fake.comments_made += 1
                            answer = (201, {"id": str(10000 + fake.comments_made), "body": body["body"]}, None)
                            kind = "comment"
                        else:
                            answer = (405, {"errorMessages": ["Method not allowed"]}, None)
                done = self.answer(*answer, logged=seen)
                if kind and fake.on_write:
                    fake.on_write(kind, key, body, answer[1])
                return done

            do_GET = do_POST = do_PUT = handle_one

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls[0], self.tls[1])
            context.load_verify_locations(self.tls[2])
            context.verify_mode = ssl.CERT_REQUIRED
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def writes(self, key):
        """(time, method, body, code) of every write to one issue, in the order they arrived."""
        with self.lock:
            return [(t, m, b, c) for (t, m, p, b, c) in self.requests if urllib.parse.urlsplit(p).path.strip("/").split("/")[4:5] == [key]]

    def key_of(self, summary):
        with self.lock:
            return next((k for k, i in self.issues.items() if i["fields"].get("summary") == summary), None)


class FakeServiceNow:
    """ServiceNow's Table API of one table: POST creates (201, result.sys_id), PATCH updates (200), GET queries
    by `sysparm_query=<field>=<value>`, 403 from a business rule while a record is locked, 401 without Basic
    credentials of `user` and `password`. Records every request."""

    def __init__(self, password, user="sb-integration"):
        self.records, self.requests, self.locked = {}, [], {}
        # Harness hooks, as FakeJira's: `fault(method, sys_id)`, `on_write(kind, record)`; `patched` lists
        # (sys_id, body) of every update made.
        self.fault, self.on_write, self.patched = None, None, []
        # Creates to make and then answer with a dropped connection (the outcome unknown to the sender).
        self.reset_creates = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(JSONHandler):
            def answer(self, code, body):
                self.send_json(code, body)

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                with fake.lock:
                    fake.requests.append((self.command, self.path, self.headers.get("Authorization"), body))
                expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self.answer(401, {"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}})
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:4] != ["api", "now", "table", "incident"]:
                    return self.answer(404, {"error": {"message": "Invalid table"}})
                if fake.fault and self.command in ("POST", "PATCH"):
                    injected = fake.fault(self.command, parts[4] if len(parts) > 4 else None)
                    if injected:
                        return self.send_json(*injected)
                made = self.table(parts, body)
                if made and fake.on_write:
                    fake.on_write(*made)

            def table(self, parts, body):
                """The Table API's answer; what was written, (kind, record copy), or None."""
                with fake.lock:
                    if self.command == "GET" and len(parts) == 4:
                        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("sysparm_query", [""])[0]
                        field, _, value = query.partition("=")
                        rows = [{"sys_id": r["sys_id"]} for r in fake.records.values() if field and str(r.get(field)) == value]
                        self.answer(200, {"result": rows[:1]})
                        return None
                    if self.command == "POST" and len(parts) == 4:
                        sys_id = uuid.uuid4().hex
                        fake.records[sys_id] = dict(body, sys_id=sys_id, number=f"INC{len(fake.records) + 1:07d}")
                        if fake.reset_creates > 0:
                            fake.reset_creates -= 1
                            self.drop()
                        else:
                            self.answer(201, {"result": fake.records[sys_id]})
                        return ("insert", dict(fake.records[sys_id]))
                    if self.command == "PATCH" and len(parts) == 5 and parts[4] in fake.records:
                        sys_id = parts[4]
                        if fake.locked.get(sys_id, 0) > 0:
                            fake.locked[sys_id] -= 1
                            self.answer(403, {"error": {
                                "message": "Operation against file 'incident' was aborted by Business Rule 'Ticket locked^" + sys_id + "'.",
                                "detail": "Operation against file 'incident' was aborted by Business Rule"}, "status": "failure"})
                            return None
                        fake.records[sys_id].update(body)
                        fake.patched.append((sys_id, body))
                        self.answer(200, {"result": fake.records[sys_id]})
                        return ("update", dict(fake.records[sys_id]))
                self.answer(404, {"error": {"message": "No Record found"}})
                return None

            do_GET = do_POST = do_PATCH = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def patches(self, sys_id):
        with self.lock:
            return [b for (m, p, _, b) in self.requests if m == "PATCH" and p.endswith("/" + sys_id)]

    def stop(self):
        self.server.shutdown()


def make_pki(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (CN switchboard-client), made
    with openssl in `directory`; their paths by name."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=sb-test-ca")
    for name, cn, ext in (("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1"), ("client", "switchboard-client", "extendedKeyUsage=clientAuth")):
        with open(f"{directory}/{name}.ext", "w") as f:
            f.write(ext + "\n")
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{name}.pem",
            "-days", "2", "-extfile", f"{name}.ext")
    return {n: f"{directory}/{n}" for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


class FakeTicketAPI:
    """A generic REST ticket API (the generic-rest profile): `POST /tickets` (201 {id}), `PATCH /tickets/<id>`
    (200), `GET /tickets?external_id=<value>` (200, a list of matches), bearer auth. `reset_creates = n`: the
    next n creates are made and then the connection is dropped unanswered. `requests` holds (method, path,
    body, code answered)."""

    def __init__(self, token):
        self.token, self.tickets, self.requests, self.reset_creates = token, {}, [], 0
        self.lock = threading.Lock()
        fake = self

        class Handler(JSONHandler):
            def answer(self, code, body, seen):
                with fake.lock:
                    fake.requests.append(seen + (code,))
                self.send_json(code, body)

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                seen = (self.command, self.path, body)
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self.answer(401, {"error": "unauthenticated"}, seen)
                url = urllib.parse.urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                with fake.lock:
                    if parts == ["tickets"] and self.command == "GET":
                        wanted = urllib.parse.parse_qs(url.query).get("external_id", [None])[0]
                        found = [{"id": i, "external_id": t.get("external_id")} for i, t in fake.tickets.items() if t.get("external_id") == wanted]
                        answer = (200, found)
                    elif parts == ["tickets"] and self.command == "POST":
                        ticket_id = f"T-{len(fake.tickets) + 1}"
                        fake.tickets[ticket_id] = dict(body)
                        if fake.reset_creates > 0:
                            fake.reset_creates -= 1
                            fake.requests.append(seen + (0,))
                            return self.drop()
                        answer = (201, {"id": ticket_id})
                    elif len(parts) == 2 and parts[0] == "tickets" and parts[1] in fake.tickets and self.command == "PATCH":
                        fake.tickets[parts[1]].update(body or {})
                        answer = (200, {"id": parts[1]})
                    else:
                        answer = (404, {"error": "not found"})
                return self.answer(*answer, seen)

            do_GET = do_POST = do_PATCH = handle_one

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method, path_prefix):
        with self.lock:
            return [r for r in self.requests if r[0] == method and r[1].startswith(path_prefix)]
