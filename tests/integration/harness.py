"""tests/integration/harness.py: a tiny test framework for the integration
tests (Python 3 standard library only).

A test is a function in a tests/integration/test_*.py module, either named
test_* or decorated with @test.  It passes when it returns and fails when it
raises (use check()/eq() or plain assert).  tests/integration/run.py finds and
runs them against the stack that tests/run-all.sh started:

    DP_TEST_URL   base URL of the stack (default http://127.0.0.1:18000)
    DP_TEST_VAR   its var directory (default <checkout>/var/test): the config
                  devpocket.conf, mail/, log/ are read from there

Helpers:
    http(method, path, body=None, headers=None, raw=None) -> Response
        Response unpacks as (status, headers, body, json); headers is
        case-insensitive; json is the parsed body or None.
        body: a dict/list/str/int... sent as JSON with Content-Type
        application/json; raw: bytes sent as they are (no Content-Type
        unless given).  A header given as None is not sent.  The path is
        sent byte for byte ("//", "%00", "..", ... are not normalised).
    register_user(**fields) -> dict with username, email, password,
        access_token, refresh_token, user, id, headers (Authorization)
    login(identifier, password) -> Response
    bearer(token) -> {"Authorization": "Bearer <token>"}
    admin() -> a registered user promoted to plan admin with devpocketctl
    ctl(*args, check=True, input=None) -> subprocess.CompletedProcess
    read_mail(to, timeout=10, since=None, subject=None) -> Mail, the newest
        message for `to` (a str: the message text; .subject, .body, .msg)
    mail_mark() -> value for read_mail(since=...): only later messages
    sql(query, *params) -> rows (lists of str) from the test database
    unique(prefix) -> a fresh identifier-safe string
    check(cond, msg), eq(got, want, what), fail(msg)

Every test runs with its own fake client address (X-Forwarded-For from
127.0.0.1, which [web] trusted_proxies trusts by default), so the per-IP rate
limits count each test on its own.  new_client_ip() picks a fresh one inside
a test; pass headers={"X-Forwarded-For": None} to send none.
"""

import email
import email.policy
import email.utils
import http.client as _httpclient
import itertools
import json as _json
import os
import subprocess
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BASE_URL = os.environ.get("DP_TEST_URL", "http://127.0.0.1:18000").rstrip("/")
VAR = os.environ.get("DP_TEST_VAR", os.path.join(ROOT, "var", "test"))
CONF = os.path.join(VAR, "devpocket.conf")
MAIL_DIR = os.path.join(VAR, "mail")
LOG_DIR = os.path.join(VAR, "log")
TIMEOUT = float(os.environ.get("DP_TEST_TIMEOUT", "30"))

# Tests registered with @test, in definition order: (module, name, function).
REGISTRY = []


def test(fn):
    """Marks fn as a test (any name); returns it unchanged."""
    REGISTRY.append((fn.__module__, fn.__name__, fn))
    fn._dp_test = True
    return fn


class TestFailure(AssertionError):
    pass


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg="check failed"):
    if not cond:
        raise TestFailure(msg)


def _short(v, n=300):
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


def eq(got, want, what="value"):
    if got != want:
        raise TestFailure("%s: got %s, want %s" % (what, _short(got),
                                                   _short(want)))


# ------------------------------------------------------------------ HTTP

class Headers:
    """Case-insensitive response headers; repeated ones joined by ", "
    (all() gives each value)."""

    def __init__(self, pairs):
        self._pairs = list(pairs)
        self._map = {}
        for k, v in self._pairs:
            lk = k.lower()
            self._map[lk] = self._map[lk] + ", " + v if lk in self._map else v

    def get(self, key, default=None):
        return self._map.get(key.lower(), default)

    def __getitem__(self, key):
        return self._map[key.lower()]

    def __contains__(self, key):
        return key.lower() in self._map

    def __iter__(self):
        """The header names, lowercased (as the keys of a dict)."""
        return iter(self._map)

    def __len__(self):
        return len(self._map)

    def keys(self):
        return list(self._map)

    def all(self, key):
        return [v for k, v in self._pairs if k.lower() == key.lower()]

    def items(self):
        return list(self._pairs)

    def __repr__(self):
        return "Headers(%r)" % (self._pairs,)


class Response(tuple):
    """(status, headers, body, json) with the same names as attributes."""

    def __new__(cls, status, headers, body, js):
        return super().__new__(cls, (status, headers, body, js))

    status = property(lambda self: self[0])
    headers = property(lambda self: self[1])
    body = property(lambda self: self[2])
    json = property(lambda self: self[3])

    def __repr__(self):
        return "<Response %d %s>" % (self.status, _short(self.body, 200))


_ip_counter = itertools.count(1)
_client_ip = None


