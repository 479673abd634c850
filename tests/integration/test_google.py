"""POST /auth/google (CONTRACT §2.2) against a faithful fake of Google's JWKS
endpoint (tests/fakes/jwks.py, started here on DP_TEST_JWKS_PORT) with a test
RSA key; tokens are signed by tests/fakes/google_token.py."""
import atexit
import os
import subprocess
import sys
import time
import uuid

from harness import http, sql, ROOT, VAR

sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
import google_token  # noqa: E402

PORT = int(os.environ.get("DP_TEST_JWKS_PORT", "18099"))
AUD = "devpocket-test.apps.googleusercontent.com"
KEY = os.path.join(VAR, "google-test.key")
KID = "test-kid-1"
_server = None


def claims(**over):
    n = uuid.uuid4().hex[:8]
    c = {"iss": "https://accounts.google.com", "aud": AUD, "sub": "g-" + n,
         "email": "G.User.%s@gmail.com" % n, "email_verified": True,
         "name": "Gina %s" % n, "picture": "https://lh3.example.com/%s.png" % n,
         "iat": int(time.time()), "exp": int(time.time()) + 600}
    c.update(over)
    return c


def token(c, **kw):
    return google_token.sign(KEY, KID, c, **kw)


def google(body, addr=None):
    return http("POST", "/api/v1/auth/google", body=body)


def start_jwks():
    global _server
    if _server is None:
        google_token.make_key(KEY) if not os.path.exists(KEY) else None
        _server = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "fakes", "jwks.py"),
                                    "--port", str(PORT), "--key", "%s:%s" % (KEY, KID)],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = _server.stdout.readline().decode()
        assert line.startswith("READY"), line


def test_google_1_unavailable_without_keys():
    # Runs first (name order): no JWKS server yet, no cached keys.
    if not os.path.exists(KEY):
        google_token.make_key(KEY)
    st, _, _, js = google({"id_token": token(claims())})
    assert st == 503 and js["detail"] == "Google sign-in is temporarily unavailable", (st, js)


def test_google_2_creates_then_finds_user():
    start_jwks()
    c = claims()
    st, _, _, js = google({"id_token": token(c), "access_token": "ignored"})
    assert st == 200, (st, js)
    u = js["user"]
    assert u["email"] == c["email"].lower() and u["is_verified"] is True
    assert u["full_name"] == c["name"] and u["avatar_url"] == c["picture"]
    assert u["username"] == c["email"].split("@")[0].replace(".", "_")
    assert u["last_login"] is not None
    me = http("GET", "/api/v1/auth/me", headers={"Authorization": "Bearer " + js["access_token"]})
    assert me[0] == 200 and me[3]["id"] == u["id"]
    # Same subject again (legacy "token" field): the same account.
    st, _, _, js2 = google({"token": token(c)})
    assert st == 200 and js2["user"]["id"] == u["id"]
    rows = sql("SELECT password_hash IS NULL FROM users WHERE id = :'p1'", u["id"])
    assert rows == [["t"]]


def test_google_links_existing_account_by_email():
    start_jwks()
    n = uuid.uuid4().hex[:8]
    email = "link_%s@example.com" % n
    st, _, _, reg = http("POST", "/api/v1/auth/register",
                         body={"username": "link_" + n, "email": email, "password": "Passw0rdX"})
    assert st == 201 and reg["is_verified"] is False
    st, _, _, js = google({"id_token": token(claims(email=email.upper()))})
    assert st == 200 and js["user"]["id"] == reg["id"] and js["user"]["is_verified"] is True
    # Nobody had proved the address: whoever registered it (anyone can
    # register any address) keeps neither its password nor its sessions.
    st, _, _, _ = http("GET", "/api/v1/auth/me",
                       headers={"Authorization": "Bearer " + reg["access_token"]})
    assert st == 401, st
    st, _, _, js2 = http("POST", "/api/v1/auth/login",
                         body={"username_or_email": email, "password": "Passw0rdX"})
    assert st == 401, (st, js2)
    st, _, _, me = http("GET", "/api/v1/auth/me",
                        headers={"Authorization": "Bearer " + js["access_token"]})
    assert st == 200 and me["id"] == reg["id"], st


