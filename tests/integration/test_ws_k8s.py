"""tests/integration/test_ws_k8s.py: the terminal socket on the kubernetes
driver, end to end: nginx, websocketd, ws/terminal, the driver's attach (a
pty bridged to the pods/exec WebSocket running tmux new-session -A) and
tests/fake-kube/fake_kube.py, whose pod really runs tmux on this host.

The fake is started for the module (TLS with its own CA, a bearer token); a
kubernetes cluster pointing at it is registered with POST /api/v1/clusters
(base64 kubeconfig) and an environment made on it with cluster_id, which
the worker provisions through the driver.  The tests run in order and share
that state; the last one deletes the environment and the cluster, and the
fake is stopped at exit whatever happened."""
import atexit
import base64
import http.client as httpclient
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

from harness import (ROOT, VAR, admin, check, eq, fail, http, log_tail, sql,
                     unique)
import wsclient

FAKE_KUBE = os.path.join(ROOT, "tests", "fake-kube", "fake_kube.py")
RES = {"cpu": "500m", "memory": "1Gi", "storage": "1Gi"}
S = {}


class Fake:
    """fake_kube.py over TLS on a free port."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dp-ws-k8s.")
        self.token = "fake-ws-" + unique("t")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE_KUBE, "--port", "0", "--certs-dir", self.dir,
             "--token", self.token, "--require-field-manager",
             "--start-delay", "0.3", "--max-grace", "2",
             "--state-dir", os.path.join(self.dir, "state")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.dir, "fake.log"), "wb"), text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.close()
            raise AssertionError("fake-kube did not start: %r" % line)
        self.port = int(line.split()[1])
        self.tls = ssl.create_default_context(
            cafile=os.path.join(self.dir, "ca.crt"))

    def kubeconfig(self):
        with open(os.path.join(self.dir, "ca.crt"), "rb") as f:
            ca = base64.b64encode(f.read()).decode()
        return ("apiVersion: v1\nkind: Config\n"
                "clusters:\n- name: fake\n  cluster:\n"
                "    server: https://127.0.0.1:%d\n"
                "    certificate-authority-data: %s\n"
                "users:\n- name: me\n  user:\n    token: %s\n"
                "contexts:\n- name: fake\n  context: {cluster: fake, user: me}\n"
                "current-context: fake\n" % (self.port, ca, self.token))

    def call(self, method, path):
        conn = httpclient.HTTPSConnection("127.0.0.1", self.port,
                                          context=self.tls, timeout=15)
        try:
            conn.request(method, path,
                         headers={"Authorization": "Bearer " + self.token})
            r = conn.getresponse()
            data = r.read()
            return r.status, json.loads(data) if data else None
        finally:
            conn.close()

    def requests(self):
        st, js = self.call("GET", "/_requests")
        eq(st, 200, "GET /_requests")
        return js

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _at_exit():
    """Whatever failed: nothing of the cluster left for the shared stack's
    worker to retry against a dead fake, then the fake goes."""
    try:
        cid = S.get("cluster")
        if cid:
            sql("UPDATE jobs SET state = 'failed', last_error = 'test cleanup' "
                "WHERE state IN ('queued', 'running') AND kind LIKE 'env.%' AND "
                "payload->>'id' IN (SELECT id FROM environments WHERE "
                "cluster_id = :'p1')", cid)
            sql("UPDATE environments SET status = 'terminated', terminated_at = now() "
                "WHERE cluster_id = :'p1' AND status <> 'terminated'", cid)
            sql("UPDATE clusters SET status = 'inactive', is_default = false "
                "WHERE id = :'p1'", cid)
    except BaseException:       # a broken database must not keep the fake
        pass
    if S.get("fake"):
        S["fake"].close()


atexit.register(_at_exit)


def req(method, path, body=None):
    return http(method, path, body=body, headers=S["admin"]["headers"])


def status_of(eid):
    return sql("SELECT status FROM environments WHERE id = :'p1'", eid)[0][0]


def wait_status(eid, want, timeout=40):
    # From the database: polling the API spends the rate limit.
    deadline = time.time() + timeout
    st = None
    while time.time() < deadline:
        st = status_of(eid)
        if st == want:
            return
        if st == "error":
            break
        time.sleep(0.2)
    logs = sql("SELECT message FROM environment_logs WHERE environment_id = :'p1' "
               "ORDER BY id", eid)
    fail("environment %s: status %s, want %s; logs %s; worker %s" % (
        eid, st, want, [r[0] for r in logs][-8:], log_tail("worker", 8)))


def wait_for(what, cond, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    fail("timed out waiting for " + what)


def websocketd_children():
    """Processes websocketd has forked (ws programs) right now."""
    with open(os.path.join(VAR, "run", "websocketd.pid")) as f:
        wpid = f.read().split()[0]
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


def slots(uid):
    return int(sql("SELECT count(*) FROM ws_connections WHERE user_id = :'p1'",
                   uid)[0][0])


def open_term(eid, **q):
    q = dict(q)
    q["token"] = S["admin"]["access_token"]
    ws = wsclient.connect("/api/v1/ws/terminal/%s?%s" % (
        eid, urllib.parse.urlencode(q)))
    if isinstance(ws, wsclient.Refused):
        fail("terminal refused: %r" % ws)
    w = ws.recv(20)
    check(w is not None and w.get("type") == "welcome", "welcome: %r" % w)
    return ws, w


def pod_size(ws, want):
    """`stty size` in the pod's shell shows want ("rows cols") within a
    few tries: a resize takes a moment to travel through tmux."""
    text = ""
    for _ in range(10):
        ws.send({"type": "input", "data": "stty size | sed 's/^/sz=/'\r"})
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            m = ws.recv(max(deadline - time.monotonic(), 0.01))
            if m is not None and m.get("type") == "output":
                text += m["data"]
            if "sz=" + want in text:
                return
        text = text[-300:]
    fail("the pod's pty never had size %s: %r" % (want, text))


def tmux_execs(reqs, ns, eid):
    """The exec requests of the terminal: tmux new-session -A."""
    path = "/api/v1/namespaces/%s/pods/env-%s-0/exec" % (ns, eid)
    return [r for r in reqs if r["path"] == path and
            "new-session" in r["query"].get("command", [])]


# -------------------------------------------------------------------- tests

def test_ws_k8s_setup():
    fk = S["fake"] = Fake()
    adm = S["admin"] = admin()
    r = req("POST", "/api/v1/clusters", {
        "name": "wsk8s-" + unique("c"), "region": "eu-central",
        "provider": "kubernetes",
        "kube_config": base64.b64encode(fk.kubeconfig().encode()).decode()})
    eq(r.status, 201, "POST /clusters: %s" % r.body[:300])
    S["cluster"] = r.json["id"]
    tname = "w" + uuid.uuid4().hex[:12]
    sql("INSERT INTO templates (id, name, display_name, description, category, "
        "docker_image, default_port, default_resources, startup_commands, status) "
        "VALUES (:'p1', :'p2', 'WS k8s', 'test', 'operating_system', 'debian:12', "
        "8080, '{\"cpu\": \"500m\", \"memory\": \"1Gi\", \"storage\": \"1Gi\"}', "
        "'[\"echo ws-k8s-installed\"]', 'active')", uuid.uuid4().hex[:24], tname)
    r = req("POST", "/api/v1/environments", {
        "name": "wsk8s", "template": tname, "cluster_id": S["cluster"],
        "resources": RES})
    eq(r.status, 201, "create: %s" % r.body[:300])
    eq(r.json["cluster_id"], S["cluster"], "on the fake's cluster")
    S["env"] = eid = r.json["id"]
    S["ns"] = "devpocket-u-" + adm["id"]
    wait_status(eid, "running")


def test_ws_k8s_terminal_echo_and_resize():
    if "env" not in S:
        fail("needs the environment of test_ws_k8s_setup")
    fk, eid, adm = S["fake"], S["env"], S["admin"]
    ws, w = open_term(eid, cols=100, rows=30, device_id="k8s-phone")
    eq(w["environment"]["id"], eid, "welcome environment")
    eq(w["environment"]["status"], "running", "welcome status")
    eq(slots(adm["id"]), 1, "slot taken")
    ws.send({"type": "input", "data": "echo K8S$((6*7))TERM\r"})
    ws.output_until("K8S42TERM", 15)
    # The size of the query string reached the pod's pty (tmux keeps one
    # line for its status bar), and a resize message follows on channel 4.
    pod_size(ws, "29 100")
    ws.send({"type": "resize", "cols": 120, "rows": 40})
    pod_size(ws, "39 120")
    # UTF-8 both ways, and bytes a cooked pty would act on (^U) get to the
    # pod's shell untouched.
    ws.send({"type": "input", "data": "junk\x15printf '%s\\n' \"\u00e9t\u00e9-$((2+3))\"\r"})
    ws.output_until("\u00e9t\u00e9-5", 15)
    ex = tmux_execs(fk.requests(), S["ns"], eid)
    eq(len(ex), 1, "one terminal exec")
    q = ex[0]["query"]
    eq(q["command"], ["env", "TERM=xterm-256color", "tmux", "-f",
                      "/etc/devpocket/tmux.conf", "new-session", "-A", "-s",
                      "devpocket_" + eid, "-c", "/root/workspace"],
       "exec command")
    # The client's TERM reached the pod (256 colours, as the local driver).
    ws.send({"type": "input", "data": "tmux display -p 'C#{client_termname}C'\r"})
    ws.output_until("Cxterm-256colorC", 15)
    eq((q.get("tty"), q.get("stdin"), q.get("container")),
       (["true"], ["true"], ["env"]), "tty exec in the container")
    ws.close()
    wait_for("the slot to go", lambda: slots(adm["id"]) == 0, 5)
    # ws/terminal and its bridge are gone; the pod's session stays.
    wait_for("the terminal processes to end", lambda: not websocketd_children(), 5)
    row = sql("SELECT active, bytes_in > 0, bytes_out > 0, close_code FROM "
              "terminal_sessions WHERE id = :'p1'", w["session_id"])
    eq(row, [["f", "t", "t", "1000"]], "ended session row")


def test_ws_k8s_reattach_redraws():
    if "env" not in S:
        fail("needs the environment of test_ws_k8s_setup")
    eid = S["env"]
    ws, w = open_term(eid)
    m = ws.recv(10)
    eq(m, {"type": "info", "message": "Reattached to existing session"},
       "message after welcome")
    ws.output_until("K8S42TERM", 15)
    # Two sockets on one session see the same shell.
    ws2, _ = open_term(eid)
    ws2.send({"type": "input", "data": "echo BOTH$((10+1))SEE\r"})
    ws.output_until("BOTH11SEE", 15)
    ws2.output_until("BOTH11SEE", 15)
    ws2.close()
    ws.close()
    wait_for("the terminal processes to end", lambda: not websocketd_children(), 5)


def test_ws_k8s_detach_attaches_again():
    """`tmux detach-client` in the pod's session ends the exec, not the
    session: the terminal (the pump, then terminal-full --resume) execs
    the client again and the same shell answers on the same socket."""
    if "env" not in S:
        fail("needs the environment of test_ws_k8s_setup")
    fk, eid, adm = S["fake"], S["env"], S["admin"]
    ws, w = open_term(eid, cols=100, rows=30)
    ws.send({"type": "input", "data": "KEEP=k8s$((5*5)); echo set-$KEEP\r"})
    ws.output_until("set-k8s25", 15)
    before = len(tmux_execs(fk.requests(), S["ns"], eid))
    ws.send({"type": "input", "data": "tmux detach-client\r"})
    ws.output_until("[detached (from session ", 15)
    ws.send({"type": "input", "data": "echo again-$KEEP\r"})
    ws.output_until("again-k8s25", 15)
    eq(len(tmux_execs(fk.requests(), S["ns"], eid)), before + 1,
       "one more terminal exec")
    pod_size(ws, "29 100")
    eq(slots(adm["id"]), 1, "still one slot")
    ws.close()
    wait_for("the slot to go", lambda: slots(adm["id"]) == 0, 5)
    row = sql("SELECT active, close_code FROM terminal_sessions "
              "WHERE id = :'p1'", w["session_id"])
    eq(row, [["f", "1000"]], "ended session row")


def test_ws_k8s_v4_only_cluster():
    """An API server that speaks v4.channel.k8s.io only (older clusters):
    the bridge falls back to it; input, output and resize still work."""
    if "env" not in S:
        fail("needs the environment of test_ws_k8s_setup")
    fk, eid = S["fake"], S["env"]
    st, js = fk.call("POST", "/_exec_protocols?only=v4.channel.k8s.io")
    eq((st, js), (200, {"exec_protocols": ["v4.channel.k8s.io"]}),
       "fake speaks v4 only")
    try:
        ws, w = open_term(eid, cols=90, rows=20)
        eq(w["environment"]["id"], eid, "welcome environment")
        ws.send({"type": "input", "data": "echo V4$((40+4))ONLY\r"})
        ws.output_until("V444ONLY", 15)
        pod_size(ws, "19 90")
        ws.send({"type": "resize", "cols": 110, "rows": 33})
        pod_size(ws, "32 110")
        ws.close()
        wait_for("the terminal processes to end",
                 lambda: not websocketd_children(), 5)
        st, used = fk.call("GET", "/_exec_used")
        eq(st, 200, "GET /_exec_used")
        eq(used[-1], "v4.channel.k8s.io", "negotiated subprotocol")
        check("v5.channel.k8s.io" in used, "earlier execs used v5: %r" % used)
    finally:
        fk.call("POST", "/_exec_protocols")


def test_ws_k8s_exec_cut_is_not_session_end():
    """The exec socket breaks (an API server's restart, a proxy's timeout)
    with no status: the tmux session in the pod lives on, so the close
    says the terminal is unavailable (1011), not "Session ended"."""
    if "env" not in S:
        fail("needs the environment of test_ws_k8s_setup")
    fk, eid = S["fake"], S["env"]
    ws, w = open_term(eid)
    ws.send({"type": "input", "data": "echo CUT$((3+4))\r"})
    ws.output_until("CUT7", 15)
    st, js = fk.call("POST", "/_exec_drop")
    eq(st, 200, "POST /_exec_drop")
    check(js["dropped"] >= 1, "an exec socket to cut: %r" % js)
    m, _ = ws.until(lambda m: m.get("type") == "close", 15, "close")
    eq(m, {"type": "close", "code": 1011, "reason": "Terminal unavailable"},
       "close")
    ws.close()
    wait_for("the terminal processes to end", lambda: not websocketd_children(), 5)
    # The session itself was not touched: a new socket reattaches.
    ws, _ = open_term(eid)
    eq(ws.recv(10), {"type": "info", "message": "Reattached to existing session"},
       "reattached")
    ws.close()
    wait_for("the terminal processes to end", lambda: not websocketd_children(), 5)


def test_ws_k8s_stop_closes_terminal():
    if "env" not in S:
        fail("needs the environment of test_ws_k8s_setup")
    eid = S["env"]
    ws, w = open_term(eid)
    ws.send({"type": "input", "data": "echo UP$((1+1))\r"})
    ws.output_until("UP2", 15)
    # The pod goes: the exec socket ends, the bridge exits, the terminal
    # closes the socket.
    r = http("POST", "/api/v1/environments/%s/stop" % eid, raw=b"",
             headers=S["admin"]["headers"])
    eq(r.status, 200, "stop: %s" % r.body[:200])
    m, _ = ws.until(lambda m: m.get("type") == "close", 30, "close")
    eq(m["code"], 1000, "close code: %r" % m)
    check(m["reason"] in ("Environment stopped", "Session ended"),
          "close reason: %r" % m)
    ws.close()
    wait_status(eid, "stopped")
    wait_for("the terminal processes to end", lambda: not websocketd_children(), 5)


def test_ws_k8s_zz_cleanup():
    eid, cid = S.get("env"), S.get("cluster")
    if eid:
        r = req("DELETE", "/api/v1/environments/" + eid)
        eq(r.status, 204, "delete environment")
        wait_for("the destroy job", lambda: sql(
            "SELECT state FROM jobs WHERE kind = 'env.destroy' AND "
            "payload->>'id' = :'p1'", eid) == [["done"]], 20)
        st, _ = S["fake"].call("GET", "/apis/apps/v1/namespaces/%s/statefulsets/"
                               "env-%s" % (S["ns"], eid))
        eq(st, 404, "statefulset destroyed")
    if cid:
        r = req("DELETE", "/api/v1/clusters/" + cid)
        eq(r.status, 204, "delete cluster: %s" % r.body[:200])
        S.pop("cluster")
    if S.get("fake"):
        S.pop("fake").close()
