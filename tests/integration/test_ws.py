"""tests/integration/test_ws.py: WebSocket terminals and log streams
(CONTRACT §3) through the web server, websocketd, ws/terminal and ws/logs
into tmux in a local environment.

Environments come from POST /api/v1/environments with a quick template
(one `true` startup step) inserted here, on the stack's local cluster."""

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import tty
import urllib.parse

import harness
from harness import (check, eq, fail, http, post, register_user, sql,
                     unique, VAR, bearer)
import wsclient

QUICK = "wsquick"
ENV_ID = "0123456789abcdef01234567"      # well formed, never created


def quick_template():
    sql("INSERT INTO templates (id, name, display_name, description, "
        "category, docker_image, default_resources, startup_commands, "
        "local_startup_commands) VALUES ('77777777777777777777aaaa', "
        "'" + QUICK + "', 'WS quick', 'Quick local environment', "
        "'operating_system', 'debian:12', "
        "'{\"cpu\":\"500m\",\"memory\":\"1Gi\",\"storage\":\"1Gi\"}', "
        "'[\"true\"]', '[\"true\"]') ON CONFLICT DO NOTHING")


def local_cluster():
    rows = sql("SELECT id FROM clusters WHERE provider = 'local' "
               "AND status = 'active' ORDER BY is_default DESC, id LIMIT 1")
    if rows:
        return rows[0][0]
    sql("INSERT INTO clusters (id, name, region, provider) VALUES "
        "('77777777777777777777bbbb', 'ws-local', 'us-east', 'local') "
        "ON CONFLICT DO NOTHING")
    return "77777777777777777777bbbb"


def wait_status(user, env_id, want, timeout=60):
    # From the database: polling the API would spend the user's rate limit.
    deadline = time.time() + timeout
    st = None
    while time.time() < deadline:
        st = sql("SELECT status FROM environments WHERE id = :'p1'",
                 env_id)[0][0]
        if st == want:
            return
        if st == "error" and want != "error":
            break
        time.sleep(0.2)
    logs = sql("SELECT message FROM environment_logs WHERE environment_id "
               "= :'p1' ORDER BY id", env_id)
    fail("environment %s: status %s, want %s; logs %s" % (
        env_id, st, want, [r[0] for r in logs][-5:]))


def post_empty(path, u):
    # With "Content-Length: 0", as clients send a POST without a body:
    # lighttpd answers 411 to a POST that has no Content-Length at all.
    return http("POST", path, raw=b"", headers=u["headers"])


def env_user(name=None, variables=None):
    """A fresh user with one running environment: (user, env id)."""
    quick_template()
    cid = local_cluster()
    u = register_user()
    body = {"name": name or unique("ws")[:40].lower(), "template": QUICK, "cluster_id": cid}
    if variables:
        body["environment_variables"] = variables
    r = post("/api/v1/environments", body, headers=u["headers"])
    eq(r.status, 201, "create environment: %s" % r.body[:300])
    env = r.json["id"]
    wait_status(u, env, "running")
    return u, env


def term_path(env, token, **q):
    q = dict(q)
    if token is not None:
        q["token"] = token
    return "/api/v1/ws/terminal/%s?%s" % (env, urllib.parse.urlencode(q))


def open_term(u, env, **q):
    ws = wsclient.connect(term_path(env, u["access_token"], **q))
    if isinstance(ws, wsclient.Refused):
        fail("terminal refused: %r" % ws)
    w = ws.recv(15)
    check(w is not None and w.get("type") == "welcome", "welcome: %r" % w)
    return ws, w


def websocketd_children():
    """Processes websocketd has forked (ws programs) right now."""
    try:
        with open(os.path.join(VAR, "run", "websocketd.pid")) as f:
            wpid = f.read().split()[0]
    except OSError:
        fail("websocketd is not running in this stack")
    n = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        f = st.rsplit(")", 1)[1].split()
        if f[1] == wpid and f[0] != "Z":
            n.append(int(p))
    return n


def ended_session_row(sid, columns):
    """The session row sid's `active, <columns>`, once it is no longer
    active (or as it stands after 5 s)."""
    deadline = time.time() + 5
    while True:
        row = sql("SELECT active, %s FROM terminal_sessions WHERE id = "
                  ":'p1'" % columns, sid)
        if row[0][0] == "f" or time.time() >= deadline:
            return row
        time.sleep(0.1)


def slots(user_id):
    return int(sql("SELECT count(*) FROM ws_connections WHERE user_id = "
                   ":'p1'", user_id)[0][0])