def test_google_links_verified_account_keeps_password():
    start_jwks()
    n = uuid.uuid4().hex[:8]
    email = "linkv_%s@example.com" % n
    st, _, _, reg = http("POST", "/api/v1/auth/register",
                         body={"username": "linkv_" + n, "email": email, "password": "Passw0rdX"})
    assert st == 201
    sql("UPDATE users SET is_verified = true WHERE id = :'p1'", reg["id"])
    st, _, _, js = google({"id_token": token(claims(email=email))})
    assert st == 200 and js["user"]["id"] == reg["id"]
    st, _, _, _ = http("GET", "/api/v1/auth/me",
                       headers={"Authorization": "Bearer " + reg["access_token"]})
    assert st == 200, st
    st, _, _, _ = http("POST", "/api/v1/auth/login",
                       body={"username_or_email": email, "password": "Passw0rdX"})
    assert st == 200, st


def test_google_username_collisions():
    start_jwks()
    n = uuid.uuid4().hex[:6]
    local = "x" * 24 + n  # 30 chars
    ids = set()
    names = []
    for i in range(3):
        st, _, _, js = google({"id_token": token(claims(email="%s@d%d-%s.example.com" % (local, i, n)))})
        assert st == 200, js
        names.append(js["user"]["username"])
        ids.add(js["user"]["id"])
    assert len(ids) == 3
    assert names[0] == local and names[1] == local[:28] + "_2" and names[2] == local[:28] + "_3", names
    st, _, _, js = google({"id_token": token(claims(email="a.b@short-%s.example.com" % n))})
    assert st == 200 and js["user"]["username"].startswith("a_b")


def test_google_rejections():
    start_jwks()
    bad = [
        claims(aud="someone-else"),
        claims(iss="evil.example.com"),
        claims(exp=int(time.time()) - 1),
        claims(email_verified=False),
    ]
    c = claims()
    del c["email"]
    bad.append(c)
    for c in bad:
        st, _, _, js = google({"id_token": token(c)})
        assert st == 401 and js["detail"] == "Invalid Google token", (c, st, js)
    good = token(claims())
    for t in (good[:-5] + "AAAAA", good.rsplit(".", 1)[0] + ".", "garbage", "a.b.c", "x" * 17000,
              token(claims(), header_overrides={"alg": "none"}),
              token(claims(), header_overrides={"alg": "HS256"}, hmac_pem=True)):
        st, _, _, js = google({"id_token": t})
        assert st in (401, 422), (t[:40], st, js)
        if st == 401:
            assert js["detail"] == "Invalid Google token"
    st, _, _, js = google({})
    assert st == 422 and js["errors"][0]["code"] == "missing"
    # id_token wins over token.
    st, _, _, js = google({"id_token": "garbage", "token": good})
    assert st == 401


def test_google_disabled_account():
    start_jwks()
    c = claims()
    st, _, _, js = google({"id_token": token(c)})
    assert st == 200
    sql("UPDATE users SET is_active = false WHERE id = :'p1'", js["user"]["id"])
    st, _, _, js = google({"id_token": token(c)})
    assert st == 403 and js["detail"] == "Account is disabled"


def test_google_not_configured_cgi():
    """The same binary as plain CGI with no client ids configured."""
    env = dict(os.environ, DEVPOCKET_GOOGLE_CLIENT_IDS="", REQUEST_METHOD="POST",
               DOCUMENT_URI="/api/v1/auth/google", CONTENT_TYPE="application/json",
               CONTENT_LENGTH="17", REMOTE_ADDR="192.0.2.7", GATEWAY_INTERFACE="CGI/1.1")
    p = subprocess.run([os.path.join(ROOT, "cgi-bin", "auth"), "--config", os.path.join(VAR, "devpocket.conf")],
                       input=b'{"id_token":"x"}', env=env, capture_output=True, timeout=30)
    out = p.stdout.decode()
    assert out.startswith("Status: 503"), out
    assert '"detail":"Google sign-in is not configured"' in out


@atexit.register
def _stop_jwks():
    if _server is not None:
        _server.kill()
        _server.wait()


def test_google_first_sign_in_twice_at_once():
    """Two first sign-ins of one new Google account at the same moment:
    both get the one account (the second's insert meets the first's)."""
    from test_environments import Held, wait_backends, in_threads
    start_jwks()
    n = uuid.uuid4().hex[:8]
    tok = token(claims(sub="race-" + n, email="race_%s@example.com" % n))
    h = Held("LOCK TABLE login_sessions IN EXCLUSIVE MODE;")
    ts, out = in_threads(lambda: google({"id_token": tok}), lambda: google({"id_token": tok}))
    wait_backends("wait_event_type = 'Lock' AND application_name <> 'dp-test-held'", 2)
    h.end()
    for t in ts:
        t.join(30)
    got = [(o[0], o[3].get("user", {}).get("id")) for o in out]
    assert [g[0] for g in got] == [200, 200], got
    assert got[0][1] == got[1][1], got
