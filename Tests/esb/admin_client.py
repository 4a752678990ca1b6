"""An HTTPS client for the admin's web UI and API: verifies the local CA, keeps cookies, never follows
redirects (the tests look at them)."""
import hashlib
import http.cookiejar
import json
import os
import re
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from conftest import BINARY, TLS_DIR


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self):
        return self.body.decode(errors="replace")

    def json(self):
        return json.loads(self.body)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Admin:
    def __init__(self, base, token=None):
        self.base = base
        self.token = token
        self.jar = http.cookiejar.CookieJar()
        self.context = ssl.create_default_context(cafile=os.path.join(TLS_DIR, "ca.pem"))
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.context), urllib.request.HTTPCookieProcessor(self.jar), NoRedirect())
        self.csrf = None

    def request(self, method, path, body=None, form=None, headers=None):
        data = None
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if form is not None:
            data = urllib.parse.urlencode(form, doseq=True).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with self.opener.open(req, timeout=30) as r:
                return Answer(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Answer(e.code, e.headers, e.read())

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def sign_in(self, user, password, next="/", headers=None):
        """Signs in as a browser does: the sign-in page first (its form token and cookie), then the form."""
        page = self.get("/sign-in", headers=headers)
        m = re.search(r'name="signin_csrf" value="([0-9a-f]+)"', page.text)
        form = {"user": user, "password": password, "next": next, "signin_csrf": m.group(1) if m else ""}
        a = self.post("/sign-in", form=form, headers=headers)
        if a.status == 303:
            page = self.get("/", headers=headers)
            m = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
            self.csrf = m.group(1) if m else None
        return a


class Secrets:
    """Passwords and tokens for one test session, and the environment that configures them."""

    def __init__(self):
        self.admin_password = secrets.token_urlsafe(12)
        self.viewer_password = secrets.token_urlsafe(12)
        self.viewer_token = "sbt_" + secrets.token_hex(16)
        self.operator_token = "sbt_" + secrets.token_hex(16)

        def bcrypt(password):
            r = subprocess.run([BINARY, "admin", "hash-password", "--cost", "4"], input=password + "\n",
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
            return r.stdout.strip()

        self.admin_hash = bcrypt(self.admin_password)
        self.viewer_hash = bcrypt(self.viewer_password)
        self.env = {
            "SB_ADMIN_PASSWORD_HASH": self.admin_hash, "SB_VIEWER_PASSWORD_HASH": self.viewer_hash,
            "SB_API_TOKEN_SHA256": hashlib.sha256(self.viewer_token.encode()).hexdigest(),
            "SB_OPS_TOKEN_SHA256": hashlib.sha256(self.operator_token.encode()).hexdigest(),
        }

    def all(self):
        return [self.admin_password, self.viewer_password, self.viewer_token, self.operator_token, self.admin_hash,
                self.viewer_hash, *self.env.values()]


def wait_job(api, job_id, timeout=60):
    """A replay or discard job of the parked messages, once it is no longer running."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = api.get(f"/api/v1/parked/actions/{job_id}").json()
        if job["state"] != "running":
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still running: {job}")
