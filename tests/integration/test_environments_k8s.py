"""Environments on the kubernetes driver end to end: requests through nginx,
the real worker, and tests/fake-kube/fake_kube.py as the cluster.

The fake is started once for the module (TLS with its own CA, a bearer
token, --require-field-manager so a write without fieldManager=devpocket is
a 400) and killed at exit.  A fresh kubernetes cluster pointing at it is
registered through POST /api/v1/clusters with a base64 kubeconfig; the
environments name it by cluster_id.  The fake really runs the ConfigMap's
init.sh (the startup commands with the install-log markers), so the install
output, the failed step's warning and the running status come from it.

The tests run in order and share the module state: provision, metrics,
stop/start/restart, isolation, a 500 on the StatefulSet create (the job is
retried and converges on the same objects), delete, cleanup."""
import atexit
import base64
import http.client as httpclient
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

from harness import (ROOT, admin, check, eq, fail, http, log_tail, register_user,
                     sql, unique)

API = "/api/v1/environments"
FAKE_KUBE = os.path.join(ROOT, "tests", "fake-kube", "fake_kube.py")
RES = {"cpu": "500m", "memory": "1Gi", "storage": "2Gi"}
COMMANDS = ["echo k8s-step-one", "echo k8s-second; exit 3", "echo k8s-step-three"]
WRITES = ("POST", "PUT", "PATCH")

# What the tests share, in order.
S = {}


# ------------------------------------------------------------------ the fake

class Fake:
    """fake_kube.py over TLS on a free port; API GETs and the test controls
    over one trusted connection per call."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dp-envs-k8s.")
        self.token = "fake-k8s-" + unique("t")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE_KUBE, "--port", "0", "--certs-dir", self.dir,
             "--token", self.token, "--require-field-manager", "--start-delay", "0.3",
             "--max-grace", "3", "--state-dir", os.path.join(self.dir, "state")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.dir, "fake.log"), "wb"), text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.close()
            raise AssertionError("fake-kube did not start: %r" % line)
        self.port = int(line.split()[1])
        self.tls = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))

    def b64(self, name):
        with open(os.path.join(self.dir, name), "rb") as f:
            return base64.b64encode(f.read()).decode()

    def kubeconfig(self):
        return ("apiVersion: v1\nkind: Config\n"
                "clusters:\n- name: fake\n  cluster:\n"
                "    server: https://127.0.0.1:%d\n"
                "    certificate-authority-data: %s\n"
                "users:\n- name: me\n  user:\n    token: %s\n"
                "contexts:\n- name: fake\n  context: {cluster: fake, user: me}\n"
                "current-context: fake\n" % (self.port, self.b64("ca.crt"), self.token))

    def call(self, method, path):
        conn = httpclient.HTTPSConnection("127.0.0.1", self.port, context=self.tls,
                                           timeout=15)
        try:
            conn.request(method, path, headers={"Authorization": "Bearer " + self.token})
            r = conn.getresponse()
            data = r.read()
            try:
                js = json.loads(data) if data else None
            except ValueError:
                js = None
            return r.status, js
        finally:
            conn.close()

    def get(self, path):
        return self.call("GET", path)

    def requests(self):
        st, js = self.call("GET", "/_requests")
        eq(st, 200, "GET /_requests")
        return js

    def reset(self):
        eq(self.call("POST", "/_reset")[0], 200, "POST /_reset")

    def fail_next(self, prefix, times=1, method=None):
        q = {"path_prefix": prefix, "times": times}
        if method:
            q["method"] = method
        eq(self.call("POST", "/_fail?" + urllib.parse.urlencode(q))[0], 200, "POST /_fail")

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


_fake = []


def fake():
    if not _fake:
        _fake.append(Fake())
    return _fake[0]


def _at_exit():
    """The cluster out of placement and its leftovers finished, so the
    shared stack's worker does not retry jobs against a dead fake; then the
    fake goes."""
    try:
        if S.get("cluster"):
            _retire_cluster(S["cluster"])
    except BaseException:       # a broken database must not hide the fake
        pass
    for f in _fake:
        f.close()


atexit.register(_at_exit)


def _retire_cluster(cid):
    sql("UPDATE clusters SET status = 'inactive', is_default = false WHERE id = :'p1'", cid)
    sql("UPDATE jobs SET state = 'failed', last_error = 'test cleanup' "
        "WHERE state IN ('queued', 'running') AND kind LIKE 'env.%' AND payload->>'id' IN "
        "(SELECT id FROM environments WHERE cluster_id = :'p1')", cid)
    sql("UPDATE environments SET status = 'terminated', terminated_at = now() "
        "WHERE cluster_id = :'p1' AND status <> 'terminated'", cid)


# ------------------------------------------------------------------ helpers

def req(method, path, who, body=None):
    return http(method, path, body=body, headers=who["headers"])


def need(*keys):
    for k in keys:
        if k not in S:
            fail("needs %s from an earlier test of this module" % k)
    return [S[k] for k in keys]


def logs_of(who, eid):
    r = req("GET", API + "/" + eid + "/logs?lines=1000", who)
    eq(r.status, 200, "logs")
    return [(l["source"], l["level"], l["message"]) for l in r.json["logs"]]


def wait_status(who, eid, want, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        r = req("GET", API + "/" + eid, who)
        last = r.json and r.json.get("status")
        if last == want:
            return r.json
        if last == "error":
            break
        time.sleep(0.25)
    fail("environment %s: status %s, want %s; logs %s; worker: %s" % (
        eid, last, want, logs_of(who, eid)[-15:], log_tail("worker", 8)))


def wait_for(what, cond, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    fail("timed out waiting for " + what)


def job_states(eid, kind):
    return sql("SELECT state, attempts FROM jobs WHERE kind = :'p2' AND payload->>'id' = :'p1' "
               "ORDER BY id", eid, kind)


def paths(ns, eid):
    """The API paths of the objects of an environment."""
    return {
        "namespace": "/api/v1/namespaces/" + ns,
        "resourcequota": "/api/v1/namespaces/%s/resourcequotas/devpocket-quota" % ns,
        "networkpolicy": "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies/"
                         "devpocket-isolation" % ns,
        "pvc": "/api/v1/namespaces/%s/persistentvolumeclaims/env-%s-home" % (ns, eid),
        "configmap": "/api/v1/namespaces/%s/configmaps/env-%s-init" % (ns, eid),
        "service": "/api/v1/namespaces/%s/services/env-%s" % (ns, eid),
        "statefulset": "/apis/apps/v1/namespaces/%s/statefulsets/env-%s" % (ns, eid),
        "pod": "/api/v1/namespaces/%s/pods/env-%s-0" % (ns, eid),
    }


def pod_pid(eid):
    """The pid of the fake pod's main process (its init.sh) for eid."""
    mark = ("DEVPOCKET_ENVIRONMENT_ID=" + eid).encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) >= 2 and argv[1].endswith(b"/init.sh") and mark in env \
                and os.getsid(int(pid)) == int(pid):
            return int(pid)
    fail("no pod process for %s" % eid)


