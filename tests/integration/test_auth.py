"""Auth routes of CONTRACT §2.2 through nginx, with the real worker delivering mail."""
import json
import random
import re
import time
import uuid

from harness import http, ctl, read_mail, sql

PW = "Passw0rdX"


def ip():
    """A fresh client address (nginx is a trusted proxy) so limiters don't collide."""
    return "198.51.%d.%d" % (random.randint(0, 255), random.randint(1, 254))


def post(path, body=None, token=None, addr=None, headers=None, raw=None, ctype=None):
    h = {"X-Forwarded-For": addr or ip()}
    if token:
        h["Authorization"] = "Bearer " + token
    if ctype:
        h["Content-Type"] = ctype
    h.update(headers or {})
    return http("POST", "/api/v1" + path, body=body, headers=h, raw=raw)


def get(path, token=None, addr=None, headers=None):
    h = {"X-Forwarded-For": addr or ip()}
    if token:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    return http("GET", "/api/v1" + path, headers=h)


def new_user(**extra):
    n = uuid.uuid4().hex[:10]
    body = {"username": "u_" + n, "email": "U_%s@Example.COM" % n, "password": PW}
    body.update(extra)
    st, hd, raw, js = post("/auth/register", body)
    assert st == 201, (st, js)
    return body, js


def codes(js):
    return {(e["field"], e["code"]) for e in js["errors"]}


USER_KEYS = {"id", "username", "email", "full_name", "preferred_region", "avatar_url", "is_active",
             "is_verified", "subscription_plan", "created_at", "updated_at", "last_login"}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_register_returns_token_and_flattened_user():
    body, js = new_user(full_name="Ada L", preferred_region="eu-central")
    assert js["token_type"] == "bearer" and js["expires_in"] == 1800
    assert set(js["user"].keys()) == USER_KEYS
    for k in USER_KEYS:
        assert js[k] == js["user"][k]
    assert js["email"] == body["email"].lower()
    assert js["username"] == body["username"]
    assert js["is_verified"] is False and js["subscription_plan"] == "free"
    assert js["preferred_region"] == "eu-central" and js["full_name"] == "Ada L"
    assert js["message"].startswith("Registration successful")
    assert TS.match(js["created_at"]) and js["last_login"] is None
    assert len(js["user"]["id"]) == 24
    st, _, _, me = get("/auth/me", js["access_token"])
    assert st == 200 and me["id"] == js["id"]


def test_register_conflicts_case_insensitive():
    body, _ = new_user()
    st, _, _, js = post("/auth/register", {"username": body["username"].upper(),
                                           "email": body["email"].upper(), "password": PW})
    assert st == 409 and js["detail"] == "Email already registered"
    st, _, _, js = post("/auth/register", {"username": body["username"].upper(),
                                           "email": "other_%s@example.com" % uuid.uuid4().hex[:8],
                                           "password": PW})
    assert st == 409 and js["detail"] == "Username already taken"


def test_register_validation():
    st, _, _, js = post("/auth/register", {"username": "ab", "email": "nope", "password": "short"})
    assert st == 422 and js["detail"] == "Validation error"
    assert codes(js) == {("username", "too_short"), ("email", "invalid_email"), ("password", "too_short")}
    st, _, _, js = post("/auth/register", {"username": "a b c", "email": "x@y.co", "password": "alllowercase1"})
    assert codes(js) == {("username", "pattern"), ("password", "weak_password")}
    st, _, _, js = post("/auth/register", {})
    assert codes(js) == {("username", "missing"), ("email", "missing"), ("password", "missing")}
    st, _, _, js = post("/auth/register", {"username": "okname", "email": "a@b.co", "password": PW,
                                           "preferred_region": "mars", "full_name": "x" * 101})
    assert codes(js) == {("preferred_region", "invalid_choice"), ("full_name", "too_long")}
    st, _, _, js = post("/auth/register", {"username": 5, "email": True, "password": None})
    assert codes(js) == {("username", "type_error"), ("email", "type_error"), ("password", "missing")}
    assert "request_id" in js


def test_login_by_username_email_and_form():
    body, _ = new_user()
    for ident_key in ("username_or_email", "email", "username"):
        st, _, _, js = post("/auth/login", {ident_key: "  " + body["username"].upper() + " ", "password": PW})
        assert st == 200, (ident_key, st, js)
        assert js["user"]["last_login"] is not None
    st, _, _, js = post("/auth/login", {"username_or_email": body["email"], "password": PW})
    assert st == 200
    raw = ("grant_type=password&username=%s&password=%s&scope=" % (body["email"], PW)).encode()
    st, _, _, js = post("/auth/login", raw=raw, ctype="application/x-www-form-urlencoded")
    assert st == 200 and js["token_type"] == "bearer"
    st, _, _, js = post("/auth/login", raw=b"x=1", ctype="text/plain")
    assert st == 415