def wait_slots(user_id, want, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if slots(user_id) == want:
            return
        time.sleep(0.05)
    eq(slots(user_id), want, "open slots of the user")


def refused(path, status, detail, headers=None):
    r = wsclient.connect(path, headers=headers)
    check(isinstance(r, wsclient.Refused), "%s: upgraded, want %d" % (
        path, status))
    eq(r.status, status, "status of %s" % path)
    if detail is not None:
        eq(r.json and r.json.get("detail"), detail, "detail of %s" % path)
        check(r.json.get("request_id"), "request_id in the body")
        eq(r.headers.get("Cache-Control"), "no-store", "Cache-Control")
    if status == 401:
        eq(r.headers.get("WWW-Authenticate"), "Bearer", "WWW-Authenticate")
    return r


# ------------------------------------------------------------ handshake

def test_ws_preupgrade_refusals():
    u, env = env_user()
    other = register_user()
    before = websocketd_children()
    tok = u["access_token"]
    # 401: no token, garbage, a refresh token, a tampered one.
    refused("/api/v1/ws/terminal/" + env, 401, "Authentication failed")
    refused(term_path(env, "garbage"), 401, "Authentication failed")
    refused(term_path(env, u["refresh_token"]), 401, "Authentication failed")
    refused(term_path(env, tok[:-3] + "AAA"), 401, "Authentication failed")
    refused(term_path(env, "x" * 5000), 401, "Authentication failed")
    refused("/api/v1/ws/logs/" + env, 401, "Authentication failed",
            headers={"Authorization": "Basic Zm9vOmJhcg=="})
    # The query token wins over the header.
    refused(term_path(env, "garbage"), 401, "Authentication failed",
            headers=bearer(tok))
    # 403 not found: unknown, malformed, empty, another user's.
    refused(term_path(ENV_ID, tok), 403, "Environment not found")
    refused(term_path("ZZZ", tok), 403, "Environment not found")
    refused(term_path(env.upper(), tok), 403, "Environment not found")
    refused("/api/v1/ws/terminal?token=" + tok, 403, "Environment not found")
    refused("/api/v1/ws/terminal/?token=" + tok, 403, "Environment not found")
    refused("/api/v1/ws/logs/%s?token=%s" % (env, other["access_token"]),
            403, "Environment not found")
    refused(term_path(env, None), 403, "Environment not found",
            headers=bearer(other["access_token"]))
    refused("/ws/terminal?token=" + tok, 403, "Environment not found")
    refused("/api/v1/ws/ssh/%s?token=%s" % (ENV_ID, tok), 403,
            "SSH profile not found")
    # Not socket paths at all: the JSON 404.
    for p in ("/api/v1/ws/shell/" + env, "/api/v1/ws/terminal/%s/x" % env,
              "/api/v1/ws/", "/api/v1/ws/terminalx/" + env):
        r = refused(p + "?token=" + tok, 404, "Not Found")
    # The pre-upgrade route itself, called directly, is no socket.
    r = http("GET", "/api/v1/auth/authorize-ws")
    eq(r.status, 404, "authorize-ws without X-Original-URI")
    r = http("GET", "/api/v1/auth/authorize-ws", headers={
        "X-Original-URI": "/api/v1/ws/terminal/%s?token=%s" % (env, tok)})
    eq(r.status, 204, "authorize-ws for an allowed socket")
    # Nothing above forked a ws program or took a slot.
    eq(websocketd_children(), before, "websocketd children")
    eq(slots(u["id"]), 0, "slots")
    # Stopped: the terminal is refused, the logs socket is not.
    r = post_empty("/api/v1/environments/%s/stop" % env, u)
    eq(r.status, 200, "stop")
    refused(term_path(env, tok), 403, "Environment not running")
    ws = wsclient.connect("/api/v1/ws/logs/%s?token=%s&follow=false" % (
        env, tok))
    check(not isinstance(ws, wsclient.Refused), "logs of a stopped env: %r"
          % ws)
    w = ws.recv(10)
    eq(w["type"], "welcome", "logs welcome")
    eq(w["environment"]["status"], "stopped", "status in welcome")
    ws.close()


def test_ws_authorizer_not_fooled():
    """The pre-upgrade check looks at the socket the client really asks
    for: nginx sets X-Original-URI itself, and under lighttpd's FastCGI
    authorizer a client's X-Original-URI is ignored (the request's own
    URI counts).  Dot segments, encoded ids and a client's FCGI-Role
    header change nothing either."""
    u, env = env_user()
    _, other_env = env_user()
    tok = u["access_token"]
    before = websocketd_children()
    good = term_path(env, tok)
    # Another user's environment, with the URI of an allowed socket in
    # the header.
    refused(term_path(other_env, tok), 403, "Environment not found",
            headers={"X-Original-URI": good})
    refused(term_path(ENV_ID, tok), 403, "Environment not found",
            headers={"X-Original-URI": good, "FCGI-Role": "AUTHORIZER"})
    refused("/api/v1/ws/shell/%s?token=%s" % (env, tok), 404, "Not Found",
            headers={"X-Original-URI": good})
    # Dot segments and percent-encoded ids never reach another socket.
    for p in ("/api/v1/ws/terminal/%s/../%s?token=%s" % (env, other_env, tok),
              "/api/v1/ws/terminal/%s/..%%2f%s?token=%s" % (env, other_env,
                                                           tok),
              "/api/v1/ws/logs/../terminal/%s?token=%s" % (other_env, tok),
              "/api/v1/auth/../ws/terminal/%s?token=%s" % (other_env, tok)):
        r = wsclient.connect(p)
        check(isinstance(r, wsclient.Refused), "%s: upgraded" % p)
        # (nginx turns the check's 404 for the raw URI into its 503.)
        check(r.status in (400, 403, 404, 503), "%s: status %d" % (
            p, r.status))
    refused(term_path("%30" + env[1:], tok) if env[0] == "0" else
            term_path("%%%02X" % ord(env[0]) + env[1:], tok), 403,
            "Environment not found")
    # A NUL byte, control characters and invalid UTF-8 in the id.
    for seg in ("%00" + env, env + "%00", "%ff%fe", "a%0d%0ab"):
        r = wsclient.connect(term_path(seg, tok))
        check(isinstance(r, wsclient.Refused), "%r: upgraded" % seg)
        check(r.status in (400, 403), "%r: status %d" % (seg, r.status))
    # Called directly, the route keeps its responder answer (204): a
    # client header does not make it an authorizer.
    r = http("GET", "/api/v1/auth/authorize-ws", headers={
        "X-Original-URI": good, "FCGI-Role": "AUTHORIZER"})
    eq(r.status, 204, "authorize-ws with a client FCGI-Role header")
    eq(websocketd_children(), before, "websocketd children")
    eq(slots(u["id"]), 0, "slots")
    # The real socket still opens.
    ws, _ = open_term(u, env)
    ws.close()


def test_ws_legacy_alias():
    u, env = env_user()
    ws = wsclient.connect("/ws/terminal/%s?token=%s" % (env,
                                                        u["access_token"]))
    check(not isinstance(ws, wsclient.Refused), "alias refused: %r" % ws)
    eq(ws.recv(10)["type"], "welcome", "first message")
    ws.close()


# ------------------------------------------------------------- terminal

def test_ws_terminal_echo():
    u, env = env_user()
    ws, w = open_term(u, env, cols=100, rows=30, device_id="phone-1")
    eq(w["message"], "Connected to " + sql(
        "SELECT name FROM environments WHERE id = :'p1'", env)[0][0],
        "welcome message")
    e = w["environment"]
    eq(sorted(e), sorted(["id", "name", "template", "status",
                          "installation_completed", "pty_enabled"]),
       "environment keys")
    eq((e["id"], e["template"], e["status"], e["pty_enabled"]),
       (env, QUICK, "running", True), "environment")
    sid = w["session_id"]
    check(len(sid) == 24, "session id")
    row = sql("SELECT type, environment_id, device_id, active FROM "
              "terminal_sessions WHERE id = :'p1'", sid)
    eq(row, [["environment", env, "phone-1", "t"]], "session row")
    eq(slots(u["id"]), 1, "slot taken")
    ws.send({"type": "input", "data": "echo WS$((6*7))MARK\r"})
    ws.output_until("WS42MARK")
    ws.send({"type": "ping"})
    ws.until(lambda m: m["type"] == "pong", what="pong")
    ws.close()
    wait_slots(u["id"], 0)
    row = ended_session_row(sid, "ended_at IS NOT NULL, bytes_in > 0, "
                            "bytes_out > 0, close_code")
    eq(row, [["f", "t", "t", "t", "1000"]], "ended session row")
    la = sql("SELECT last_accessed IS NOT NULL, last_activity IS NOT NULL "
             "FROM environments WHERE id = :'p1'", env)
    eq(la, [["t", "t"]], "last_accessed, last_activity")


def test_ws_bad_messages_keep_socket():
    u, env = env_user()
    ws, _ = open_term(u, env)
    cases = [
        ("text", "not json", "Failed to process message"),
        ("text", "[1,2]", "Failed to process message"),
        ("text", '"input"', "Failed to process message"),
        ("text", '{"type":"input","data":"x"', "Failed to process message"),
        ("json", {"data": "x"}, "Unknown message type"),
        ("json", {"type": 7}, "Unknown message type"),
        ("json", {"type": "launch"}, "Unknown message type"),
        ("json", {"type": "input"}, "Invalid message data"),
        ("json", {"type": "input", "data": 5}, "Invalid message data"),
        ("json", {"type": "input", "data": None}, "Invalid message data"),
        ("json", {"type": "resize", "cols": 9, "rows": 24},
         "Invalid message data"),
        ("json", {"type": "resize", "cols": 80, "rows": 201},
         "Invalid message data"),
        ("json", {"type": "resize", "cols": 80.0, "rows": 24},
         "Invalid message data"),
        ("json", {"type": "resize", "cols": "80", "rows": 24},
         "Invalid message data"),
        ("json", {"type": "resize", "cols": -80, "rows": 24},
         "Invalid message data"),
        ("json", {"type": "resize", "cols": 2 ** 64, "rows": 24},
         "Invalid message data"),
        ("text", '{"type":"input","data":"' + "a" * 70000 + '"}',
         "Message too large"),
    ]
    for kind, payload, want in cases:
        if kind == "text":
            ws.send_text(payload)
        elif kind == "binary":
            ws.send_binary(payload)
        else:
            ws.send(payload)
        m, _ = ws.until(lambda m: m["type"] in ("error", "close"),
                        what="error for %r" % (payload,))
        eq(m, {"type": "error", "message": want, "data": want},
           "answer to %r" % (str(payload)[:60],))
    # websocketd (text mode) writes a binary message to the program
    # without a line end.  Alone, it is answered at once, not when the
    # next message comes; glued to the next message, it gets its error
    # and the message its answer.  A binary frame's JSON is never acted
    # on (§3.3: binary frame → Failed to process message).
    ws.send_binary(b"\x00\xff\x01")
    m, _ = ws.until(lambda m: m["type"] in ("error", "pong"), timeout=3,
                    what="error for a binary frame alone")
    eq(m["message"], "Failed to process message", "binary frame alone")
    ws.send_binary(b"\x00\xff\x01")
    ws.send({"type": "ping"})
    m, _ = ws.until(lambda m: m["type"] in ("error", "pong"), what="error")
    eq(m["message"], "Failed to process message", "binary frame")
    m, _ = ws.until(lambda m: m["type"] in ("error", "pong"), what="pong")
    eq(m, {"type": "pong"}, "the ping glued after it")
    ws.send_binary(json.dumps({"type": "input",
                               "data": "echo BIN$((20+3))\r"}).encode())
    m, _ = ws.until(lambda m: m["type"] in ("error", "pong"), timeout=3,
                    what="error for a binary frame of JSON")
    eq(m["message"], "Failed to process message", "binary JSON frame")
    ws.send_binary(json.dumps({"type": "input",
                               "data": "echo BIN$((20+4))\r"}).encode())
    ws.send({"type": "input", "data": "echo TXT$((30+3))\r"})
    out = ws.output_until("TXT33")
    check("BIN23" not in out and "BIN24" not in out,
          "a binary frame's input is not typed: %r" % out[-200:])
    # A message with raw line breaks between its tokens (websocketd splits
    # it into lines) is one message.
    ws.send_text('{"type":\n"ping"\n}')
    m, _ = ws.until(lambda m: m["type"] in ("error", "pong"), what="pong")
    eq(m, {"type": "pong"}, "a ping over three lines")
    # Exactly 65,536 bytes is not too large.
    pad = 65536 - len('{"type":"pong","pad":""}')
    ws.send_text('{"type":"pong","pad":"' + " " * pad + '"}')
    ws.send({"type": "resize", "cols": 120, "rows": 40})
    ws.send({"type": "ping"})
    m, seen = ws.until(lambda m: m["type"] == "pong", what="pong")
    check(not [s for s in seen if s["type"] == "error"],
          "no error for a 65,536-byte message: %r" % seen[-3:])
    # The pane gets the new size (less tmux's status line).
    time.sleep(0.3)
    ws.send({"type": "input", "data": "echo SIZE=$(stty size)=\r"})
    ws.output_until("SIZE=39 120=")
    ws.close()


def test_ws_reconnect_shows_screen():
    u, env = env_user()
    ws, w = open_term(u, env)
    ws.send({"type": "input", "data": "clear; echo BEFORE$((1+1))RECONNECT\r"})
    ws.output_until("BEFORE2RECONNECT")
    ws.close()
    wait_slots(u["id"], 0)
    ws, w = open_term(u, env)
    m = ws.recv(10)
    eq(m, {"type": "info", "message": "Reattached to existing session"},
       "message after welcome")
    ws.output_until("BEFORE2RECONNECT")
    ws.close()


def test_ws_two_sockets_one_session():
    u, env = env_user()
    a, _ = open_term(u, env)
    b, _ = open_term(u, env)
    a.send({"type": "input", "data": "echo SHARED$((3+4))SCREEN\r"})
    a.output_until("SHARED7SCREEN")
    b.output_until("SHARED7SCREEN")
    a.close()
    b.close()


def test_ws_utf8_across_reads():
    u, env = env_user()
    ws, _ = open_term(u, env)
    # U+1F600 written in two halves with a pause between them, then an
    # invalid byte: output stays valid UTF-8 and the emoji arrives whole.
    ws.send({"type": "input", "data":
             "printf '\\101\\360\\237'; sleep 0.4; "
             "printf '\\230\\200\\132\\n'\r"})
    text = ws.output_until("\U0001F600\x5a")
    # (tmux may move the cursor between the A and the rest.)
    check("\U0001F600Z" in text, "emoji intact: %r" % text[-300:])
    check("\ufffd" not in text, "no replacement character: %r" % text[-300:])
    ws.send({"type": "input", "data": "echo ünïcødé €\r"})
    ws.output_until("ünïcødé €")
    ws.close()


def _try_open(u, env, kind, results, i, barrier):
    barrier.wait()
    path = "/api/v1/ws/%s/%s?token=%s" % (kind, env, u["access_token"])
    ws = wsclient.connect(path)
    if isinstance(ws, wsclient.Refused):
        results[i] = ("refused", ws.status, None)
        return
    m = ws.recv(20)
    results[i] = (m and m.get("type"), m, ws)


def test_ws_connection_cap():
    u, env = env_user()
    n = 15
    results = [None] * n
    barrier = threading.Barrier(n)
    threads = [threading.Thread(target=_try_open, args=(
        u, env, "terminal" if i % 2 else "logs", results, i, barrier))
        for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    kinds = [r and r[0] for r in results]
    eq(kinds.count("welcome"), 10, "welcomes (%r)" % kinds)
    eq(kinds.count("close"), 5, "closes (%r)" % kinds)
    for r in results:
        if r[0] == "close":
            eq(r[1], {"type": "close", "code": 1008,
                      "reason": "Too many connections"}, "close message")
    eq(slots(u["id"]), 10, "slots held")
    for r in results:
        if r[0] in ("welcome", "close"):
            r[2].close()
    wait_slots(u["id"], 0)
    # A slot is free again once a socket closes.
    ws, _ = open_term(u, env)
    ws.close()


def test_ws_killed_clients_leave_session():
    u, env = env_user()
    ws, _ = open_term(u, env)
    ws.send({"type": "input", "data": "echo KEEP$((2*21))ALIVE\r"})
    ws.output_until("KEEP42ALIVE")
    ws.close()
    wait_slots(u["id"], 0)
    base = len(websocketd_children())
    for rnd in range(10):
        socks = [open_term(u, env)[0] for _ in range(10)]
        # Output in flight on every socket, then the clients vanish.
        socks[0].send({"type": "input", "data": "seq 1 30000\r"})
        time.sleep(0.05)
        for s in socks:
            s.kill()
        # Each killed client's program notices, detaches and frees its
        # slot (the next round needs all ten).
        wait_slots(u["id"], 0)
    deadline = time.time() + 10
    while time.time() < deadline and (len(websocketd_children()) > base or
                                      slots(u["id"]) > 0):
        time.sleep(0.1)
    eq(len(websocketd_children()), base, "ws programs left running")
    eq(slots(u["id"]), 0, "slots left")
    eq(sql("SELECT count(*) FROM terminal_sessions WHERE user_id = :'p1' "
           "AND active", u["id"]), [["0"]], "active session rows")
    # The session lived through it all: the earlier screen is still there.
    ws, _ = open_term(u, env)
    eq(ws.recv(10), {"type": "info",
                     "message": "Reattached to existing session"}, "info")
    ws.send({"type": "input", "data": "clear; echo STILL$((1+2))HERE\r"})
    ws.output_until("STILL3HERE")
    ws.close()


def proc_children():
    """{pid: [child pids]} of every process right now."""
    kids = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(p))
    return kids


def descendants(pid):
    kids, out, todo = proc_children(), [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ws_killed_program_takes_its_client():
    """A terminal program killed outright (SIGKILL: no detach) takes its
    tmux client with it, the one in the environment's sandbox included,
    and the session lives on."""
    u, env = env_user()
    before = set(websocketd_children())
    ws, _ = open_term(u, env)
    progs = [p for p in websocketd_children() if p not in before]
    eq(len(progs), 1, "the new terminal program")
    tree = descendants(progs[0])
    check(tree, "the terminal program has its tmux client")
    if sandboxed(env):
        inside = [p for p in tree if alive(p) and
                  os.readlink("/proc/%d/ns/pid" % p) == sandbox_pid_ns(env)]
        check(inside, "a process of the client is in the sandbox: %r" % tree)
    os.kill(progs[0], signal.SIGKILL)
    deadline = time.time() + 5
    while time.time() < deadline and any(alive(p) for p in tree):
        time.sleep(0.05)
    eq([p for p in tree if alive(p)], [], "the program's processes left")
    ws.kill()
    ws, _ = open_term(u, env)
    eq(ws.recv(10), {"type": "info",
                     "message": "Reattached to existing session"}, "info")
    ws.close()


def test_ws_pump_not_frozen_by_stalled_client():
    """ws/terminal-pump (what every terminal socket's program pumps with)
    whose pty floods while its stdout is never read, as when a client
    stays connected but stops reading and every buffer up to websocketd
    has filled.  Its idle timer and SIGTERM must still end it; both used
    to wait for ever on the blocked write (tmux itself throttles a slow
    client, so through the stack this takes hours to show, not seconds)."""
    pump = os.path.join(harness.ROOT, "ws", "terminal-pump")
    ident = "0123456789abcdef01234567"
    for how in ("idle", "SIGTERM"):
        m, s = os.openpty()
        flood = subprocess.Popen(["sh", "-c", "exec yes FLOOD-FLOOD-FLOOD-FLOOD"], stdin=s,
                                 stdout=s, stderr=s, start_new_session=True)
        os.close(s)
        rin, win = os.pipe()
        rout, wout = os.pipe()
        env = dict(os.environ, DP_WS_IDLE_MS="300" if how == "idle" else "86400000",
                   DP_WS_CHECK_MS="86400000", DP_WS_PING_MS="86400000",
                   DEVPOCKET_CONF="/nonexistent/devpocket.conf")
        p = subprocess.Popen([pump, str(m), str(flood.pid), ident, ident, ident, ident, "0",
                              "text", "error", "0", "0", "0", "0"], stdin=rin, stdout=wout,
                             stderr=subprocess.DEVNULL, pass_fds=(m,), env=env)
        os.close(rin)
        os.close(wout)
        os.close(m)
        try:
            time.sleep(1.5)     # the pipe is full within milliseconds
            if how == "SIGTERM":
                check(p.poll() is None, "pump running before the SIGTERM")
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=8)
            except subprocess.TimeoutExpired:
                fail("%s: the pump never ended with its stdout unread" % how)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.killpg(flood.pid, signal.SIGKILL)
            flood.wait()
            os.close(win)
            os.close(rout)


def test_ws_pump_input_backlog_holds_back():
    """Keystrokes a pty does not take (its program reads nothing) pile up
    to 1 MiB in the pump; past that the pump stops reading its stdin, so
    the client's messages wait in websocketd and TCP instead of being
    dropped with 'Message too large' (which is for frames over 64 KiB)."""
    pump = os.path.join(harness.ROOT, "ws", "terminal-pump")
    ident = "0123456789abcdef01234567"
    m, sl = os.openpty()
    tty.setraw(sl)      # no echo: what is not read stays in the pty
    os.set_blocking(m, False)   # as terminal-full hands it over
    idle = subprocess.Popen(["sleep", "60"], stdin=sl, stdout=sl, stderr=sl,
                            start_new_session=True)
    os.close(sl)
    env = dict(os.environ, DP_WS_IDLE_MS="86400000",
               DP_WS_CHECK_MS="86400000", DP_WS_PING_MS="86400000",
               DEVPOCKET_CONF="/nonexistent/devpocket.conf")
    p = subprocess.Popen([pump, str(m), str(idle.pid), ident, ident, ident,
                          ident, "0", "text", "error", "0", "0", "0", "0"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         pass_fds=(m,), env=env)
    os.close(m)
    line = (json.dumps({"type": "input", "data": "x" * 60000}) + "\n").encode()
    sent = []

    def writer():
        try:
            for _ in range(24):     # 1.4 MB
                p.stdin.write(line)
                p.stdin.flush()
                sent.append(1)
        except (BrokenPipeError, ValueError, OSError):
            pass
    th = threading.Thread(target=writer, daemon=True)
    th.start()
    out = b""
    deadline = time.time() + 4
    os.set_blocking(p.stdout.fileno(), False)
    while time.time() < deadline:
        try:
            chunk = os.read(p.stdout.fileno(), 65536)
            if chunk:
                out += chunk
        except BlockingIOError:
            pass
        time.sleep(0.05)
    try:
        check(b"Message too large" not in out,
              "input dropped: %r" % out[:300])
        check(len(sent) < 24, "all %d messages taken with the pty full"
              % len(sent))
        check(p.poll() is None, "the pump ended")
    finally:
        p.kill()
        p.wait()
        os.killpg(idle.pid, signal.SIGKILL)
        idle.wait()
        th.join(5)


def uuid_hex():
    return hashlib.sha256(os.urandom(16)).hexdigest()[:12]


def env_dir(env):
    return os.path.join(VAR, "envs", env)


def sandboxed(env):
    try:
        with open(os.path.join(env_dir(env), "launch.info")) as f:
            return f.read().strip() != ""
    except OSError:
        return False


def detached_program_view(u, env):
    """What a program that the tmux server makes the terminal's client run
    (detach-client -E) sees: (the folders under local_root, its pid
    namespace)."""
    seen = os.path.join(env_dir(env), "home", "escape-%s.txt" % uuid_hex())
    root = os.path.dirname(env_dir(env))
    ws, _ = open_term(u, env)
    ws.send({"type": "input", "data": "tmux detach-client -E 'ls %s > %s; "
             "readlink /proc/self/ns/pid >> %s'\r" % (root, seen, seen)})
    deadline = time.time() + 15
    while time.time() < deadline and not (os.path.exists(seen) and
                                           len(open(seen).read().split()) >= 2):
        time.sleep(0.1)
    ws.kill()
    with open(seen) as f:
        lines = f.read().split()
    return lines[:-1], lines[-1]


def sandbox_pid_ns(env):
    """The pid namespace of the environment's recorded root process."""
    with open(os.path.join(env_dir(env), "server.pid")) as f:
        return os.readlink("/proc/%s/ns/pid" % f.read().split()[0])


def test_ws_tmux_client_stays_sandboxed():
    """The tmux server is the user's, and a server can make its client run
    any program (detach-client -E).  The client of a sandboxed environment
    must therefore run in the sandbox: it joins the running sandbox's
    namespaces, so the program sees only its own environment's folder, in
    the environment's pid namespace, not the host's (where every
    environment of the same uid would be open to it)."""
    u, env = env_user()
    if not sandboxed(env):
        fail("this test needs the stack's environments in bubblewrap")
    folders, ns = detached_program_view(u, env)
    eq(folders, [env], "the environments the detached client's program sees")
    check(ns != os.readlink("/proc/self/ns/pid"),
          "its pid namespace is not the host's: %r" % ns)
    eq(ns, sandbox_pid_ns(env), "it is in the environment's pid namespace")


def test_ws_programs_see_the_overrides():
    """The DEVPOCKET_<SECTION>_<KEY> overrides the stack was started with
    reach the ws programs too (websocketd passes only what --passenv
    names), so they run on the configuration the responders run on."""
    want = {k: v for k, v in os.environ.items()
            if k.startswith("DEVPOCKET_") and k != "DEVPOCKET_CONF"}
    if not want:
        fail("this test needs the stack started with an override "
             "(tests/run-all.sh sets DEVPOCKET_GOOGLE_*)")
    u, env = env_user()
    ws, _ = open_term(u, env)
    seen = {}
    for pid in websocketd_children():
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                for kv in f.read().split(b"\0"):
                    k, _, v = kv.decode(errors="replace").partition("=")
                    if k in want:
                        seen[k] = v
        except OSError:
            continue
    ws.close()
    eq(seen, want, "the overrides in the ws program's environment")


def stack_conf(section, key):
    """A key of the stack's devpocket.conf (None when absent)."""
    import configparser
    c = configparser.ConfigParser(interpolation=None)
    c.read(os.path.join(VAR, "devpocket.conf"))
    return c.get(section, key, fallback=None)


def test_ws_sandbox_hides_the_service():
    """An environment sees nothing of the service: not its configuration
    (database URL, SMTP password), not its keys (jwt.key mints anyone's
    token), not the mail folder, the state or the responders' and
    PostgreSQL's sockets.  A packaged worker runs environments as the
    service's own user, which could read them all; here they run as
    nobody, and the view must be the same.  The system stays readable."""
    u, env = env_user()
    if not sandboxed(env):
        fail("this test needs the stack's environments in bubblewrap")
    out = os.path.join(env_dir(env), "home", "hidden-%s.txt" % uuid_hex())
    files = [os.path.join(VAR, "devpocket.conf"),
             stack_conf("auth", "jwt_key_file"),
             stack_conf("auth", "secret_key_file")]
    for f in files:
        check(f and os.path.getsize(f) > 0, "%s has something to hide" % f)
    dirs = [stack_conf("web", "runtime_dir"), stack_conf("mail", "file_dir"),
            stack_conf("web", "state_dir"), harness.PG_SOCK,
            "/run/postgresql"]
    cmd = ("{ cat %s 2>/dev/null | wc -c; "
           "find %s -mindepth 1 2>/dev/null | wc -l; "
           "ls -A %s; test -r /etc/passwd && echo system; } > %s.tmp; "
           "mv %s.tmp %s" % (" ".join(files), " ".join(dirs), VAR, out, out,
                              out))
    ws, _ = open_term(u, env)
    ws.send({"type": "input", "data": cmd + "\r"})
    deadline = time.time() + 15
    while time.time() < deadline and not os.path.exists(out):
        time.sleep(0.1)
    ws.close()
    with open(out) as f:
        got = f.read().split()
    eq(got, ["0", "0", "envs", "system"], "bytes of the service's files, "
       "entries of its folders, what is left of its var folder, /etc")


def own_sandbox_when(env, u, record):
    """With server.pid rewritten to record (restored after), the client
    cannot join the running sandbox; it must get a sandbox of its own with
    the same view instead of running on the host."""
    rec = os.path.join(env_dir(env), "server.pid")
    with open(rec) as f:
        saved = f.read()
    with open(rec, "w") as f:
        f.write(record)
    try:
        folders, ns = detached_program_view(u, env)
    finally:
        with open(rec, "w") as f:
            f.write(saved)
    eq(folders, [env], "the environments the detached client's program sees")
    check(ns not in (os.readlink("/proc/self/ns/pid"), sandbox_pid_ns(env)),
          "its pid namespace is its own: %r" % ns)


def no_client_when(env, u, name, text):
    """With the environment's file name holding text (restored after), a
    terminal gets no welcome: it closes (1011, or 1008 should the worker
    have seen the environment down meanwhile)."""
    path = os.path.join(env_dir(env), name)
    with open(path) as f:
        saved = f.read()
    with open(path, "w") as f:
        f.write(text)
    try:
        ws = wsclient.connect(term_path(env, u["access_token"]))
        check(not isinstance(ws, wsclient.Refused), "upgraded: %r" % ws)
        m = ws.recv(15)
        eq((m or {}).get("type"), "close", "no welcome: %r" % m)
        check(m.get("code") in (1011, 1008), "close code: %r" % m)
        ws.kill()
    finally:
        with open(path, "w") as f:
            f.write(saved)


def test_ws_no_client_without_root_record():
    """The sandbox's recorded first process is not the one recorded (a
    wrong start time, as when it is gone and its pid taken): the socket may
    still answer (another environment's server, passed on), but the
    environment is not running, and no tmux client starts for it."""
    u, env = env_user()
    if not sandboxed(env):
        fail("this test needs the stack's environments in bubblewrap")
    with open(os.path.join(env_dir(env), "server.pid")) as f:
        pid, start = f.read().split()
    no_client_when(env, u, "server.pid", "%s %d\n" % (pid, int(start) + 1))


def test_ws_no_client_on_host_for_sandboxed_environment():
    """An environment launched in a sandbox whose bubblewrap info is
    missing (a launch that failed before the sandbox was up) is not
    running: no client starts, and none on the host."""
    u, env = env_user()
    if not sandboxed(env):
        fail("this test needs the stack's environments in bubblewrap")
    no_client_when(env, u, "launch.info", "")
    ws, _ = open_term(u, env)
    ws.close()


def test_ws_tmux_client_sandbox_when_join_refused():
    """The recorded process is no sandbox the environment user may join
    (here root's, in a mount namespace of its own: setns is refused, as on
    a kernel without setns on a pidfd): a sandbox of its own."""
    u, env = env_user()
    if not sandboxed(env):
        fail("this test needs the stack's environments in bubblewrap")
    other = subprocess.Popen(["unshare", "--mount", "sleep", "60"])
    try:
        deadline = time.time() + 5
        while (time.time() < deadline and os.readlink(
                "/proc/%d/ns/mnt" % other.pid) == os.readlink(
                "/proc/self/ns/mnt")):
            time.sleep(0.02)
        with open("/proc/%d/stat" % other.pid) as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
        own_sandbox_when(env, u, "%d %s\n" % (other.pid, start))
    finally:
        other.kill()
        other.wait()


def proc_line(pid, name, prefix):
    with open("/proc/%d/%s" % (pid, name)) as f:
        return [l for l in f.read().splitlines() if l.startswith(prefix)]


def test_ws_fake_server_programs_stay_in_environment():
    """The socket is the user's: a server on it can make any of the
    driver's clients run a program of the user's choice (MSG_SHELL).  What
    that program leaves behind must be one more process of the
    environment: in its pid namespace, its cgroup and its limits, and gone
    when the environment stops (whose kill-server client meets the fake
    too)."""
    u, env = env_user()
    if not sandboxed(env):
        fail("this test needs the stack's environments in bubblewrap")
    home = os.path.join(env_dir(env), "home")
    mark = "299.%d" % (int(uuid_hex()[:8], 16) % 1000000)
    st = os.stat(home)
    prog = os.path.join(home, "left.sh")
    with open(prog, "w") as f:
        # The escape: a terminal's attach takes the client as joined
        # and does not kill it before its program is done.
        # (The pause: until setsid has run, the pty's hangup when the
        # terminal ends would take the sleep with it.)
        f.write("#!/bin/sh\nsetsid sleep %s </dev/null >/dev/null 2>&1 &\n"
                "sleep 0.3\necho \"$$ $*\" >> %s/ran.log\n"
                "printf '\\033[0m'\nsleep 1\n" % (mark, home))
    os.chown(prog, st.st_uid, st.st_gid)
    os.chmod(prog, 0o755)
    root = int(open(os.path.join(env_dir(env), "server.pid")).read().split()[0])
    server = [p for p in descendants(root) if alive(p)]
    check(server, "the environment's processes")
    ws, _ = open_term(u, env)
    ready = os.path.join(home, "fake.ready")
    ws.send({"type": "input", "data": "python3 %s %s/run/tmux.sock "
             "%s/left.sh %s 2>%s/fake.err &\r" % (
                 os.path.join(harness.ROOT, "tests", "fake_tmux.py"),
                 env_dir(env), home, ready, home)})
    deadline = time.time() + 15
    while time.time() < deadline and not os.path.exists(ready):
        time.sleep(0.05)
    check(os.path.exists(ready), "the fake server listens")
    ws.kill()
    # A new socket: its probe and its attach client both meet the fake.
    r = wsclient.connect(term_path(env, u["access_token"]))
    if not isinstance(r, wsclient.Refused):
        r.recv(5)
        r.kill()

    def left():
        out = []
        for p in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    if f.read().split(b"\0")[:2] == [b"sleep", mark.encode()]:
                        out.append(int(p))
            except OSError:
                pass
        return out
    ran = os.path.join(home, "ran.log")
    deadline = time.time() + 10
    while time.time() < deadline and not left():
        time.sleep(0.05)
    found = left()
    check(found, "a client ran the fake server's program: %r (%s)" % (
        found, open(ran).read() if os.path.exists(ran) else "none"))
    want_cg = proc_line(server[0], "cgroup", "0::")
    want_as = proc_line(server[0], "limits", "Max address space")
    want_np = proc_line(server[0], "limits", "Max processes")
    for p in found:
        eq(os.readlink("/proc/%d/ns/pid" % p), sandbox_pid_ns(env),
           "pid namespace of a left-over program %s" % proc_line(
               p, "status", "NSpid"))
        eq(proc_line(p, "cgroup", "0::"), want_cg,
           "cgroup of a left-over program")
        eq(proc_line(p, "limits", "Max address space"), want_as,
           "address-space limit of a left-over program")
        eq(proc_line(p, "limits", "Max processes"), want_np,
           "process limit of a left-over program")
    r = post_empty("/api/v1/environments/%s/stop" % env, u)
    eq(r.status, 200, "stop: %s" % r.body[:200])
    wait_status(u, env, "stopped")
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(p) for p in found):
        time.sleep(0.05)
    eq([p for p in found if alive(p)], [], "left-over programs after the stop")


PRELOAD_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void
record(void)
{
	char ns[64] = "", exe[256] = "";
	const char *f = getenv("DP_PRELOAD_LOG");
	FILE *o;

	(void)!readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
	(void)!readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (f != NULL && (o = fopen(f, "a")) != NULL) {
		fprintf(o, "%s %s\n", exe, ns);
		fclose(o);
	}
}
"""


def test_ws_user_variables_stay_inside():
    """The user's environment_variables reach the environment's processes,
    not the programs the driver runs on the host (bwrap, the tmux
    clients): LD_PRELOAD there would be the user's code outside the
    sandbox.  The preloaded library records every process that loads it
    where only a host process can write (the sandbox sees / read-only)."""
    d = os.path.join(VAR, "preload-" + uuid_hex())
    os.makedirs(d)
    os.chmod(d, 0o777)
    lib, log = os.path.join(d, "rec.so"), os.path.join(d, "loaded")
    with open(os.path.join(d, "rec.c"), "w") as f:
        f.write(PRELOAD_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", lib, os.path.join(d, "rec.c")], check=True)
    os.chmod(lib, 0o755)
    u, env = env_user(variables={"LD_PRELOAD": lib, "DP_PRELOAD_LOG": log})
    if not sandboxed(env):
        fail("this test needs the stack's environments in bubblewrap")
    ws, _ = open_term(u, env)
    ws.send({"type": "input", "data": "echo PRE=${LD_PRELOAD##*/}=\r"})
    ws.output_until("PRE=rec.so=")
    ws.close()
    host = []
    if os.path.exists(log):
        with open(log) as f:
            host = f.read().splitlines()
    eq(host, [], "host processes that ran with the user's LD_PRELOAD")


def test_ws_stop_closes_terminal():
    u, env = env_user()
    ws, _ = open_term(u, env)
    logs = wsclient.connect("/api/v1/ws/logs/%s?token=%s&lines=0" % (
        env, u["access_token"]))
    eq(logs.recv(10)["type"], "welcome", "logs welcome")
    r = post_empty("/api/v1/environments/%s/stop" % env, u)
    eq(r.status, 200, "stop")
    m, seen = ws.until(lambda m: m["type"] == "close", timeout=40,
                       what="close after stop")
    eq(m, {"type": "close", "code": 1000, "reason": "Environment stopped"},
       "close")
    check({"type": "info", "message": "Environment stopped"} in seen,
          "info before the close: %r" % seen[-3:])
    m, _ = logs.until(lambda m: m["type"] == "status", timeout=10,
                      what="status message")
    eq((m["environment_id"], m["status"]), (env, "stopped"), "status")
    # The change's own time (updated_at), with its microseconds, not the
    # poll's second.
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$",
                   m["timestamp"]) and not m["timestamp"].endswith(
                       ".000000Z"), "status timestamp %r" % m["timestamp"])
    # Delete: the logs socket reports it and closes.
    r = http("DELETE", "/api/v1/environments/" + env, headers=u["headers"])
    eq(r.status, 204, "delete")
    m, _ = logs.until(lambda m: m["type"] == "close", timeout=10,
                      what="logs close")
    eq(m, {"type": "close", "code": 1000, "reason": "Environment terminated"},
       "logs close")
    wait_slots(u["id"], 0)


def test_ws_logout_closes_socket():
    u, env = env_user()
    ws, _ = open_term(u, env)
    r = post_empty("/api/v1/auth/logout", u)
    check(r.status in (200, 204), "logout: %d" % r.status)
    # The session is re-checked at least every 60 s (30 s by default).
    m, _ = ws.until(lambda m: m["type"] == "close", timeout=65,
                    what="close after logout")
    eq(m, {"type": "close", "code": 1008, "reason": "Authentication failed"},
       "close")
    wait_slots(u["id"], 0)


# ----------------------------------------------------------------- logs

def add_log(env, level, source, message):
    sql("INSERT INTO environment_logs (environment_id, level, message, "
        "source) VALUES (:'p1', :'p2', :'p3', :'p4')", env, level, message,
        source)


def test_ws_logs_replay_and_follow():
    u, env = env_user()
    for i in range(8):
        add_log(env, "info", "container", "line %d" % i)
    tok = u["access_token"]
    ws = wsclient.connect("/api/v1/ws/logs/%s?token=%s&lines=5&follow=false"
                          % (env, tok))
    w = ws.recv(10)
    eq(w["type"], "welcome", "welcome")
    eq(w["environment"]["pty_enabled"], False, "pty_enabled")
    check("session_id" not in w, "no session_id on logs sockets")
    m, seen = ws.until(lambda m: m["type"] == "close", what="close")
    eq(m, {"type": "close", "code": 1000, "reason": "Log stream complete"},
       "close")
    eq([s["message"] for s in seen], ["line %d" % i for i in range(3, 8)],
       "replayed, oldest first")
    eq(sorted(seen[0]), ["level", "message", "source", "timestamp", "type"],
       "log keys")
    check(seen[0]["timestamp"].endswith("Z"), "timestamp form")
    # Invalid lines fall back to 100; lines=0 replays nothing.
    ws = wsclient.connect("/api/v1/ws/logs/%s?token=%s&lines=-4&follow=0"
                          % (env, tok))
    eq(ws.recv(10)["type"], "welcome", "welcome")
    m, seen = ws.until(lambda m: m["type"] == "close", what="close")
    check(len([s for s in seen if s["type"] == "log"]) >= 8,
          "lines=-4 is the default 100")
    ws = wsclient.connect("/api/v1/ws/logs/%s?token=%s&lines=0" % (env, tok))
    eq(ws.recv(10)["type"], "welcome", "welcome")
    check(ws.recv(1) is None, "nothing replayed with lines=0")
    # Live entries.
    add_log(env, "warning", "system", "live system entry")
    m = ws.until(lambda m: m["type"] == "log")[0]
    eq((m["message"], m["level"], m["source"]),
       ("live system entry", "warning", "system"), "live log")
    add_log(env, "info", "install", "Running step 2/4: make all")
    m = ws.until(lambda m: m["type"] == "installation_status")[0]
    eq(m, {"type": "installation_status", "environment_id": env,
           "status": "installing", "message": "Running step 2/4: make all",
           "progress": 25}, "installation_status")
    add_log(env, "warning", "install", "Command failed (exit 2): make all")
    m = ws.until(lambda m: m["type"] == "installation_warning")[0]
    eq(m, {"type": "installation_warning", "environment_id": env,
           "warning": "Command failed (exit 2): make all",
           "is_critical": False}, "installation_warning")
    add_log(env, "info", "install", "compiling foo.c")
    m = ws.until(lambda m: m["type"] == "installation_log")[0]
    eq((m["environment_id"], m["data"]), (env, "compiling foo.c"),
       "installation_log")
    # Client messages: ping works, terminal messages do not.
    ws.send({"type": "input", "data": "x"})
    eq(ws.until(lambda m: m["type"] == "error")[0]["message"],
       "Unknown message type", "input on a logs socket")
    ws.send({"type": "ping"})
    ws.until(lambda m: m["type"] == "pong")
    ws.close()
    wait_slots(u["id"], 0)



def test_ws_logs_entry_notifies():
    """A new entry notifies devpocket_env_logs with its environment's id:
    ws/logs LISTENs on it and sends the entry at once, not at its next
    poll (nothing sent it before sql/008)."""
    u, env = env_user()
    p = subprocess.run(
        [harness._psql(), "-X", "-q", "-h", harness.PG_SOCK, "-U", "devpocket",
         "-d", "devpocket", "-v", "ON_ERROR_STOP=1"],
        input="LISTEN devpocket_env_logs;\nINSERT INTO environment_logs "
              "(environment_id, level, message, source) VALUES ('%s', 'info', "
              "'notify me', 'system');\nSELECT 1;\n" % env,
        capture_output=True, text=True, timeout=30)
    eq(p.returncode, 0, "psql: %s" % p.stderr[-300:])
    check('"devpocket_env_logs" with payload "%s"' % env in p.stdout,
          "the notification: %r" % p.stdout[-500:])

def test_ws_logs_output_that_looks_like_a_warning():
    """Only the driver's warning entries (level warning) are
    installation_warning: a command's own output line with the same words
    is installation_log, and does not make the install partial."""
    u, env = env_user()
    ws = wsclient.connect("/api/v1/ws/logs/%s?token=%s&lines=0"
                          % (env, u["access_token"]))
    eq(ws.recv(10)["type"], "welcome", "welcome")
    add_log(env, "info", "install", "Command failed (exit 1): printed by make")
    m = ws.until(lambda m: m["type"].startswith("installation_"))[0]
    eq((m["type"], m.get("data")),
       ("installation_log", "Command failed (exit 1): printed by make"),
       "an output line")
    ws.close()
    wait_slots(u["id"], 0)


def test_ws_logs_status_after_its_entries():
    """A status change committed with more entries than one poll reads
    (500) reaches the client after every one of them."""
    u, env = env_user()
    ws = wsclient.connect("/api/v1/ws/logs/%s?token=%s&lines=0"
                          % (env, u["access_token"]))
    eq(ws.recv(10)["type"], "welcome", "welcome")
    sql("BEGIN; INSERT INTO environment_logs (environment_id, level, "
        "message, source) SELECT :'p1', 'info', 'out ' || i, 'install' "
        "FROM generate_series(1, 700) i ORDER BY i; UPDATE environments "
        "SET status = 'error' WHERE id = :'p1'; COMMIT", env)
    m, seen = ws.until(lambda m: m["type"] == "status", timeout=15,
                       what="status")
    eq(m["status"], "error", "status")
    out = [x["data"] for x in seen if x["type"] == "installation_log"]
    eq(len(out), 700, "install lines before the status")
    eq(out[-1], "out 700", "the last of them")
    ws.close()
    wait_slots(u["id"], 0)

def test_ws_logs_every_status_change():
    """Every status change is sent, in order, however short it lasted
    (sql/010): four changes committed together, which the poll (the
    status now against the last seen) reported as none; then a real
    restart on the local driver, whose creating lasts a few ms."""
    u, env = env_user()
    ws = wsclient.connect("/api/v1/ws/logs/%s?token=%s&lines=0"
                          % (env, u["access_token"]))
    eq(ws.recv(10)["type"], "welcome", "welcome")
    sql("BEGIN; UPDATE environments SET status = 'stopped' WHERE id = :'p1'; "
        "UPDATE environments SET status = 'creating' WHERE id = :'p1'; "
        "UPDATE environments SET status = 'installing' WHERE id = :'p1'; "
        "UPDATE environments SET status = 'running', updated_at = now() "
        "WHERE id = :'p1'; COMMIT", env)
    got = []
    for _ in range(4):
        m, _seen = ws.until(lambda m: m["type"] == "status", timeout=10,
                            what="status %d" % (len(got) + 1))
        got.append(m["status"])
    eq(got, ["stopped", "creating", "installing", "running"], "each change")
    want = sql("SELECT to_char(updated_at AT TIME ZONE 'UTC', "
               "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM environments "
               "WHERE id = :'p1'", env)[0][0]
    eq(m["timestamp"], want, "the change's time")
    m, _seen = ws.until(lambda m: m["type"] == "installation_complete",
                        timeout=10, what="installation_complete")
    r = post_empty("/api/v1/environments/%s/restart" % env, u)
    eq(r.status, 200, "restart: %s" % r.body[:200])
    seen = []
    while not seen or seen[-1] != "running":
        m, _seen = ws.until(lambda m: m["type"] == "status", timeout=30,
                            what="the restart's statuses %r" % seen)
        seen.append(m["status"])
    eq(seen, ["creating", "installing", "running"], "the restart's changes")
    m, _seen = ws.until(lambda m: m["type"] == "installation_complete",
                        timeout=10, what="installation_complete after running")
    ws.close()
    wait_slots(u["id"], 0)


# ---- the admission ticket (lib/wsticket.h) ----------------------------

def jwt_claims(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint_ticket(token, env, slot, session, exp=None, sign_token=None,
                env_over=None):
    """A ticket as the auth responder writes one, signed here with the
    stack's JWT key: what authorize-ws hands ws/terminal through nginx."""
    with open(os.path.join(VAR, "keys", "jwt.key")) as f:
        key = bytes.fromhex(f.read().strip())
    c = jwt_claims(token)
    row = sql("SELECT e.name, t.name, e.docker_image, e.port, e.cluster_id "
              "FROM environments e JOIN templates t ON t.id = e.template_id "
              "WHERE e.id = :'p1'", env)[0]
    e = {"id": env, "name": row[0], "template": row[1], "status": "running",
         "installation_completed": True, "image": row[2],
         "port": int(row[3] or 0), "cluster_id": row[4], "provider": "local"}
    e.update(env_over or {})
    payload = {"v": 1, "exp": exp if exp is not None else int(time.time()) + 10,
               "th": hashlib.sha256((sign_token or token).encode()).hexdigest(),
               "kind": "terminal", "user": c["sub"], "sid": c["sid"],
               "verified": True, "slot": slot, "session": session, "env": e}
    body = b64url(json.dumps(payload).encode())
    sub = hmac.new(key, b"devpocket ws ticket v1", hashlib.sha256).digest()
    mac = hmac.new(sub, body.encode(), hashlib.sha256).digest()
    return body + "." + b64url(mac)


def ticket_of(t):
    """The session a ticket names (None for no ticket at all)."""
    if "." not in t:
        return None
    body = t.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(
        body + "=" * (-len(body) % 4)))["session"]