def new_client_ip():
    """A fresh fake client address (198.18.0.0/15, the benchmark range)
    for X-Forwarded-For; returns it."""
    global _client_ip
    n = next(_ip_counter) + (os.getpid() % 64) * 2048
    _client_ip = "198.%d.%d.%d" % (18 + (n >> 16) % 2, (n >> 8) % 256,
                                   n % 256 or 1)
    return _client_ip


def http(method, path, body=None, headers=None, raw=None, timeout=None):
    """One request on a fresh connection; see the module comment."""
    u = urllib.parse.urlsplit(BASE_URL)
    conn = _httpclient.HTTPConnection(u.hostname, u.port or 80,
                                      timeout=timeout or TIMEOUT)
    hdrs = {}
    if _client_ip is not None:
        hdrs["X-Forwarded-For"] = _client_ip
    data = None
    if raw is not None:
        data = raw if isinstance(raw, bytes) else raw.encode()
    elif body is not None:
        data = _json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    for k, v in (headers or {}).items():
        for old in [h for h in hdrs if h.lower() == k.lower()]:
            del hdrs[old]
        if v is not None:
            hdrs[k] = v
    try:
        # skip_host/skip_accept_encoding: send exactly what we were given.
        conn.putrequest(method, path, skip_host=True,
                        skip_accept_encoding=True)
        if not any(k.lower() == "host" for k in hdrs):
            conn.putheader("Host", u.netloc)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        # Real clients send Content-Length: 0 on a bodiless POST/PUT/PATCH
        # (lighttpd answers 411 without it).
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""
        if data is not None and not any(k.lower() == "content-length"
                                        for k in hdrs):
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        r = conn.getresponse()
        payload = r.read()
        status = r.status
        hd = Headers(r.getheaders())
    finally:
        conn.close()
    js = None
    ctype = hd.get("Content-Type", "")
    if payload and ctype.startswith("application/json"):
        try:
            js = _json.loads(payload)
        except ValueError:
            js = None
    return Response(status, hd, payload, js)


def get(path, **kw):
    return http("GET", path, **kw)


def post(path, body=None, **kw):
    return http("POST", path, body=body, **kw)


def bearer(token):
    return {"Authorization": "Bearer " + token}


def expect(resp, status, what=None):
    """Fails unless resp has the given status; returns resp."""
    if resp.status != status:
        fail("%s: status %d, want %d; body %s" % (
            what or "response", resp.status, status, _short(resp.body, 400)))
    return resp


# ----------------------------------------------------------------- users

_uniq = itertools.count(1)


def unique(prefix="u"):
    """A string unique to this run: prefix + pid + counter + time, within
    [A-Za-z0-9_-] and at most 30 characters for prefixes up to 8."""
    s = "%s%x%x%x" % (prefix, os.getpid() % 4096, next(_uniq),
                      int(time.time() * 1000) % 0xfffff)
    return s[:30]


def register_user(username=None, email=None, password=None, **extra):
    """Registers a fresh user (POST /api/v1/auth/register, expects 201)
    and returns a dict: username, email, password, id, user,
    access_token, refresh_token, headers (Authorization), response."""
    username = username or unique("u")
    email = email or (username.lower() + "@example.com")
    password = password or "Passw0rd-" + unique("p")
    body = {"username": username, "email": email, "password": password}
    body.update(extra)
    r = http("POST", "/api/v1/auth/register", body=body)
    expect(r, 201, "register %s" % username)
    js = r.json or {}
    user = js.get("user") or {}
    return {
        "username": username,
        "email": email,
        "password": password,
        "id": user.get("id") or js.get("id"),
        "user": user,
        "access_token": js.get("access_token"),
        "refresh_token": js.get("refresh_token"),
        "headers": bearer(js.get("access_token") or ""),
        "response": r,
    }


def login(identifier, password, **kw):
    return http("POST", "/api/v1/auth/login",
                body={"username_or_email": identifier, "password": password},
                **kw)


def admin():
    """A fresh admin: created with devpocketctl (plan admin, verified),
    then logged in.  Same dict as register_user()."""
    username = unique("adm")
    email = username.lower() + "@example.com"
    password = "Adm1n-" + unique("p")
    ctl("user", "create", "--username", username, "--email", email,
        "--password", password, "--plan", "admin", "--verified")
    r = expect(login(username, password), 200, "admin login")
    js = r.json or {}
    user = js.get("user") or {}
    return {
        "username": username, "email": email, "password": password,
        "id": user.get("id"), "user": user,
        "access_token": js.get("access_token"),
        "refresh_token": js.get("refresh_token"),
        "headers": bearer(js.get("access_token") or ""), "response": r,
    }


# ------------------------------------------------------------ devpocketctl