def test_login_failures_and_lockout():
    body, _ = new_user()
    st, hd, _, js = post("/auth/login", {"username_or_email": "nobody_" + uuid.uuid4().hex, "password": PW})
    assert st == 401 and js["detail"] == "Incorrect username/email or password"
    assert hd["www-authenticate"] == "Bearer"
    st, _, _, js = post("/auth/login", {"password": PW})
    assert st == 422 and ("username_or_email", "missing") in codes(js)
    for i in range(5):
        st, _, _, js = post("/auth/login", {"username": body["username"], "password": "Wrong0ne"})
        assert st == 401, (i, st, js)
    st, hd, _, js = post("/auth/login", {"username": body["username"], "password": PW})
    assert st == 423 and js["detail"] == "Account is temporarily locked due to too many failed attempts"
    assert 1 <= int(hd["retry-after"]) <= 1800


def test_login_disabled_account():
    body, _ = new_user()
    ctl("user", "disable", body["username"])
    st, _, _, js = post("/auth/login", {"username": body["username"], "password": PW})
    assert st == 403 and js["detail"] == "Account is disabled"
    st, _, _, js = post("/auth/login", {"username": body["username"], "password": "Wrong0ne"})
    assert st == 401


def test_refresh_rotation_grace_and_reuse():
    _, reg = new_user()
    r1 = reg["refresh_token"]
    assert re.match(r"^[A-Za-z0-9_-]{1,128}$", r1)
    st, _, _, a = post("/auth/refresh", {"refresh_token": r1})
    assert st == 200 and a["refresh_token"] != r1
    # Within the grace period a second use gets a fresh pair of the same session.
    st, _, _, b = post("/auth/refresh", {"refresh_token": r1})
    assert st == 200 and b["refresh_token"] not in (r1, a["refresh_token"])
    st, _, _, _ = get("/auth/me", b["access_token"])
    assert st == 200
    st, _, _, js = post("/auth/refresh", {"refresh_token": "nope"})
    assert st == 401 and js["detail"] == "Invalid refresh token"
    st, _, _, js = post("/auth/refresh", {"refresh_token": "x" * 5000})
    assert st == 401
    st, _, _, js = post("/auth/refresh", {})
    assert st == 422
    # A refresh token is never a bearer token.
    st, _, _, js = get("/auth/me", a["refresh_token"])
    assert st == 401 and js["detail"] == "Could not validate credentials"


def test_refresh_reuse_after_grace_revokes_family():
    _, reg = new_user()
    r1 = reg["refresh_token"]
    st, _, _, a = post("/auth/refresh", {"refresh_token": r1})
    assert st == 200
    sql("UPDATE refresh_tokens SET consumed_at = now() - interval '60 seconds' "
        "WHERE token_hash = encode(sha256('%s'::bytea), 'hex')" % r1)
    st, _, _, js = post("/auth/refresh", {"refresh_token": r1})
    assert st == 401
    st, _, _, js = post("/auth/refresh", {"refresh_token": a["refresh_token"]})
    assert st == 401
    st, _, _, js = get("/auth/me", a["access_token"])
    assert st == 401


def test_logout_revokes_session():
    _, reg = new_user()
    tok = reg["access_token"]
    st, _, _, js = post("/auth/logout", token=tok)
    assert st == 200 and js == {"message": "Successfully logged out"}
    st, _, _, js = get("/auth/me", tok)
    assert st == 401 and js["detail"] == "Could not validate credentials"
    st, _, _, js = post("/auth/refresh", {"refresh_token": reg["refresh_token"]})
    assert st == 401