def reserve(u, env):
    """A reserved slot and its session row, as authorize-ws leaves them."""
    slot, session = unique_id(), unique_id()
    sql("INSERT INTO ws_connections (id, user_id, kind, environment_id, pid, "
        "host, session_id) VALUES (:'p1', :'p2', 'terminal', :'p3', 0, "
        ":'p4', :'p5')", slot, u["id"], env, socket.gethostname(), session)
    sql("INSERT INTO terminal_sessions (id, user_id, type, environment_id) "
        "VALUES (:'p1', :'p2', 'environment', :'p3')", session, u["id"], env)
    return slot, session


def unique_id():
    return os.urandom(12).hex()


def websocketd_base():
    port = urllib.parse.urlsplit(harness.BASE_URL).port or 80
    return "http://127.0.0.1:%d" % (port + 1)


def direct_term(env, token, ticket):
    """ws/terminal as websocketd runs it, without the web server."""
    ws = wsclient.connect("/terminal/%s?cols=90&rows=30" % env, headers={
        "Authorization": "Bearer " + token, "X-DevPocket-Ticket": ticket},
        base=websocketd_base())
    if isinstance(ws, wsclient.Refused):
        fail("terminal refused: %r" % ws)
    return ws, ws.recv(15)


def slot_pid(slot):
    rows = sql("SELECT pid FROM ws_connections WHERE id = :'p1'", slot)
    return int(rows[0][0]) if rows else None