def collection(path):
    return path.rsplit("/", 1)[0]


def created(reqs, path):
    """The bodies of the successful creates of the object at path."""
    coll, name = path.rsplit("/", 1)
    return [r["body"] for r in reqs if r["method"] == "POST" and r["path"] == coll and
            r["status"] == 201 and isinstance(r["body"], dict) and
            r["body"].get("metadata", {}).get("name") == name]


def check_writes(reqs, allowed_errors=()):
    """Every write carries fieldManager=devpocket; nothing was answered
    422, no write 400 (a GET of the log of a container still waiting is
    400 on a real cluster too); 5xx only where the test asked for it."""
    for r in reqs:
        if r["method"] in WRITES:
            eq(r["query"].get("fieldManager"), ["devpocket"],
               "fieldManager of %s %s" % (r["method"], r["path"]))
        if r["status"] == 422 or (r["status"] == 400 and r["method"] != "GET") or \
                (r["status"] >= 500 and
                                         (r["method"], r["path"]) not in allowed_errors):
            fail("the fake answered %d to %s %s: %s" % (
                r["status"], r["method"], r["path"], json.dumps(r["body"])[:600]))
        check(r["status"] != 401, "unauthenticated request %s" % r["path"])


def template():
    """A template whose startup_commands run quickly in the fake's pod, one
    of them failing with exit 3; returns its name."""
    tid = uuid.uuid4().hex[:24]
    name = "k" + uuid.uuid4().hex[:12]
    sql("INSERT INTO templates (id, name, display_name, description, category, docker_image, "
        "default_port, default_resources, environment_variables, startup_commands, status) "
        "VALUES (:'p1', :'p2', 'K8s ' || :'p2', 'test', 'operating_system', 'ubuntu:22.04', "
        "8081, '{\"cpu\": \"500m\", \"memory\": \"1Gi\", \"storage\": \"10Gi\"}', "
        ":'p4'::jsonb, :'p3'::jsonb, 'active')",
        tid, name, json.dumps(COMMANDS), json.dumps({"TPL_VAR": "from-template"}))
    return name


