"""tests/integration/test_smoke.py: the stack answers at all: health routes,
the fixed headers, the JSON 404, /metrics, and what nginx itself adds
(aliases, body caps, "//")."""

import re
import time

from harness import check, eq, expect, fail, http

FIXED = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-XSS-Protection": "0",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def fixed_headers(r, what):
    for k, v in FIXED.items():
        eq(r.headers.get(k), v, "%s: %s" % (what, k))
    check("X-Powered-By" not in r.headers, "%s: X-Powered-By sent" % what)
    server = r.headers.get("Server", "")
    check(not re.search(r"\d", server),
          "%s: Server header carries a version: %r" % (what, server))


def error_body(r, status, detail, what):
    expect(r, status, what)
    check(r.headers.get("Content-Type", "").startswith("application/json"),
          "%s: Content-Type %r" % (what, r.headers.get("Content-Type")))
    check(isinstance(r.json, dict), "%s: body is not a JSON object: %r"
          % (what, r.body[:200]))
    eq(r.json.get("detail"), detail, "%s: detail" % what)
    eq(r.json.get("request_id"), r.headers.get("X-Request-ID"),
       "%s: request_id vs X-Request-ID" % what)


def test_health_fields():
    r = expect(http("GET", "/health"), 200, "GET /health")
    check(r.headers.get("Content-Type", "").startswith("application/json"),
          "Content-Type %r" % r.headers.get("Content-Type"))
    js = r.json
    check(isinstance(js, dict), "body is not JSON: %r" % r.body[:200])
    eq(js.get("status"), "healthy", "status")
    eq(js.get("service"), "DevPocket API", "service")
    check(isinstance(js.get("version"), str) and
          re.match(r"^\d+\.\d+\.\d+$", js["version"]),
          "version %r is not x.y.z" % js.get("version"))
    check(isinstance(js.get("environment"), str) and js["environment"],
          "environment %r" % js.get("environment"))
    ts = js.get("timestamp")
    check(isinstance(ts, (int, float)) and not isinstance(ts, bool),
          "timestamp %r is not a number" % ts)
    check(abs(ts - time.time()) < 300, "timestamp %r is not now" % ts)


def test_health_trailing_slash_and_api_alias():
    for path in ("/health/", "/api/v1/health", "/api/v1/health/"):
        r = expect(http("GET", path), 200, path)
        eq((r.json or {}).get("status"), "healthy", path + " status")


def test_health_ready():
    r = expect(http("GET", "/health/ready"), 200, "GET /health/ready")
    eq(r.json, {"status": "ready", "checks": {"database": "healthy"}},
       "body")


def test_health_live():
    r = expect(http("GET", "/health/live"), 200, "GET /health/live")
    eq(r.json, {"status": "alive"}, "body")


def test_head_health_has_no_body():
    r = http("HEAD", "/health")
    eq(r.status, 200, "HEAD /health status")
    eq(r.body, b"", "HEAD /health body")
    fixed_headers(r, "HEAD /health")


def test_security_headers_and_request_id():
    r = expect(http("GET", "/health"), 200, "GET /health")
    fixed_headers(r, "GET /health")
    rid = r.headers.get("X-Request-ID")
    check(rid is not None and HEX32.match(rid),
          "X-Request-ID %r is not 32 lowercase hex" % rid)
    r2 = http("GET", "/health")
    check(r2.headers.get("X-Request-ID") != rid, "X-Request-ID repeats")
    # A well-formed client id is echoed; a malformed one is replaced.
    r = http("GET", "/health", headers={"X-Request-ID": "smoke-Test-42"})
    eq(r.headers.get("X-Request-ID"), "smoke-Test-42", "echoed id")
    for bad in ("has space", "x" * 65, "semi;colon", "üñí"):
        r = http("GET", "/health", headers={"X-Request-ID": bad})
        got = r.headers.get("X-Request-ID", "")
        check(HEX32.match(got), "id %r replaced by %r" % (bad, got))