def ctl(*args, check=True, input=None, timeout=60):
    """Runs bin/devpocketctl --config <test config> args...; returns the
    CompletedProcess (text).  With check, a non-zero exit fails the test."""
    env = dict(os.environ)
    env["DEVPOCKET_WEB_DATA_DIR"] = ROOT
    cmd = [os.path.join(ROOT, "bin", "devpocketctl"), "--config", CONF]
    cmd += [str(a) for a in args]
    p = subprocess.run(cmd, input=input, capture_output=True, text=True,
                       env=env, timeout=timeout)
    if check and p.returncode != 0:
        fail("devpocketctl %s: exit %d: %s" % (
            " ".join(cmd[3:]), p.returncode, (p.stderr or p.stdout)[-500:]))
    return p


# ------------------------------------------------------------------ mail

class Mail(str):
    """One delivered message.  As a str it is the whole message text (CRLF
    line ends, as delivered), so `"Subject: ..." in mail` and re.search()
    work; attributes: path, raw (bytes), msg (email.message.EmailMessage),
    to, subject (decoded), body (decoded text)."""

    def __new__(cls, path):
        with open(path, "rb") as f:
            raw = f.read()
        self = super().__new__(cls, raw.decode("utf-8", "replace"))
        self.path = path
        self.raw = raw
        self.msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.to = str(self.msg.get("To", ""))
        self.subject = str(self.msg.get("Subject", ""))
        try:
            part = self.msg.get_body(preferencelist=("plain",)) or self.msg
            self.body = part.get_content()
        except (KeyError, LookupError, ValueError, AttributeError):
            self.body = str(self)
        return self

    def __repr__(self):
        return "<Mail to=%r subject=%r>" % (self.to, self.subject)


def _mail_files():
    try:
        names = os.listdir(MAIL_DIR)
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        if not n.endswith(".eml"):
            continue
        p = os.path.join(MAIL_DIR, n)
        try:
            out.append((os.stat(p).st_mtime_ns, n, p))
        except FileNotFoundError:
            pass
    out.sort()
    return out


def mail_mark():
    """The set of messages delivered so far (for read_mail(since=))."""
    return {n for _, n, _ in _mail_files()}


def _addr_matches(to_header, addr):
    addr = addr.lower()
    for _, a in email.utils.getaddresses([to_header]):
        if a.lower() == addr:
            return True
    return False


def _matching(to, since, subject):
    """Messages for `to` (newest first), filtered by since and subject."""
    out = []
    for _, n, p in reversed(_mail_files()):
        if since is not None and n in since:
            continue
        try:
            m = Mail(p)
        except FileNotFoundError:
            continue
        if not _addr_matches(m.to, to):
            continue
        if subject is not None and subject not in m.subject:
            continue
        out.append(m)
    return out


def read_mail(to, timeout=10, since=None, subject=None):
    """The newest message addressed to `to` (a Mail, usable as the message
    text), waiting up to timeout seconds: the worker delivers
    asynchronously.  since: a mail_mark() value, only messages delivered
    after it count; subject: only messages whose decoded Subject contains
    it.  Fails the test on timeout."""
    deadline = time.time() + timeout
    while True:
        found = _matching(to, since, subject)
        if found:
            return found[0]
        if time.time() >= deadline:
            fail("no mail for %s%s in %s within %gs" % (
                to, "" if subject is None else " (subject %r)" % subject,
                MAIL_DIR, timeout))
        time.sleep(0.1)


def mails_for(to, since=None, subject=None):
    """Every message for `to` delivered so far (oldest first), no waiting."""
    return list(reversed(_matching(to, since, subject)))


# -------------------------------------------------------------- database

PG_SOCK = os.path.join(VAR, "pg", "sock")


def _psql():
    for v in ("15", "16", "17", "14", "13"):
        p = "/usr/lib/postgresql/%s/bin/psql" % v
        if os.access(p, os.X_OK):
            return p
    return "psql"


def sql(query, *params):
    """Runs one SQL statement as the devpocket role on the test database
    and returns the rows as lists of strings in psql's text form ("t"/"f"
    for booleans, "" for NULL); [] when it returns none.  params are
    psql variables: sql("SELECT ... WHERE id = :'p1'", uid) quotes uid
    safely as p1.  Fails the test on an SQL error."""
    cmd = [_psql(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
           "-F", "\x1f", "-R", "\x1e", "-h", PG_SOCK, "-U", "devpocket",
           "-d", "devpocket"]
    for i, v in enumerate(params, 1):
        cmd += ["-v", "p%d=%s" % (i, v)]
    p = subprocess.run(cmd, input=query, capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        fail("sql %r: %s" % (query[:200], p.stderr.strip()[-500:]))
    out = p.stdout
    if out.endswith("\n"):
        out = out[:-1]
    if out == "":
        return []
    return [r.split("\x1f") for r in out.split("\x1e")]


def log_tail(name, lines=20):
    """The last lines of <var>/log/<name>.log, for failure messages."""
    try:
        with open(os.path.join(LOG_DIR, name + ".log"), "rb") as f:
            data = f.read()[-65536:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