def test_me_requires_bearer():
    st, hd, _, js = get("/auth/me")
    assert st == 401 and js["detail"] == "Not authenticated" and hd["www-authenticate"] == "Bearer"
    st, _, _, js = get("/auth/me", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert st == 401 and js["detail"] == "Not authenticated"
    st, _, _, js = get("/auth/me", headers={"Authorization": "bEaReR garbage.token.here"})
    assert st == 401 and js["detail"] == "Could not validate credentials"
    st, _, _, js = get("/auth/me", headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."})
    assert st == 401


def test_verify_email_with_link_from_mail():
    body, reg = new_user()
    mail = read_mail(body["email"].lower())
    assert "Subject: Verify your DevPocket email address" in mail
    m = re.search(r"http://localhost:3000/verify-email\?token=([A-Za-z0-9_-]{43})", mail)
    assert m, mail
    st, _, _, js = post("/auth/verify-email", {"token": m.group(1)})
    assert st == 200 and js == {"message": "Email verified successfully"}
    st, _, _, me = get("/auth/me", reg["access_token"])
    assert me["is_verified"] is True
    st, _, _, js = post("/auth/verify-email", {"token": m.group(1)})
    assert st == 400 and js["detail"] == "Invalid or expired verification token"
    st, _, _, js = post("/auth/resend-verification", token=reg["access_token"])
    assert st == 200 and js == {"message": "Email already verified"}


def test_resend_verification_and_limit():
    body, reg = new_user()
    for i in range(3):
        st, hd, _, js = post("/auth/resend-verification", token=reg["access_token"])
        assert st == 200 and js == {"message": "Verification email sent"}, (i, st, js)
    st, hd, _, js = post("/auth/resend-verification", token=reg["access_token"])
    assert st == 429 and js["detail"] == "Too many requests. Please try again later."
    assert js["retry_after"] >= 1 and int(hd["retry-after"]) >= 1
    assert hd["x-ratelimit-remaining"] == "0"


def test_forgot_and_reset_password_flow():
    body, reg = new_user()
    email = body["email"].lower()
    st, _, _, js = post("/auth/forgot-password", {"email": "nobody_%s@example.com" % uuid.uuid4().hex[:8]})
    assert st == 200 and js["message"] == "If that email is registered, a reset link has been sent"
    st, _, _, js = post("/auth/forgot-password", {"email": " " + email.upper()})
    assert st == 200
    mail = read_mail(email, subject="Reset your DevPocket password")
    m = re.search(r"/reset-password\?token=([A-Za-z0-9_-]{43})", mail)
    assert m, mail
    st, _, _, js = post("/auth/reset-password", {"token": m.group(1), "new_password": "weak"})
    assert st == 422
    st, _, _, js = post("/auth/reset-password", {"token": m.group(1), "new_password": "N3wPassword"})
    assert st == 200 and js == {"message": "Password reset successfully"}
    st, _, _, js = get("/auth/me", reg["access_token"])
    assert st == 401  # sessions revoked
    st, _, _, js = post("/auth/login", {"username": body["username"], "password": PW})
    assert st == 401
    st, _, _, js = post("/auth/login", {"username": body["username"], "password": "N3wPassword"})
    assert st == 200 and js["user"]["is_verified"] is True
    st, _, _, js = post("/auth/reset-password", {"token": m.group(1), "new_password": "N3wPassword2"})
    assert st == 400 and js["detail"] == "Invalid or expired reset token"
    assert "Subject: Your DevPocket password was changed" in read_mail(email, subject="Your DevPocket password was changed")


def test_change_password_keeps_current_session_only():
    body, reg = new_user()
    st, _, _, other = post("/auth/login", {"username": body["username"], "password": PW})
    assert st == 200
    st, _, _, js = post("/auth/change-password", {"current_password": "Wrong0ne", "new_password": "An0therPass"},
                        token=reg["access_token"])
    assert st == 400 and js["detail"] == "Current password is incorrect"
    st, _, _, js = post("/auth/change-password", {"current_password": PW, "new_password": "An0therPass"},
                        token=reg["access_token"])
    assert st == 200 and js == {"message": "Password changed successfully"}
    assert get("/auth/me", reg["access_token"])[0] == 200
    assert get("/auth/me", other["access_token"])[0] == 401


def test_auth_ip_rate_limit():
    addr = ip()
    for i in range(30):
        st, hd, _, js = post("/auth/refresh", {"refresh_token": "nope"}, addr=addr)
        assert st == 401, (i, st)
        assert int(hd["x-ratelimit-limit"]) == 30
    st, hd, _, js = post("/auth/refresh", {"refresh_token": "nope"}, addr=addr)
    assert st == 429 and js["retry_after"] >= 1
    assert hd["x-ratelimit-remaining"] == "0" and int(hd["x-ratelimit-reset"]) > time.time()


def test_login_identifier_rate_limit():
    body, _ = new_user()
    addr = ip()
    for i in range(5):
        st, hd, _, js = post("/auth/login", {"username": "ghost_" + body["username"], "password": PW}, addr=addr)
        assert st == 401
    st, hd, _, js = post("/auth/login", {"username": "ghost_" + body["username"], "password": PW}, addr=addr)
    assert st == 429
    assert hd["x-ratelimit-limit"] == "5"
    # Another identifier from the same address is still allowed.
    st, _, _, js = post("/auth/login", {"username": body["username"], "password": PW}, addr=addr)
    assert st == 200


def test_forgot_password_same_work_either_way():
    """Known or unknown address, the request does the same thing: it
    queues one auth.reset job (the worker looks the address up and mails),
    so neither the answer nor its time tells whether an account exists."""
    body, reg = new_user()
    known = body["email"].lower()
    unknown = "nobody_%s@example.com" % uuid.uuid4().hex[:8]
    for email in (known, unknown):
        st, _, _, js = post("/auth/forgot-password", {"email": email})
        assert st == 200 and js["message"] == "If that email is registered, a reset link has been sent"
        rows = sql("SELECT count(*) FROM jobs WHERE kind = 'auth.reset' "
                   "AND payload->>'email' = :'p1'", email)
        assert rows == [["1"]], (email, rows)
    assert "/reset-password?token=" in read_mail(known, subject="Reset your DevPocket password")
    deadline = time.time() + 10
    while time.time() < deadline:
        st = sql("SELECT state FROM jobs WHERE kind = 'auth.reset' AND payload->>'email' = :'p1'",
                 unknown)
        if st == [["done"]]:
            break
        time.sleep(0.1)
    assert st == [["done"]], st
    assert sql("SELECT count(*) FROM jobs WHERE kind = 'mail' AND payload->>'to' = :'p1'",
               unknown) == [["0"]]