def setup():
    """Fake, admin, cluster and template, once."""
    if "cluster" in S:
        return
    fk = fake()
    adm = admin()
    r = req("POST", "/api/v1/clusters", adm, {
        "name": "fake-" + unique("k"), "region": "eu-central", "provider": "kubernetes",
        "kube_config": base64.b64encode(fk.kubeconfig().encode()).decode()})
    eq(r.status, 201, "POST /clusters: %s" % r.body[:300])
    S["cluster"] = r.json["id"]
    eq(r.json["endpoint"], "https://127.0.0.1:%d" % fk.port, "endpoint")
    h = req("GET", "/api/v1/clusters/%s/health" % S["cluster"], adm).json
    eq(h["status"], "healthy", "the cluster reaches the fake: %r" % h)
    S["admin"] = adm
    S["template"] = template()


def create(who, name):
    r = req("POST", API, who, {"name": name, "template": S["template"],
                               "cluster_id": S["cluster"], "resources": RES,
                               "environment_variables": {"USER_VAR": "v1"}})
    eq(r.status, 201, "create: %s" % r.body[:300])
    e = r.json
    eq((e["status"], e["cluster_id"], e["region"]), ("creating", S["cluster"], "eu-central"),
       "created on the fake's cluster")
    eq(e["resources"], RES, "resources")
    return e["id"]


# -------------------------------------------------------------------- tests

