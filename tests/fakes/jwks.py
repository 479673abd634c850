#!/usr/bin/env python3
"""tests/fakes/jwks.py: a fake Google JWKS endpoint for tests (stdlib only).

    jwks.py [--port 0] [--bind 127.0.0.1] [--max-age 3600] [--expires S]
            [--fail] --key K:KID [--key K2:KID2 ...]

GET  /oauth2/v3/certs  the JWKS of the --key pairs, with
                       "Cache-Control: public, max-age=<--max-age>" (a
                       negative --max-age sends no Cache-Control); with
                       --expires S also "Expires: <now + S>" and "Date"
GET  /_stats           {"requests": N} (number of GETs of the certs)
POST /_fail, /_ok      make the certs answer 500 / the JWKS again
POST /_keys            body {"keys": [["path", "kid"], ...]} replaces the keys
POST /_body            body is served verbatim instead of the JWKS (with a
                       200); an empty body goes back to the JWKS
POST /_redirect        certs answers 302 to /elsewhere (POST /_ok clears)
POST /_hang            body "<seconds>": certs sleeps that long first
POST /_cache           body {"max_age": N, "expires": S or null} changes the
                       cache headers (max_age < 0: no Cache-Control; a
                       string expires or max_age is sent verbatim as the
                       Expires or Cache-Control value)
POST /_reset           clears fail, body, redirect, hang and the counter and
                       restores the cache headers of the command line

Prints "READY <port>" on stdout when listening (--port 0 = ephemeral).
"""

import argparse
import email.utils
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import google_token  # noqa: E402


class State:
    def __init__(self, pairs, max_age, expires, fail):
        self.lock = threading.Lock()
        self.pairs = pairs
        self.max_age = self.max_age0 = max_age
        self.expires = self.expires0 = expires
        self.fail = fail
        self.body = None
        self.redirect = False
        self.hang = 0.0
        self.requests = 0
        self.doc = json.dumps(google_token.jwks_multi(pairs)).encode()

    def set_keys(self, pairs):
        doc = json.dumps(google_token.jwks_multi(pairs)).encode()
        with self.lock:
            self.pairs = pairs
            self.doc = doc


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-jwks/1"

    def log_message(self, fmt, *args):
        pass

    def _send(self, code, body, ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        st = self.server.state
        path = self.path.split("?", 1)[0]
        if path == "/_stats":
            with st.lock:
                n = st.requests
            self._send(200, json.dumps({"requests": n}).encode())
            return
        if path != "/oauth2/v3/certs":
            self._send(404, b'{"error":"not found"}')
            return
        with st.lock:
            st.requests += 1
            fail, body, redirect, hang = st.fail, st.body, st.redirect, st.hang
            doc, max_age, expires = st.doc, st.max_age, st.expires
        if hang > 0:
            time.sleep(hang)
        if fail:
            self._send(500, b'{"error":"internal"}')
            return
        if redirect:
            self._send(302, b"", "text/plain",
                       [("Location", "/oauth2/v3/certs?moved=1")])
            return
        extra = []
        if isinstance(max_age, str):
            extra.append(("Cache-Control", max_age))
        elif max_age >= 0:
            extra.append(("Cache-Control", "public, max-age=%d" % max_age))
        if isinstance(expires, str):
            extra.append(("Expires", expires))
        elif expires is not None:
            now = time.time()
            extra.append(("Expires", email.utils.formatdate(now + expires,
                                                            usegmt=True)))
        self._send(200, doc if body is None else body,
                   "application/json; charset=UTF-8", extra)

    def do_POST(self):
        st = self.server.state
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n > 0 else b""
        path = self.path.split("?", 1)[0]
        if path == "/_fail":
            with st.lock:
                st.fail = True
        elif path == "/_ok":
            with st.lock:
                st.fail = False
                st.redirect = False
        elif path == "/_body":
            with st.lock:
                st.body = data if data else None
        elif path == "/_redirect":
            with st.lock:
                st.redirect = True
        elif path == "/_hang":
            with st.lock:
                st.hang = float(data or b"0")
        elif path == "/_keys":
            try:
                pairs = [(p, k) for p, k in json.loads(data)["keys"]]
                st.set_keys(pairs)
            except (ValueError, KeyError, TypeError) as e:
                self._send(400, json.dumps({"error": str(e)}).encode())
                return
        elif path == "/_cache":
            try:
                c = json.loads(data)
                ma, ex = c["max_age"], c.get("expires")
                ma = ma if isinstance(ma, str) else int(ma)
                ex = ex if ex is None or isinstance(ex, str) else int(ex)
            except (ValueError, KeyError, TypeError) as e:
                self._send(400, json.dumps({"error": str(e)}).encode())
                return
            with st.lock:
                st.max_age, st.expires = ma, ex
        elif path == "/_reset":
            with st.lock:
                st.max_age, st.expires = st.max_age0, st.expires0
                st.fail = False
                st.body = None
                st.redirect = False
                st.hang = 0.0
                st.requests = 0
        else:
            self._send(404, b'{"error":"not found"}')
            return
        self._send(200, b'{"ok":true}')


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients that time out or hang up on purpose are not news.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--max-age", type=int, default=3600)
    ap.add_argument("--expires", type=int)
    ap.add_argument("--fail", action="store_true")
    ap.add_argument("--key", action="append", default=[],
                    help="PATH:KID (the key file is created if missing)")
    a = ap.parse_args(argv)
    pairs = []
    for kk in a.key:
        p, sep, kid = kk.rpartition(":")
        if not sep or not p or not kid:
            ap.error("--key wants PATH:KID")
        pairs.append((p, kid))
    srv = Server((a.bind, a.port), Handler)
    srv.state = State(pairs, a.max_age, a.expires, a.fail)
    print("READY %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