def test_not_found_json():
    r = http("GET", "/api/v1/nope", headers={"X-Request-ID": "nf-1"})
    error_body(r, 404, "Not Found", "GET /api/v1/nope")
    eq(r.headers.get("X-Request-ID"), "nf-1", "X-Request-ID")
    eq(r.headers.get("Cache-Control"), "no-store", "Cache-Control")
    fixed_headers(r, "404")
    for path in ("/nope", "/api/v2/health", "/api/v1/nope/deeper/still",
                 "/api/v1/%ff%fe", "/api/v1/" + "a" * 4000):
        r = http("GET", path)
        error_body(r, 404, "Not Found", "GET " + path[:40])
    # nginx itself refuses a NUL in the path (400); never a 5xx.
    r = http("GET", "/api/v1/%00")
    check(r.status in (400, 404), "GET /api/v1/%%00: %d" % r.status)


def test_empty_segments_are_not_found():
    # nginx must pass "//" through (merge_slashes off); the app answers 404.
    for path in ("//health", "/health//", "/api/v1//health",
                 "/api/v1/auth//me"):
        r = http("GET", path)
        error_body(r, 404, "Not Found", "GET " + path)


def test_metrics_from_loopback():
    r = expect(http("GET", "/metrics"), 200, "GET /metrics")
    ctype = r.headers.get("Content-Type", "")
    check(ctype.startswith("text/plain"), "Content-Type %r" % ctype)
    check("version=0.0.4" in ctype, "Content-Type %r lacks version" % ctype)
    text = r.body.decode("utf-8")
    check("devpocket_http_requests_total" in text,
          "no devpocket_http_requests_total in %r" % text[:300])
    for line in text.splitlines():
        if line and not line.startswith("#"):
            check(re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+$",
                           line), "bad exposition line %r" % line)


def test_alias_reaches_auth():
    # CONTRACT §6: /api/auth/<rest> is served as /api/v1/auth/<rest>.
    for path in ("/api/v1/auth/me", "/api/auth/me"):
        r = http("GET", path)
        error_body(r, 401, "Not authenticated", "GET " + path)
        eq(r.headers.get("WWW-Authenticate"), "Bearer", path)
        eq(r.headers.get("Cache-Control"), "no-store", path)
    # Only paths that exist under /api/v1 exist under an alias.
    error_body(http("GET", "/api/auth/nope"), 404, "Not Found",
               "GET /api/auth/nope")
    error_body(http("GET", "/api/nope/me"), 404, "Not Found",
               "GET /api/nope/me")


def test_body_caps():
    # Over [limits] body_max (1 MiB): the app's 413.
    r = http("POST", "/api/v1/auth/login", raw=b"{" + b" " * (1 << 20) +
             b"}", headers={"Content-Type": "application/json"})
    error_body(r, 413, "Request body too large", "1 MiB + 2 body")
    # Over nginx's client_max_body_size: nginx's own 413, same JSON shape.
    r = http("POST", "/api/v1/auth/login", raw=b"x" * (9 << 20),
             headers={"Content-Type": "application/json",
                      "X-Request-ID": "big-1"})
    error_body(r, 413, "Request body too large", "9 MiB body")
    eq(r.headers.get("X-Request-ID"), "big-1", "9 MiB X-Request-ID")
    fixed_headers(r, "nginx 413")


def test_unknown_method():
    r = http("BREW", "/health")
    check(r.status in (400, 405, 501), "BREW /health: %d" % r.status)
    if r.status == 405:
        check("GET" in r.headers.get("Allow", ""), "Allow %r"
              % r.headers.get("Allow"))
        # Counted as a method of its own, not as a GET.
        text = http("GET", "/metrics").body.decode("utf-8")
        check(re.search(r'^devpocket_http_requests_total\{route="/health",'
                        r'method="OTHER",status="405"\} [1-9]', text, re.M),
              "no OTHER 405 series for /health: %s" % "\n".join(
                  l for l in text.splitlines() if "405" in l))
        check(not re.search(r'route="/health",method="GET",status="405"',
                            text), "BREW's 405 counted as GET")
    if r.status >= 500 and r.status != 501:
        fail("BREW /health: %d" % r.status)