def test_k8s_provision_objects_and_install_log():
    setup()
    fk, adm = fake(), S["admin"]
    fk.reset()
    eid = create(adm, "kube-one")
    S["env"] = eid
    ns = "devpocket-u-" + adm["id"]
    S["ns"] = ns
    # creating → installing → running, as the worker moves it.
    seen = set()
    deadline = time.time() + 30
    while time.time() < deadline:
        st = req("GET", API + "/" + eid, adm).json["status"]
        seen.add(st)
        if st in ("running", "error"):
            break
        time.sleep(0.1)
    e = wait_status(adm, eid, "running", 5)
    check("creating" in seen, "seen creating: %r" % seen)
    eq(e["installation_completed"], True, "installation_completed")
    msgs = logs_of(adm, eid)
    for want in [("system", "info", "Environment created"),
                 ("system", "info", "Compute allocated; running the startup commands"),
                 ("install", "info", "Running step 1/3: echo k8s-step-one"),
                 ("install", "info", "k8s-step-one"),
                 ("install", "info", "Running step 2/3: echo k8s-second; exit 3"),
                 ("install", "info", "k8s-second"),
                 ("install", "warning", "Command failed (exit 3): echo k8s-second; exit 3"),
                 ("install", "info", "k8s-step-three"),
                 ("system", "info", "Environment is running")]:
        check(want in msgs, "log entry %r in %r" % (want, msgs))
    check(not any(m[2].startswith("##devpocket:") for m in msgs), "markers not copied")
    eq(sum(1 for m in msgs if m[2] == "k8s-step-one"), 1, "install output copied once")
    eq(sql("SELECT install_warnings FROM environments WHERE id = :'p1'", eid), [["1"]],
       "one warning recorded")

    reqs = fk.requests()
    check_writes(reqs)
    p = paths(ns, eid)
    want_kinds = {"namespace": "Namespace", "resourcequota": "ResourceQuota",
                  "networkpolicy": "NetworkPolicy", "pvc": "PersistentVolumeClaim",
                  "configmap": "ConfigMap", "service": "Service",
                  "statefulset": "StatefulSet"}
    bodies = {}
    for key, kind in want_kinds.items():
        c = created(reqs, p[key])
        eq(len(c), 1, "one successful create of the %s" % key)
        eq(c[0]["kind"], kind, "kind of the %s" % key)
        eq(c[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"], "devpocket",
           "managed-by label of the %s" % key)
        bodies[key] = c[0]
    posts = sorted({r["path"] for r in reqs if r["method"] == "POST"})
    eq(posts, sorted({collection(p[k]) for k in want_kinds}), "nothing else created")
    check(not any(r["method"] in ("DELETE", "PUT") for r in reqs), "no deletes or puts")

    ns_labels = bodies["namespace"]["metadata"]["labels"]
    eq(ns_labels.get("pod-security.kubernetes.io/enforce"), "baseline", "pod security")
    eq(ns_labels.get("devpocket.io/user"), adm["id"], "namespace user label")
    hard = bodies["resourcequota"]["spec"]["hard"]
    eq((hard["limits.cpu"], hard["limits.memory"], hard["requests.storage"], hard["pods"]),
       ("500m", "1Gi", "2Gi", "1"), "quota covers the environment")
    eq((hard["services.loadbalancers"], hard["services.nodeports"]), ("0", "0"),
       "no exposed services")
    np = bodies["networkpolicy"]["spec"]
    eq(np["policyTypes"], ["Ingress", "Egress"], "policy types")
    pvc = bodies["pvc"]["spec"]
    eq((pvc["accessModes"], pvc["resources"]["requests"]["storage"]),
       (["ReadWriteOnce"], "2Gi"), "pvc of the environment's storage")
    init = bodies["configmap"]["data"]["init.sh"]
    for c in COMMANDS:
        check(c in init, "command %r in init.sh" % c)
    check("tmux.conf" in bodies["configmap"]["data"], "tmux.conf")
    svc = bodies["service"]["spec"]
    eq((svc["clusterIP"], svc["selector"]), ("None", {"devpocket.io/environment": eid}),
       "headless service")
    eq(svc["ports"][0]["port"], 8081, "service port")
    sts = bodies["statefulset"]
    spec = sts["spec"]
    eq((spec["replicas"], spec["serviceName"]), (1, "env-" + eid), "replicas 1")
    eq(spec["selector"]["matchLabels"], {"devpocket.io/environment": eid}, "selector")
    ct = spec["template"]["spec"]["containers"][0]
    eq(ct["image"], "ubuntu:22.04", "image")
    eq(ct["resources"], {"limits": {"cpu": "500m", "memory": "1Gi"},
                         "requests": {"cpu": "500m", "memory": "1Gi"}}, "resources")
    eq(ct["command"], ["/bin/sh", "/etc/devpocket/init.sh"], "command")
    env = {v["name"]: v["value"] for v in ct["env"]}
    eq((env.get("DEVPOCKET_ENVIRONMENT_ID"), env.get("TPL_VAR"), env.get("USER_VAR")),
       (eid, "from-template", "v1"), "container env")
    vols = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    eq(vols["home"]["persistentVolumeClaim"]["claimName"], "env-%s-home" % eid, "home volume")
    eq(vols["init"]["configMap"]["name"], "env-%s-init" % eid, "init volume")
    eq(spec["template"]["spec"]["automountServiceAccountToken"], False, "no SA token")
    # The objects are there, the pod Running.
    for key in list(want_kinds) + ["pod"]:
        eq(fk.get(p[key])[0], 200, "GET the %s" % key)
    eq(fk.get(p["pod"])[1]["status"]["phase"], "Running", "pod running")
    eq(job_states(eid, "env.provision"), [["done", "1"]], "provisioned at the first attempt")


def test_k8s_metrics_sample():
    adm, eid = need("admin", "env")
    js = wait_for("a metric sample", lambda: (
        lambda j: j if j["metrics"] else None)(
            req("GET", API + "/" + eid + "/metrics?hours=1", adm).json), 25)
    # The fake's PodMetrics: 12m of 500m cpu, 34Mi of 1Gi memory.
    check(abs(js["cpu_usage"] - 2.4) < 0.01, "cpu %% of the limit: %r" % js)
    check(abs(js["memory_usage"] - 34 / 1024 * 100) < 0.01, "memory %%: %r" % js)
    eq(js["metrics"][-1]["timestamp"], js["timestamp"], "newest bucket")
    e = req("GET", API + "/" + eid, adm).json
    check(abs(e["cpu_usage"] - 2.4) < 0.01, "usage in the environment: %r" % e)
    reqs = fake().requests()
    check(any(r["path"] == "/apis/metrics.k8s.io/v1beta1/namespaces/%s/pods/env-%s-0" % (
        S["ns"], eid) and r["status"] == 200 for r in reqs), "metrics.k8s.io was asked")


def test_k8s_stop_start_restart():
    adm, eid, ns = need("admin", "env", "ns")
    fk = fake()
    p = paths(ns, eid)
    uid0 = fk.get(p["pod"])[1]["metadata"]["uid"]
    fk.reset()
    # A controller too busy to act on the scale (POST /_controller):
    # the stop deletes the pod itself.
    fk.call("POST", "/_controller?paused=1")
    r = req("POST", API + "/" + eid + "/stop", adm)
    eq((r.status, r.json), (200, {"message": "Environment stop initiated",
                                  "status": "stopped"}), "stop")
    wait_for("the pod to be deleted", lambda: fk.get(p["pod"])[0] == 404 or
             "deletionTimestamp" in fk.get(p["pod"])[1]["metadata"])
    fk.call("POST", "/_controller?paused=0")
    wait_for("the pod to go", lambda: fk.get(p["pod"])[0] == 404)
    eq(fk.get(p["statefulset"])[1]["spec"]["replicas"], 0, "scaled to 0")
    for key in ("pvc", "configmap", "service", "statefulset"):
        eq(fk.get(p[key])[0], 200, "%s kept" % key)
    reqs = fk.requests()
    check_writes(reqs)
    scale = [r for r in reqs if r["method"] in WRITES + ("DELETE",)]
    eq([(r["method"], r["path"], r["body"]) for r in scale],
       [("PATCH", p["statefulset"] + "/scale", {"spec": {"replicas": 0}}),
        ("DELETE", p["pod"], None)],
       "stop is a scale to 0 and the pod's delete")
    time.sleep(1.2)
    eq(req("GET", API + "/" + eid, adm).json["status"], "stopped", "stays stopped")

    # start: creating → running with a new pod on the same claim.
    r = req("POST", API + "/" + eid + "/start", adm)
    eq((r.status, r.json["status"]), (200, "creating"), "start")
    wait_status(adm, eid, "running", 30)
    pod = fk.get(p["pod"])[1]
    check(pod["metadata"]["uid"] != uid0, "a new pod")
    eq(fk.get(p["statefulset"])[1]["spec"]["replicas"], 1, "scaled to 1")
    reqs = fk.requests()
    check_writes(reqs)
    eq([r for r in reqs if r["status"] == 201], [], "start creates nothing new")

    # restart from running: the old pod goes, a new one installs again.
    # The old pod is slow to go (its process stopped: the SIGTERM waits,
    # the fake kills it after --max-grace), as pods on a real cluster are:
    # the worker must wait for the new pod's install log, not copy the
    # finished log of the pod on its way out.  The new install runs the
    # template's current commands, so its output is told apart.
    uid1 = pod["metadata"]["uid"]
    pid = pod_pid(eid)
    sql("UPDATE templates SET startup_commands = :'p2'::jsonb WHERE name = :'p1'",
        S["template"], json.dumps(["echo k8s-after-restart"]))
    fk.reset()
    try:
        os.kill(pid, signal.SIGSTOP)
        r = req("POST", API + "/" + eid + "/restart", adm)
        eq((r.status, r.json["status"]), (200, "creating"), "restart")
        wait_status(adm, eid, "running", 30)
        st, pod = fk.get(p["pod"])
        eq(st, 200, "a pod when running")
        check("deletionTimestamp" not in pod["metadata"] and
              pod["metadata"]["uid"] not in (uid0, uid1),
              "running on the new pod, not the one being deleted")
    finally:
        sql("UPDATE templates SET startup_commands = :'p2'::jsonb WHERE name = :'p1'",
            S["template"], json.dumps(COMMANDS))
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    check_writes(fk.requests())
    msgs = logs_of(adm, eid)
    eq(sum(1 for m in msgs if m[2] == "Environment is running"), 3, "three installs")
    eq(sum(1 for m in msgs if m[2] == "k8s-step-one"), 2,
       "each install's output copied once: %r" % msgs)
    eq(sum(1 for m in msgs if m[2] == "k8s-after-restart"), 1,
       "the new pod's install output: %r" % msgs[-12:])
    eq(msgs[-1], ("system", "info", "Environment is running"), "running after its output")
    eq(sum(1 for m in msgs if m[1] == "warning" and m[2].startswith("Command failed")), 2,
       "one warning per failing install")
    eq(sql("SELECT install_warnings FROM environments WHERE id = :'p1'", eid), [["0"]],
       "the new install had no warning")


def test_k8s_hung_api_does_not_hold_requests():
    """The worker's status call for a running environment (every 10 s)
    does not hold the environment's row: with the API server taking 6 s
    to answer it, a user's PUT on that environment answers at once (it
    waited for the whole call: up to 30 s per call on a hung server)."""
    adm, eid, ns = need("admin", "env", "ns")
    fk = fake()
    p = paths(ns, eid)
    wait_status(adm, eid, "running", 30)
    fk.reset()
    eq(fk.call("POST", "/_delay?" + urllib.parse.urlencode(
        {"path_prefix": p["statefulset"], "method": "GET", "seconds": 6,
         "times": 1}))[0], 200, "POST /_delay")
    wait_for("the worker's status call", lambda: any(
        r["method"] == "GET" and r["path"] == p["statefulset"]
        for r in fk.requests()), 20)
    t0 = time.time()
    r = req("PUT", API + "/" + eid, adm, {"description": "asked while hung"})
    took = time.time() - t0
    eq(r.status, 200, "PUT: %s" % (r.body[:200],))
    check(took < 3, "the PUT waited %.1f s for the worker's call" % took)
    eq(req("GET", API + "/" + eid, adm).json["status"], "running", "still running")


def test_k8s_hung_install_log_does_not_hold_requests():
    """Nor does the install pass's copy of the pod log: with the log
    taking 6 s to come, a user's PUT on the installing environment
    answers at once (the pass held the row FOR UPDATE through the call),
    and the install still ends running with its output copied once."""
    adm, eid, ns = need("admin", "env", "ns")
    fk = fake()
    p = paths(ns, eid)
    wait_status(adm, eid, "running", 30)
    sql("UPDATE templates SET startup_commands = :'p2'::jsonb WHERE name = :'p1'",
        S["template"], json.dumps(["sleep 6", "echo k8s-slow-install"]))
    try:
        r = req("POST", API + "/" + eid + "/restart", adm)
        eq(r.status, 200, "restart")
        wait_status(adm, eid, "installing", 30)
        fk.reset()
        eq(fk.call("POST", "/_delay?" + urllib.parse.urlencode(
            {"path_prefix": p["pod"] + "/log", "method": "GET", "seconds": 6,
             "times": 1}))[0], 200, "POST /_delay")
        wait_for("the install pass's log call", lambda: any(
            r["method"] == "GET" and r["path"].startswith(p["pod"] + "/log")
            for r in fk.requests()), 20)
        t0 = time.time()
        r = req("PUT", API + "/" + eid, adm, {"description": "asked while installing"})
        took = time.time() - t0
        eq(r.status, 200, "PUT: %s" % (r.body[:200],))
        check(took < 3, "the PUT waited %.1f s for the install pass" % took)
        wait_status(adm, eid, "running", 40)
    finally:
        sql("UPDATE templates SET startup_commands = :'p2'::jsonb WHERE name = :'p1'",
            S["template"], json.dumps(COMMANDS))
    msgs = logs_of(adm, eid)
    eq(sum(1 for m in msgs if m[2] == "k8s-slow-install"), 1,
       "the install's output copied once: %r" % msgs[-8:])
    eq(msgs[-1], ("system", "info", "Environment is running"), "running after its output")


def test_k8s_isolation():
    adm, eid = need("admin", "env")
    fk = fake()
    other = register_user()
    fk.reset()
    routes = [("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/start"), ("POST", "/stop"),
              ("POST", "/restart"), ("GET", "/metrics"), ("GET", "/logs")]
    for m, suffix in routes:
        r = req(m, API + "/" + eid + suffix, other, {"name": "stolen"} if m == "PUT" else None)
        eq((r.status, r.json and r.json.get("detail")), (404, "Environment not found"),
           "%s %s by another user" % (m, suffix or "/"))
    eq(req("GET", API, other).json, [], "not listed for the other user")
    time.sleep(1)
    e = req("GET", API + "/" + eid, adm).json
    eq((e["status"], e["name"]), ("running", "kube-one"), "untouched")
    writes = [r for r in fk.requests() if r["method"] in WRITES + ("DELETE",)]
    eq(writes, [], "no writes reached the cluster")


def test_k8s_retry_after_500():
    adm, ns = need("admin", "ns")
    fk = fake()
    fk.reset()
    prefix = "/apis/apps/v1/namespaces/%s/statefulsets" % ns
    fk.fail_next(prefix, times=1, method="POST")
    eid = create(adm, "kube-two")
    S["env2"] = eid
    wait_status(adm, eid, "running", 45)
    eq(job_states(eid, "env.provision"), [["done", "2"]], "provisioned on the second attempt")
    reqs = fk.requests()
    p = paths(ns, eid)
    sts_posts = [r["status"] for r in reqs if r["method"] == "POST" and r["path"] == prefix]
    eq(sts_posts, [500, 201], "the StatefulSet create failed once, then succeeded")
    check_writes(reqs, allowed_errors={("POST", prefix)})
    for key in ("pvc", "configmap", "service", "statefulset"):
        eq(len(created(reqs, p[key])), 1, "one successful create of the %s" % key)
    eq([r["path"] for r in reqs if r["status"] == 201 and r["path"] not in {
        collection(p[k]) for k in ("pvc", "configmap", "service", "statefulset")}], [],
       "namespace, quota and policy were not created again")
    # The retried creates answered 409 and were patched to the same body.
    for key in ("configmap", "service"):
        coll = collection(p[key])
        eq([r["status"] for r in reqs if r["method"] == "POST" and r["path"] == coll],
           [201, 409], "%s created, then found on the retry" % key)
        check(any(r["method"] == "PATCH" and r["path"] == p[key] and r["status"] == 200
                  for r in reqs), "%s patched on the retry" % key)
    # One of each object in the namespace; the quota covers both.
    for plural, api in (("statefulsets", "/apis/apps/v1"), ("services", "/api/v1"),
                        ("configmaps", "/api/v1"), ("persistentvolumeclaims", "/api/v1")):
        st, js = fk.get("%s/namespaces/%s/%s" % (api, ns, plural))
        names = sorted(i["metadata"]["name"] for i in js["items"])
        check(len(names) == len(set(names)) and sum(1 for n in names if eid in n) == 1,
              "one %s of the environment: %r" % (plural, names))
    hard = fk.get(p["resourcequota"])[1]["spec"]["hard"]
    eq((hard["limits.cpu"], hard["limits.memory"], hard["pods"]), ("1000m", "2Gi", "2"),
       "quota raised for two environments")
    msgs = logs_of(adm, eid)
    eq(sum(1 for m in msgs if m[2] == "k8s-step-one"), 1, "installed once")


def test_k8s_delete_removes_everything():
    adm, ns = need("admin", "ns")
    fk = fake()
    for key in ("env", "env2"):
        eid = S.get(key)
        if eid is None:
            continue
        fk.reset()
        r = req("DELETE", API + "/" + eid, adm)
        eq((r.status, r.body), (204, b""), "delete")
        eq(req("GET", API + "/" + eid, adm).json["status"], "terminated", "terminated")
        wait_for("the destroy job", lambda: job_states(eid, "env.destroy") == [["done", "1"]],
                 20)
        p = paths(ns, eid)
        for obj in ("statefulset", "service", "configmap", "pvc"):
            eq(fk.get(p[obj])[0], 404, "%s of %s gone" % (obj, key))
        wait_for("the pod of %s to go" % key, lambda: fk.get(p["pod"])[0] == 404, 10)
        reqs = fk.requests()
        check_writes(reqs)
        eq(sorted(r["path"].split("?")[0] for r in reqs if r["method"] == "DELETE"),
           sorted([p["statefulset"], p["service"], p["configmap"], p["pvc"]]),
           "destroy deletes the environment's objects")
        # A second delete is a no-op.
        eq(req("DELETE", API + "/" + eid, adm).status, 204, "delete again")
    # The user's namespace stays (another environment may be starting in it).
    eq(fk.get(paths(ns, "x")["namespace"])[0], 200, "namespace kept")


def test_k8s_zz_cleanup():
    """The cluster leaves placement; the fake goes now (atexit is the
    fallback when this does not run)."""
    if S.get("cluster"):
        _retire_cluster(S["cluster"])
    while _fake:
        _fake.pop().close()
