"""Conventions of CONTRACT §0 through nginx: headers, CORS, errors, limits, aliases."""
import re
import time

from harness import http
from test_auth import new_user, get, post, ip

FIXED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "x-xss-protection": "0",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}


def check_fixed(hd):
    for k, v in FIXED.items():
        assert hd.get(k) == v, (k, hd.get(k))
    assert "x-powered-by" not in hd
    assert re.match(r"^[A-Za-z0-9-]{1,64}$", hd["x-request-id"])
    assert not re.search(r"\d", hd.get("server", ""))


def test_headers_on_every_kind_of_response():
    for m, p in (("GET", "/health"), ("GET", "/api/v1/nope"), ("GET", "/api/v1/auth/me"),
                 ("DELETE", "/api/v1/auth/me"), ("OPTIONS", "/api/v1/auth/login")):
        st, hd, _, js = http(m, p)
        check_fixed(hd)
        if p.startswith("/api/"):
            assert hd.get("cache-control") == "no-store", (p, hd)
    st, hd, raw, js = http("OPTIONS", "/api/v1/auth/login")
    assert st == 204 and raw == b"" and "content-type" not in hd
    assert hd["allow"] == "POST, OPTIONS"


def test_request_id_echo_and_error_body():
    st, hd, _, js = http("GET", "/api/v1/nope", headers={"X-Request-ID": "trace-42"})
    assert st == 404 and hd["x-request-id"] == "trace-42"
    assert js == {"detail": "Not Found", "request_id": "trace-42"}
    st, hd, _, js = http("GET", "/api/v1/nope", headers={"X-Request-ID": "bad id"})
    assert re.match(r"^[0-9a-f]{32}$", hd["x-request-id"]) and js["request_id"] == hd["x-request-id"]


def test_trailing_slash_and_empty_segments():
    _, reg = new_user()
    tok = reg["access_token"]
    assert get("/auth/me/", tok)[0] == 200
    assert http("GET", "/api/v1/auth//me", headers={"Authorization": "Bearer " + tok})[0] == 404
    assert http("GET", "/api/v1/auth/me//", headers={"Authorization": "Bearer " + tok})[0] == 404
    assert http("GET", "/API/v1/auth/me", headers={"Authorization": "Bearer " + tok})[0] == 404
    st, _, _, js = post("/auth/login/", {"username": "nobody_xyz", "password": "Passw0rdX"})
    assert st == 401


def test_unread_bodies_still_get_their_answer():
    """Answers given before the body is read (route 404, 405) keep the
    responders' draining close; bodies read to their end close at once.
    Either way every answer arrives whole, never a 502, many times over."""
    big = b"x" * 200000
    for i in range(40):
        st, hd, _, js = http("POST", "/api/v1/nope", raw=big,
                             headers={"Content-Type": "application/json"})
        assert st == 404 and js["detail"] == "Not Found", (i, st, js)
        st, hd, _, js = http("PUT", "/api/v1/auth/login", raw=big,
                             headers={"Content-Type": "application/json"})
        assert st == 405 and js["detail"] == "Method Not Allowed", (i, st, js)
        st, _, _, js = post("/auth/login", {"username": "nobody_%d" % i,
                                            "password": "Passw0rdX"})
        assert st == 401, (i, st, js)
        st, _, _, js = http("GET", "/health")
        assert st == 200 and js["status"] == "healthy", (i, st, js)


def test_method_not_allowed_and_head():
    st, hd, _, js = http("GET", "/api/v1/auth/login")
    assert st == 405 and js["detail"] == "Method Not Allowed" and hd["allow"] == "POST, OPTIONS"
    st, hd, raw, _ = http("HEAD", "/health")
    assert st == 200 and raw == b"" and hd["content-type"] == "application/json"
    st, hd, _, _ = http("PUT", "/api/v1/users/me/")
    assert st == 401


def test_cors():
    st, hd, _, _ = http("GET", "/health", headers={"Origin": "http://localhost:3000"})
    assert hd["access-control-allow-origin"] == "http://localhost:3000"
    assert hd["access-control-allow-credentials"] == "true" and hd["vary"] == "Origin"
    assert "X-Total-Count" in hd["access-control-expose-headers"]
    st, hd, _, _ = http("OPTIONS", "/api/v1/auth/login", headers={
        "Origin": "http://localhost:3001", "Access-Control-Request-Method": "POST"})
    assert st == 204
    assert hd["access-control-allow-methods"] == "GET, POST, PUT, DELETE, OPTIONS"
    assert "If-Match" in hd["access-control-allow-headers"] and hd["access-control-max-age"] == "86400"
    st, hd, _, _ = http("OPTIONS", "/api/v1/auth/login", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert st == 204 and not any(k.startswith("access-control") for k in hd)
    assert http("OPTIONS", "/api/v1/nope")[0] == 404


def test_body_errors():
    st, _, _, js = post("/auth/login", raw=b"x" * (1048576 + 1))
    assert st == 413 and js["detail"] == "Request body too large"
    st, _, _, js = post("/auth/login", raw=b"{\"a\":", ctype="application/json")
    assert st == 400 and js["detail"] == "Invalid JSON in request body"
    deep = b"[" * 33 + b"]" * 33
    st, _, _, js = post("/auth/login", raw=b"{\"a\":" + deep + b"}")
    assert st == 400
    st, _, _, js = post("/auth/login", raw=b"\"just a string\"")
    assert st == 422 and js["errors"][0]["field"] == "body" and js["errors"][0]["code"] == "type_error"
    st, _, _, js = post("/auth/login", raw=b"{\"username\":\"\xc3\x28\"}")
    assert st == 400
    st, _, _, js = post("/auth/register", raw=b"{}", ctype="application/xml")
    assert st == 415 and js["detail"] == "Unsupported Media Type"


def test_general_rate_limit_headers_for_users():
    _, reg = new_user()
    st, hd, _, _ = get("/auth/me", reg["access_token"])
    assert hd["x-ratelimit-limit"] == "100"
    assert 0 <= int(hd["x-ratelimit-remaining"]) < 100
    reset = int(hd["x-ratelimit-reset"])
    assert reset % 60 == 0 and reset > time.time()
    st, hd, _, _ = http("GET", "/health")
    assert "x-ratelimit-limit" not in hd


def test_general_rate_limit_429():
    _, reg = new_user()
    tok = reg["access_token"]
    last = None
    for i in range(101):
        last = get("/auth/me", tok)
        if last[0] == 429:
            break
    st, hd, _, js = last
    assert st == 429, st
    assert js["detail"] == "Too many requests. Please try again later." and js["retry_after"] >= 1
    assert int(hd["retry-after"]) >= 1 and hd["x-ratelimit-remaining"] == "0"


def test_aliases():
    _, reg = new_user()
    st, hd, _, js = http("GET", "/api/auth/me", headers={"Authorization": "Bearer " + reg["access_token"]})
    assert st == 200 and js["id"] == reg["user"]["id"] and hd["cache-control"] == "no-store"
    assert http("GET", "/api/users/me")[0] == 404