def test_ws_terminal_goes_on_while_its_check_hangs():
    """The periodic check (login session, status, bytes) runs beside the
    pump: while it waits on the database (here: its session row held
    locked, so its UPDATE blocks until the 10 s kill), keystrokes still
    come back at once."""
    u, env = env_user()
    ws, w = open_term(u, env)
    lock = subprocess.Popen(
        [harness._psql(), "-X", "-q", "-h", harness.PG_SOCK, "-U",
         "devpocket", "-d", "devpocket"], stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        lock.stdin.write("BEGIN; SELECT 1 FROM terminal_sessions WHERE id "
                         "= '%s' FOR UPDATE;\n" % w["session_id"])
        lock.stdin.flush()
        deadline = time.time() + 40     # checks run every 30 s (2 s)
        blocked = False
        while time.time() < deadline and not blocked:
            ws.send({"type": "ping"})   # not idle meanwhile
            blocked = sql("SELECT count(*) FROM pg_stat_activity WHERE "
                          "wait_event_type = 'Lock' AND query LIKE "
                          "'%UPDATE terminal_sessions SET bytes_in%'"
                          ) != [["0"]]
            time.sleep(0.2)
        check(blocked, "no check came to wait on the locked row")
        marker = "live-" + uuid_hex()
        t0 = time.time()
        ws.send({"type": "input", "data": "echo %s\r" % marker})
        ws.output_until(marker + "\r\n", timeout=15)
        check(time.time() - t0 < 2, "the echo took %.1f s while the check "
              "waited" % (time.time() - t0))
    finally:
        lock.stdin.write("ROLLBACK;\n")
        lock.stdin.close()
        lock.wait(timeout=10)
    ws.close()
    wait_slots(u["id"], 0)


def test_ws_shutdown_says_goodbye():
    """A stop (the shipped unit's ExecStop, bin/devpocket-stack stop)
    sends SIGTERM to each socket's program while websocketd still runs:
    the terminal and the logs socket each end with close 1001 'Server
    shutting down' (§3.2), and the tmux session lives on."""
    u, env = env_user()
    before = set(websocketd_children())
    ws, _ = open_term(u, env)
    logs = wsclient.connect("/api/v1/ws/logs/%s?token=%s&lines=0" % (
        env, u["access_token"]))
    eq(logs.recv(10)["type"], "welcome", "logs welcome")
    progs = set(websocketd_children()) - before
    check(len(progs) == 2, "two new ws programs: %r" % progs)
    for pid in progs:
        os.kill(pid, signal.SIGTERM)
    for sock, what in ((ws, "terminal"), (logs, "logs")):
        m, _ = sock.until(lambda m: m["type"] == "close", timeout=10,
                          what="%s close on SIGTERM" % what)
        eq(m, {"type": "close", "code": 1001,
               "reason": "Server shutting down"}, what)
    wait_slots(u["id"], 0)
    ws, _ = open_term(u, env)
    eq(ws.recv(10), {"type": "info",
                     "message": "Reattached to existing session"},
       "the session lived on")
    ws.close()


def test_ws_detach_key_does_not_end_the_socket():
    """C-b d (tmux's detach) typed on the phone would end the socket's
    client as if the session had ended: the key does nothing, and the
    terminal goes on."""
    u, env = env_user()
    ws, _ = open_term(u, env)
    # The shell first (keys typed before tmux takes the terminal are the
    # pty's), then the keys, each on its own.
    marker = uuid_hex()
    ws.send({"type": "input", "data": "echo ready-$((6*7))-%s\r" % marker})
    ws.output_until("ready-42-" + marker, timeout=15)
    ws.send({"type": "input", "data": "\x02d"})
    time.sleep(0.5)
    ws.send({"type": "input", "data": "\x02D"})
    time.sleep(1.5)
    ws.send({"type": "input", "data": "\r"})
    ws.send({"type": "input", "data": "echo still-$((6*7))-%s\r" % marker})
    text = ws.output_until("still-42-" + marker, timeout=10)
    check("[detached" not in text, "tmux detached: %r" % text[-300:])
    ws.close()
    wait_slots(u["id"], 0)


def test_ws_detach_command_attaches_again():
    """`tmux detach-client` typed in the session detaches the socket's
    own tmux client, but the session lives on (CONTRACT §3.5: only the
    last shell's exit ends it): the terminal attaches again, so the socket
    stays open on the same shell, size, slot and session row.  A session
    that keeps detaching (a sixth time within a minute) ends the socket
    as "Terminal unavailable"; the session is still there afterwards."""
    u, env = env_user()
    ws, w = open_term(u, env, cols=90, rows=28)
    sid = w["session_id"]
    marker = uuid_hex()
    sent = 0

    def typed(s):
        nonlocal sent
        ws.send({"type": "input", "data": s})
        sent += len(s)

    # (The pane is the terminal less tmux's status line.)
    typed("KEEP=%s; echo ready-$((6*7)) SIZE=$(stty size | tr ' ' x)"
          "=END$((1+1))\r" % marker)
    text = ws.output_until("=END2", timeout=15)
    size = re.search(r"ready-42 SIZE=([0-9]+x[0-9]+)=END2", text)
    check(size is not None and size.group(1).endswith("x90"),
          "pane size: %r" % text[-200:])
    for i in range(5):
        typed("tmux detach-client\r")
        ws.output_until("[detached (from session ", timeout=10)
        typed("echo back-%d-$((6*7))-$KEEP SIZE=$(stty size | tr ' ' x)\r"
              % i)
        ws.output_until("back-%d-42-%s SIZE=%s" % (i, marker, size.group(1)),
                        timeout=10)
        eq(slots(u["id"]), 1, "one slot after detach %d" % i)
        eq(sql("SELECT id FROM terminal_sessions WHERE environment_id = "
               ":'p1' AND active", env), [[sid]],
           "the same session row after detach %d" % i)
    typed("tmux detach-client\r")
    m, _ = ws.until(lambda m: m["type"] == "close", timeout=10,
                    what="close after the sixth detach")
    eq((m["code"], m["reason"]), (1011, "Terminal unavailable"),
       "a session that keeps detaching")
    ws.close()
    wait_slots(u["id"], 0)
    eq(ended_session_row(sid, "close_code, bytes_in"),
       [["f", "1011", str(sent)]], "ended session row (bytes kept)")
    ws, _ = open_term(u, env)
    eq(ws.recv(10), {"type": "info",
                     "message": "Reattached to existing session"},
       "the session lived on")
    ws.send({"type": "input", "data": "echo again-$KEEP\r"})
    ws.output_until("again-" + marker, timeout=10)
    ws.close()
    wait_slots(u["id"], 0)


def test_ws_detach_checks_the_login_session_again():
    """Attaching again after a detach checks the socket's login session at
    once (the resume on the pump's path, the check on the in-process
    one), not only at the next periodic check (30 s behind nginx)."""
    u, env = env_user()
    ws, _ = open_term(u, env)
    ws.send({"type": "input", "data": "echo ready-$((6*7))\r"})
    ws.output_until("ready-42", timeout=15)
    sql("UPDATE login_sessions SET revoked_at = now() WHERE user_id = "
        ":'p1'", u["id"])
    ws.send({"type": "input", "data": "tmux detach-client\r"})
    m, _ = ws.until(lambda m: m["type"] == "close", timeout=8,
                    what="close after the detach")
    eq(m, {"type": "close", "code": 1008, "reason": "Authentication failed"},
       "close")
    wait_slots(u["id"], 0)


def test_ws_detached_line_printed_by_a_program():
    """A program that prints tmux's detached line itself (its client did
    not go; after a clear, tmux draws it with nothing after its line end):
    keys typed then are held a second at most, and the program that pumps
    does not spin once the hold is over (it used to, at full CPU, until
    the next key)."""
    u, env = env_user()
    before = set(websocketd_children())
    ws, _ = open_term(u, env)
    mine = [p for p in websocketd_children() if p not in before]
    eq(len(mine), 1, "one new terminal program")
    ws.send({"type": "input", "data": "clear; printf '[detached (from session "
             "x)]\\r\\n'; sleep 4\r"})
    ws.output_until("[detached (from session x)]", timeout=10)
    time.sleep(1.5)             # the hold is over

    def cpu():
        with open("/proc/%d/stat" % mine[0]) as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
    c0 = cpu()
    time.sleep(1.5)
    used = cpu() - c0
    check(used < 0.3, "the terminal program used %.2f s of CPU in 1.5 s "
          "of quiet" % used)
    ws.send({"type": "input", "data": "echo alive-$((2*3))\r"})
    ws.output_until("alive-6", timeout=10)
    ws.close()
    wait_slots(u["id"], 0)


def test_ws_environment_left_running_before_the_program():
    """The environment stopped between the upgrade's check and the
    program's own (here: websocketd reached directly, so no check before):
    the socket says so as a live terminal is told (§3.2), info then close
    1000 with the status's reason."""
    u, env = env_user()
    r = post_empty("/api/v1/environments/%s/stop" % env, u)
    eq(r.status, 200, "stop")
    wait_status(u, env, "stopped")
    ws = wsclient.connect("/terminal/%s" % env, headers={
        "Authorization": "Bearer " + u["access_token"]},
        base=websocketd_base())
    check(not isinstance(ws, wsclient.Refused), "upgraded: %r" % ws)
    eq(ws.recv(15), {"type": "info", "message": "Environment stopped"},
       "info")
    eq(ws.recv(15), {"type": "close", "code": 1000,
                     "reason": "Environment stopped"}, "close")
    ws.kill()
    wait_slots(u["id"], 0)


def test_ws_ticket_admission():
    """A socket with a good ticket is admitted by it: the welcome names
    the ticket's session, the reserved slot is claimed by the socket's
    process, and the end frees it and ends the session row."""
    u, env = env_user()
    tok = u["access_token"]
    slot, session = reserve(u, env)
    ws, w = direct_term(env, tok, mint_ticket(tok, env, slot, session))
    eq(w["type"], "welcome", "welcome")
    eq(w["session_id"], session, "the ticket's session")
    deadline = time.time() + 5
    while time.time() < deadline and slot_pid(slot) == 0:
        time.sleep(0.05)
    pid = slot_pid(slot)
    check(pid and os.path.exists("/proc/%d" % pid), "slot claimed: pid %r"
          % pid)
    check(pid in websocketd_children(), "the claim names the socket's "
          "program (pid %d, websocketd's children %r)" % (
              pid, websocketd_children()))
    eq(slots(u["id"]), 1, "one slot")
    ws.send({"type": "input", "data": "echo TK$((40+2))T\r"})
    ws.output_until("TK42T")
    ws.close()
    wait_slots(u["id"], 0)
    eq(ended_session_row(session, "close_code"), [["f", "1000"]],
       "ended session row")


def test_ws_ticket_refusals_fall_back():
    """A ticket that does not do (expired, forged, for another token or
    another socket's environment) is ignored: ws/terminal-full admits the
    socket itself, with a session of its own.  A good ticket whose reservation is
    gone closes the socket after the welcome."""
    u, env = env_user()
    _, other = env_user()
    tok = u["access_token"]
    good = mint_ticket(tok, env, unique_id(), unique_id())
    body, mac = good.split(".")
    forged = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + \
        "." + mac
    cases = {
        "expired": mint_ticket(tok, env, unique_id(), unique_id(),
                               exp=int(time.time()) - 1),
        "forged": forged,
        "another token": mint_ticket(tok, env, unique_id(), unique_id(),
                                     sign_token=tok + "x"),
        "another environment": mint_ticket(tok, other, unique_id(),
                                           unique_id()),
        "garbage": "not-a-ticket",
    }
    for what, t in cases.items():
        ticket_session = ticket_of(t if what != "forged" else good)
        ws, w = direct_term(env, tok, t)
        eq(w["type"], "welcome", "%s: welcome" % what)
        check(w["session_id"] != ticket_session, "%s: own session" % what)
        eq(sql("SELECT count(*) FROM terminal_sessions WHERE id = :'p1'",
               w["session_id"]), [["1"]], "%s: session row" % what)
        ws.close()
        wait_slots(u["id"], 0)
    # Good, but the reservation is gone (dropped as dead): closed.
    ws, w = direct_term(env, tok, mint_ticket(tok, env, unique_id(),
                                              unique_id()))
    eq(w["type"], "welcome", "welcome before the claim")
    m = ws.until(lambda m: m["type"] == "close")[0]
    eq((m["code"], m["reason"]), (1011, "Service temporarily unavailable"),
       "close without a slot")
    ws.close()
    wait_slots(u["id"], 0)
    # Through the web server a client's own ticket header never counts.
    slot, session = reserve(u, env)
    ws = wsclient.connect(term_path(env, tok), headers={
        "X-DevPocket-Ticket": mint_ticket(tok, env, slot, session)})
    w = ws.recv(15)
    eq(w["type"], "welcome", "welcome through the web server")
    check(w["session_id"] != session, "the client's ticket was ignored")
    ws.close()


def test_ws_slot_claimed_through_web_server():
    """Through the web server (nginx: a ticket; lighttpd: no ticket) the
    socket's slot ends up with the socket's live process."""
    u, env = env_user()
    ws, w = open_term(u, env)
    deadline = time.time() + 5
    pid = 0
    while time.time() < deadline:
        rows = sql("SELECT pid FROM ws_connections WHERE session_id = "
                   ":'p1'", w["session_id"])
        pid = int(rows[0][0]) if rows else 0
        if pid:
            break
        time.sleep(0.05)
    check(pid and os.path.exists("/proc/%d" % pid), "slot pid %r" % pid)
    ws.close()
    wait_slots(u["id"], 0)


def test_ws_dead_socket_rows_dropped():
    """A socket whose program died without cleaning up (kill -9) leaves
    its slot row behind; the user's next socket on this host (or the
    worker's sweep, whichever comes first) drops it and ends its session
    row with 1006."""
    u, env = env_user()
    p = subprocess.Popen(["true"])
    p.wait()                    # a pid that no longer runs
    slot, session = unique_id(), unique_id()
    # The session first: the worker's sweep may drop the row at once.
    sql("INSERT INTO terminal_sessions (id, user_id, type, environment_id) "
        "VALUES (:'p1', :'p2', 'environment', :'p3')", session, u["id"], env)
    sql("INSERT INTO ws_connections (id, user_id, kind, environment_id, pid, "
        "host, session_id) VALUES (:'p1', :'p2', 'terminal', :'p3', :'p4', "
        ":'p5', :'p6')", slot, u["id"], env, str(p.pid), socket.gethostname(),
        session)
    ws, _ = open_term(u, env)
    deadline = time.time() + 5
    while time.time() < deadline and slot_pid(slot) is not None:
        time.sleep(0.05)
    eq(slot_pid(slot), None, "the dead socket's row")
    eq(sql("SELECT active, close_code FROM terminal_sessions WHERE id = "
           ":'p1'", session), [["f", "1006"]], "its session row")
    ws.close()
    wait_slots(u["id"], 0)


def test_ws_drop_locks_environments_in_id_order():
    """devpocket_ws_drop (sql/013) locks the environments of the terminal
    rows it drops in id order, as the template and cluster rewrites (012)
    and the account deletion do, so that none of them deadlocks with it:
    with the lower id held elsewhere it waits there, the higher one still
    free, although the rows (and, as a rule, the table) meet the higher
    one first (007's locked that one, then waited)."""
    from test_environments import Held, wait_backends
    u, a = env_user()
    # Eight pairs: which of two rows a plan meets first is the table's
    # order, or a hash's; 007's fails one of them in most runs.
    for _ in range(8):
        b = unique_id()
        sql("INSERT INTO environments SELECT (jsonb_populate_record(e, "
            "jsonb_build_object('id', :'p2', 'name', e.name || '-2'))).* "
            "FROM environments e WHERE id = :'p1'", a, b)
        lo, hi = sorted([a, b])
        # lo's row version moved after hi's in the table, so that 007's
        # function met hi first (a new version usually goes after the others
        # on its page; the free space map may send it elsewhere, so a few
        # tries: the test then shows less, but 013 must pass either way).
        for _ in range(8):
            if sql("SELECT (SELECT ctid FROM environments WHERE id = :'p1') < "
                   "(SELECT ctid FROM environments WHERE id = :'p2')",
                   hi, lo) == [["t"]]:
                break
            sql("UPDATE environments SET description = description WHERE "
                "id = :'p1'", lo)
        slots_ = []
        for env in (hi, lo):        # hi's row first too
            slot, session = unique_id(), unique_id()
            sql("INSERT INTO terminal_sessions (id, user_id, type, "
                "environment_id) VALUES (:'p1', :'p2', 'environment', :'p3')",
                session, u["id"], env)
            # A live pid on another host: no sweep drops them meanwhile.
            sql("INSERT INTO ws_connections (id, user_id, kind, environment_id, "
                "pid, host, session_id) VALUES (:'p1', :'p2', 'terminal', "
                ":'p3', :'p4', 'elsewhere.example', :'p5')", slot, u["id"], env,
                str(os.getpid()), session)
            slots_.append(slot)
        h = Held("SELECT 1 FROM environments WHERE id = '%s' FOR UPDATE;" % lo)
        done = []
        t = threading.Thread(target=lambda: done.append(sql(
            "SELECT devpocket_ws_drop(:'p1', ARRAY[:'p2', :'p3'])",
            u["id"], slots_[0], slots_[1])))
        t.start()
        try:
            wait_backends("wait_event_type = 'Lock' AND query LIKE "
                          "'%devpocket_ws_drop%'", 1)
            eq(sql("SELECT count(*) FROM (SELECT 1 FROM environments WHERE "
                   "id = :'p1' FOR NO KEY UPDATE SKIP LOCKED) x", hi), [["1"]],
               "the higher id not locked while the drop waits for the lower")
        finally:
            h.end()
            t.join(30)
        check(done != [], "the drop ended")
        eq(sql("SELECT count(*) FROM ws_connections WHERE id IN (:'p1', :'p2')",
               slots_[0], slots_[1]), [["0"]], "both rows dropped")
        eq(sql("SELECT count(*) FROM environments WHERE id IN (:'p1', :'p2') "
               "AND last_activity > now() - interval '1 minute'", lo, hi),
           [["2"]], "both environments marked")
        sql("DELETE FROM environments WHERE id = :'p1'", b)


def test_ws_dead_terminal_row_counts_as_its_close():
    """A dead terminal row dropped by the worker's sweep counts as its
    socket's close (§4.4: activity), so a terminal quiet for long that
    died is not auto-stopped at once after the drop."""
    u, env = env_user()
    p = subprocess.Popen(["true"])
    p.wait()                    # a pid that no longer runs
    slot = unique_id()
    sql("UPDATE environments SET last_activity = now() - interval "
        "'2 hours' WHERE id = :'p1'", env)
    sql("INSERT INTO ws_connections (id, user_id, kind, environment_id, pid, "
        "host) VALUES (:'p1', :'p2', 'terminal', :'p3', :'p4', :'p5')",
        slot, u["id"], env, str(p.pid), socket.gethostname())
    deadline = time.time() + 20     # the sweep runs every 10 s
    while time.time() < deadline and slot_pid(slot) is not None:
        time.sleep(0.1)
    eq(slot_pid(slot), None, "the dead row, dropped by the sweep")
    eq(sql("SELECT last_activity > now() - interval '1 minute' FROM "
           "environments WHERE id = :'p1'", env), [["t"]],
       "last_activity is the drop's")


def seen_age(slot):
    """Seconds since the row's last stamp (sql/009_ws_seen.sql), or None."""
    rows = sql("SELECT extract(epoch FROM now() - seen_at)::int FROM "
               "ws_connections WHERE id = :'p1'", slot)
    return int(rows[0][0]) if rows else None


def test_ws_rows_stamped_and_stale_ones_dropped():
    """Every socket stamps its row at its periodic check; a row not seen
    for 10 minutes is dead whatever its host and process (a host gone for
    good leaves rows whose pid means nothing here): the user's next
    socket drops it, and the socket that held it, should it still live,
    closes 1011 at its next check instead of holding an uncounted slot."""
    u, env = env_user()
    a, _ = open_term(u, env)
    tok = u["access_token"]
    logs = wsclient.connect("/api/v1/ws/logs/%s?token=%s&lines=0" % (env, tok))
    eq(logs.recv(10)["type"], "welcome", "logs welcome")
    wait_slots(u["id"], 2)
    rows = dict(sql("SELECT kind, id FROM ws_connections WHERE user_id = "
                    ":'p1'", u["id"]))
    deadline = time.time() + 5      # the pump's claim stamps it too
    while time.time() < deadline and slot_pid(rows["terminal"]) == 0:
        time.sleep(0.05)
    session = sql("SELECT session_id FROM ws_connections WHERE id = :'p1'",
                  rows["terminal"])[0][0]
    sql("UPDATE ws_connections SET seen_at = now() - interval '11 minutes' "
        "WHERE id = :'p1'", rows["terminal"])
    sql("UPDATE ws_connections SET seen_at = now() - interval '5 minutes' "
        "WHERE id = :'p1'", rows["logs"])
    b, _ = open_term(u, env)
    eq(slot_pid(rows["terminal"]), None, "the stale row, dropped by the "
       "next socket although its process lives")
    eq(sql("SELECT active, close_code FROM terminal_sessions WHERE id = "
           ":'p1'", session), [["f", "1006"]], "its session row")
    check(seen_age(rows["logs"]) >= 290, "a row 5 minutes old stays")
    m, _ = a.until(lambda m: m["type"] == "close", timeout=40,
                   what="close of the socket whose row was dropped")
    eq(m, {"type": "close", "code": 1011,
           "reason": "Service temporarily unavailable"}, "close")
    deadline = time.time() + 40
    while time.time() < deadline and seen_age(rows["logs"]) >= 290:
        time.sleep(0.2)
    check(seen_age(rows["logs"]) < 60, "the logs socket stamped its row")
    b.close()
    logs.close()
    wait_slots(u["id"], 0)


def test_ws_worker_drops_stale_rows_of_any_host():
    """The worker's sweep drops rows of another host not seen for 10
    minutes (their pid is meaningless here: 1 runs on every host), ending
    their sessions with 1006 and counting as the close (§4.4); a row of
    another host seen lately stays, whatever its pid."""
    u, env = env_user()
    gone, fresh, session = unique_id(), unique_id(), unique_id()
    sql("UPDATE environments SET last_activity = now() - interval "
        "'2 hours' WHERE id = :'p1'", env)
    sql("INSERT INTO terminal_sessions (id, user_id, type, environment_id) "
        "VALUES (:'p1', :'p2', 'environment', :'p3')", session, u["id"], env)
    sql("INSERT INTO ws_connections (id, user_id, kind, environment_id, pid, "
        "host, session_id, seen_at) VALUES (:'p1', :'p2', 'terminal', "
        ":'p3', 1, 'gone.invalid', :'p4', now() - interval '11 minutes')",
        gone, u["id"], env, session)
    sql("INSERT INTO ws_connections (id, user_id, kind, environment_id, pid, "
        "host) VALUES (:'p1', :'p2', 'logs', :'p3', 999999, 'other.invalid')",
        fresh, u["id"], env)
    deadline = time.time() + 20     # the sweep runs every 10 s
    while time.time() < deadline and slot_pid(gone) is not None:
        time.sleep(0.1)
    eq(slot_pid(gone), None, "the stale row, dropped by the sweep")
    eq(sql("SELECT active, close_code FROM terminal_sessions WHERE id = "
           ":'p1'", session), [["f", "1006"]], "its session row")
    eq(sql("SELECT last_activity > now() - interval '1 minute' FROM "
           "environments WHERE id = :'p1'", env), [["t"]],
       "last_activity is the drop's")
    eq(slot_pid(fresh), 999999, "another host's row seen lately stays")
    sql("DELETE FROM ws_connections WHERE id = :'p1'", fresh)


def test_ws_no_token_in_web_server_log():
    """A socket's access token in the query (CONTRACT §3.1) never reaches
    the web server's access log (nginx logs the request line with it as
    ***; lighttpd logs the path alone)."""
    u, env = env_user()
    tok = u["access_token"]
    ws, _ = open_term(u, env)       # ?token= (term_path)
    ws.close()
    for name in ("nginx-access.log", "lighttpd-access.log"):
        path = os.path.join(VAR, "log", name)
        if not os.path.exists(path):
            continue
        deadline = time.time() + 10     # logged once the socket is done
        while True:
            with open(path, errors="replace") as f:
                text = f.read()
            if "/api/v1/ws/terminal/" + env in text or \
                    time.time() > deadline:
                break
            time.sleep(0.2)
        check("/api/v1/ws/terminal/" + env in text,
              "%s logged no socket of this test" % name)
        check(tok not in text and tok.split(".")[2] not in text,
              "an access token in %s" % name)
        if name.startswith("nginx"):
            check("token=***" in text, "nginx's line shows where it was")
        return
    fail("no web server access log in %s" % os.path.join(VAR, "log"))


def test_ws_no_token_in_websocketd_log():
    """Behind nginx the access token travels to websocketd in a header:
    websocketd writes the socket's URL into its log (the killed clients
    above leave such lines), and that URL holds no token."""
    if not os.path.exists(os.path.join(VAR, "run", "nginx.pid")):
        return      # lighttpd cannot move it (etc/lighttpd/devpocket.conf)
    with open(os.path.join(VAR, "log", "websocketd.log"),
              errors="replace") as f:
        lines = [l for l in f if "url:'" in l]
    check(lines, "websocketd logged no URL to look at")
    bad = [l for l in lines if "token=" in l]
    eq(bad[:1], [], "URLs with a token in websocketd.log")
