"""Environments of CONTRACT §2.4 and §4 through nginx, with the real worker
and the local driver.

Tests that need statuses to stay put use environments inserted with SQL on a
"kubernetes" cluster in maintenance whose API server does not answer: every
driver call fails, so only requests move them.  The end-to-end tests use the
stack's local cluster (or one they create) and fast test templates."""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

from harness import (CONF, LOG_DIR, PG_SOCK, ROOT, VAR, ctl, eq, check, fail, http,
                     register_user, admin, sql, log_tail, _psql)

API = "/api/v1/environments"
ENV_KEYS = {"id", "name", "description", "template", "template_id", "template_name", "status",
            "docker_image", "port", "web_port", "ssh_port", "resources", "resource_limits",
            "environment_variables", "installation_completed", "external_url", "cluster_id",
            "region", "created_at", "updated_at", "last_accessed", "last_activity",
            "cpu_usage", "memory_usage", "storage_usage"}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
GI = 1 << 30


def hexid():
    return uuid.uuid4().hex[:24]


def user(plan=None):
    u = register_user()
    if plan:
        ctl("user", "set-plan", u["username"], plan)
    return u


def req(method, path, u, body=None, raw=None):
    return http(method, path, body=body, raw=raw, headers=u["headers"])


def codes(js):
    return {(e["field"], e["code"]) for e in js.get("errors", [])}


def local_cluster():
    """The id of an active local cluster (the stack's, else one made here)."""
    rows = sql("SELECT id FROM clusters WHERE provider = 'local' AND status = 'active' "
               "ORDER BY is_default DESC, id LIMIT 1")
    if rows:
        return rows[0][0]
    cid = hexid()
    sql("INSERT INTO clusters (id, name, region, provider, is_default) "
        "SELECT :'p1', 'local', 'us-east', 'local', NOT EXISTS "
        "(SELECT 1 FROM clusters WHERE is_default) "
        "WHERE NOT EXISTS (SELECT 1 FROM clusters WHERE lower(name) = 'local')", cid)
    return sql("SELECT id FROM clusters WHERE lower(name) = 'local'")[0][0]


_dead = []


def dead_cluster():
    """A kubernetes cluster nobody answers for, never chosen by placement."""
    if not _dead:
        cid = hexid()
        sql("INSERT INTO clusters (id, name, region, provider, endpoint, status) "
            "VALUES (:'p1', :'p2', 'eu-central', 'kubernetes', 'https://127.0.0.1:9', "
            "'maintenance')", cid, "dead-" + cid[:12])
        _dead.append(cid)
    return _dead[0]


def template(cpu="500m", mem="1Gi", storage="10Gi", local=None, status="active", name=None,
             env=None):
    """A fresh template; returns (id, name)."""
    tid = hexid()
    name = name or "t" + uuid.uuid4().hex[:12]
    import json
    sql("INSERT INTO templates (id, name, display_name, description, category, docker_image, "
        "default_port, default_resources, environment_variables, startup_commands, "
        "local_startup_commands, status) VALUES (:'p1', :'p2', 'Test ' || :'p2', 'test', "
        "'operating_system', 'ubuntu:22.04', 8081, :'p3'::jsonb, :'p6'::jsonb, "
        "'[\"apt-get update\"]', NULLIF(:'p4', '')::jsonb, :'p5')",
        tid, name, json.dumps({"cpu": cpu, "memory": mem, "storage": storage}),
        json.dumps(local) if local is not None else "", status, json.dumps(env or {}))
    return tid, name


def insert_env(u, status, name=None, tid=None):
    """An environment row in status on the dead cluster (no job, no driver)."""
    if tid is None:
        tid, _ = template()
    eid = hexid()
    sql("INSERT INTO environments (id, user_id, name, template_id, docker_image, port, "
        "resources, cluster_id, status, running_since, terminated_at) VALUES (:'p1', :'p2', "
        ":'p3', :'p4', 'img', 8081, '{\"cpu\":\"500m\",\"memory\":\"1Gi\",\"storage\":\"10Gi\"}', "
        ":'p5', :'p6', now(), CASE WHEN :'p6' = 'terminated' THEN now() END)",
        eid, u["id"], name or "e" + eid[:10], tid, dead_cluster(), status)
    return eid


def wait_status(u, eid, want, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        r = req("GET", API + "/" + eid, u)
        last = r.json and r.json.get("status")
        if last in want if isinstance(want, (set, tuple, list)) else last == want:
            return r.json
        if last == "error" and want != "error":
            break
        time.sleep(0.3)
    logs = req("GET", API + "/" + eid + "/logs?lines=50", u).json
    fail("environment %s: status %s, want %s; logs %s; worker: %s" % (
        eid, last, want, logs and [l["message"] for l in logs["logs"]], log_tail("worker", 10)))


def jobs_for(eid):
    return sql("SELECT kind, payload->>'generation', state FROM jobs "
               "WHERE payload->>'id' = :'p1' ORDER BY id", eid)


# ------------------------------------------------------------------ create

def test_env_create_object_and_defaults():
    local_cluster()
    u = user()
    tid, tname = template(env={"A": "1", "B": "t"})
    r = req("POST", API, u, {"name": "My_Box-1", "template": tname, "description": "d",
                             "environment_variables": {"B": "u", "C": "3"}})
    eq(r.status, 201, "create: %s" % (r.body,))
    e = r.json
    eq(set(e), ENV_KEYS, "Environment keys")
    eq(e["name"], "my_box-1", "lowercased name")
    eq(e["status"], "creating", "status")
    eq((e["template"], e["template_id"], e["template_name"]), (tname, tid, "Test " + tname),
       "template keys")
    eq((e["port"], e["web_port"], e["ssh_port"]), (8081, 8081, None), "ports")
    eq(e["resources"], {"cpu": "500m", "memory": "1Gi", "storage": "10Gi"}, "free defaults")
    eq(e["resource_limits"], e["resources"], "resource_limits")
    eq(e["environment_variables"], {"A": "1", "B": "u", "C": "3"}, "overlay")
    eq((e["cpu_usage"], e["memory_usage"], e["storage_usage"]), (0, 0, 0), "usage")
    check(TS.match(e["created_at"]) and e["last_accessed"] is None, "timestamps")
    eq(sql("SELECT usage_count FROM templates WHERE id = :'p1'", tid), [["1"]], "usage_count")
    eq(jobs_for(e["id"])[0][:2], ["env.provision", "1"], "provision job")
    logs = sql("SELECT source, message FROM environment_logs WHERE environment_id = :'p1'",
               e["id"])
    check(["system", "Environment created"] in logs, "system log: %r" % logs)
    # Template by id, resource_limits when resources is absent, sent values echoed.
    u2 = user("starter")
    r = req("POST", API, u2, {"name": "b", "template_id": tid, "template": "nonexistent",
                              "resource_limits": {"cpu": "1.5", "memory": "2048Mi"}})
    eq(r.status, 201, "by id: %s" % (r.body,))
    eq(r.json["resources"], {"cpu": "1.5", "memory": "2048Mi", "storage": "10Gi"}, "echoed")
    r = req("POST", API, u2, {"name": "c", "template_id": tid,
                              "resources": {"cpu": "200m"}, "resource_limits": {"cpu": "9"}})
    eq(r.status, 201, "resources wins: %s" % (r.body,))
    eq(r.json["resources"]["cpu"], "200m", "resources wins")


def test_env_create_plan_defaults_and_caps():
    local_cluster()
    # rust on free → 1000m/2Gi/10Gi; python on pro → 2000m/4Gi/20Gi (§4.3).
    _, rust = template("1000m", "2Gi", "15Gi")
    _, py = template("500m", "1Gi", "10Gi")
    u = user()
    r = req("POST", API, u, {"name": "r", "template": rust})
    eq(r.status, 201, "rust on free")
    eq(r.json["resources"], {"cpu": "1000m", "memory": "2Gi", "storage": "10Gi"}, "rust/free")
    p = user("pro")
    r = req("POST", API, p, {"name": "p", "template": py})
    eq(r.json["resources"], {"cpu": "2000m", "memory": "4Gi", "storage": "20Gi"}, "python/pro")
    # Over the plan maximum → 422 out_of_range on resources.<key>.
    f = user()
    r = req("POST", API, f, {"name": "x", "template": py,
                             "resources": {"cpu": "1001m", "memory": "3Gi", "storage": "11Gi"}})
    eq(r.status, 422, "over max")
    eq(codes(r.json), {("resources.cpu", "out_of_range"), ("resources.memory", "out_of_range"),
                       ("resources.storage", "out_of_range")}, "over max codes")
    r = req("POST", API, f, {"name": "x", "template": py,
                             "resources": {"cpu": "1000m", "memory": "2Gi", "storage": "10Gi"}})
    eq(r.status, 201, "exactly the maximum")


def test_env_create_validation():
    local_cluster()
    _, tname = template()
    _, dep = template(status="deprecated")
    _, beta = template(status="beta")
    u = user("admin")
    bad = [
        ({}, {("name", "missing"), ("template", "missing")}),
        ({"name": "", "template": tname}, {("name", "too_short")}),
        ({"name": "-ab", "template": tname}, {("name", "pattern")}),
        ({"name": "a b", "template": tname}, {("name", "pattern")}),
        ({"name": "x" * 51, "template": tname}, {("name", "too_long")}),
        ({"name": "a\u0000b", "template": tname}, {("name", "invalid_format")}),
        ({"name": 5, "template": tname}, {("name", "type_error")}),
        ({"name": "a", "template": "nope"}, {("template", "invalid_choice")}),
        ({"name": "a", "template": dep}, {("template", "invalid_choice")}),
        ({"name": "a", "template": 7}, {("template", "type_error")}),
        ({"name": "a", "template": "x" * 100000}, {("template", "invalid_choice")}),
        ({"name": "a", "template": tname, "description": "d" * 501},
         {("description", "too_long")}),
        ({"name": "a", "template": tname, "resources": "big"}, {("resources", "type_error")}),
        ({"name": "a", "template": tname, "resources": {"cpu": "99m", "memory": "127Mi",
                                                        "storage": "1023Mi"}},
         {("resources.cpu", "out_of_range"), ("resources.memory", "out_of_range"),
          ("resources.storage", "out_of_range")}),
        ({"name": "a", "template": tname, "resources": {"cpu": "-1", "memory": "1G",
                                                        "storage": 5}},
         {("resources.cpu", "pattern"), ("resources.memory", "pattern"),
          ("resources.storage", "type_error")}),
        ({"name": "a", "template": tname, "environment_variables": {"1X": "v", "OK": 1,
                                                                    "L": "v" * 4097}},
         {("environment_variables.1X", "pattern"), ("environment_variables.OK", "type_error"),
          ("environment_variables.L", "too_long")}),
        ({"name": "a", "template": tname,
          "environment_variables": {"K%d" % i: "v" for i in range(101)}},
         {("environment_variables", "too_many")}),
        ({"name": "a", "template": tname, "environment_variables": []},
         {("environment_variables", "type_error")}),
        ({"name": "a", "template": tname, "cluster_id": hexid()}, {("cluster_id", "invalid_choice")}),
        ({"name": "a", "template": tname, "cluster_id": dead_cluster()},
         {("cluster_id", "invalid_choice")}),
        ({"name": "a", "template": tname, "cluster_id": "../x"}, {("cluster_id", "invalid_choice")}),
        ({"name": "a", "template": tname, "region": "moon"}, {("region", "invalid_choice")}),
    ]
    for body, want in bad:
        r = req("POST", API, u, body)
        eq(r.status, 422, "422 for %s: %s" % (str(body)[:80], r.body[:200]))
        eq(codes(r.json), want, "codes for %s" % str(body)[:80])
    r = req("POST", API, u, raw=b'{"name": "a", "template": ')
    eq(r.status, 400, "bad JSON")
    r = req("POST", API, u, raw=b'["a"]')
    eq((r.status, codes(r.json)), (422, {("body", "type_error")}), "array body")
    r = req("POST", API, u, {"name": "Bt", "template": beta, "region": "us-west",
                             "environment_variables": {"_A1": "ü" * 4096}})
    eq(r.status, 201, "beta template: %s" % (r.body,))


def test_env_plan_limit_and_name_conflict():
    local_cluster()
    _, tname = template()
    u = user()
    eq(req("POST", API, u, {"name": "one", "template": tname}).status, 201, "first")
    r = req("POST", API, u, {"name": "two", "template": tname})
    eq((r.status, r.json["detail"]), (403, "Environment limit reached. Upgrade your plan to "
                                           "create more environments."), "free limit")
    # Validation comes before the limit.
    eq(req("POST", API, u, {"name": "-", "template": tname}).status, 422, "422 first")
    s = user("starter")
    eq(req("POST", API, s, {"name": "dup", "template": tname}).status, 201, "dup 1")
    r = req("POST", API, s, {"name": "DUP", "template": tname})
    eq((r.status, r.json["detail"]), (409, "Environment with this name already exists"), "409")
    # Every non-terminated status counts; terminated ones do not and free their names.
    eid = sql("SELECT id FROM environments WHERE user_id = :'p1' AND name = 'dup'", s["id"])[0][0]
    eq(req("DELETE", API + "/" + eid, s).status, 204, "delete")
    eq(req("POST", API, s, {"name": "dup", "template": tname}).status, 201, "name reused")
    insert_env(s, "error")
    eq(req("POST", API, s, {"name": "z", "template": tname}).status, 201, "third")
    r = req("POST", API, s, {"name": "y", "template": tname})
    eq(r.status, 403, "4 of starter: %s" % (r.body,))


def test_env_cluster_placement_and_503():
    local_cluster()
    _, tname = template()
    cid = hexid()
    sql("INSERT INTO clusters (id, name, region, provider, max_environments) VALUES "
        "(:'p1', :'p2', 'southeast-asia', 'local', 1)", cid, "tiny-" + cid[:10])
    try:
        a = user()
        r = req("POST", API, a, {"name": "a", "template": tname, "region": "southeast-asia"})
        eq((r.status, r.json.get("cluster_id"), r.json.get("region")),
           (201, cid, "southeast-asia"), "placed in the region")
        b = user()
        r = req("POST", API, b, {"name": "b", "template": tname, "cluster_id": cid})
        eq((r.status, r.json["detail"]), (503, "No cluster available"), "full cluster")
        # A full cluster is skipped by placement.
        r = req("POST", API, b, {"name": "b", "template": tname, "region": "southeast-asia"})
        eq(r.status, 201, "placed elsewhere")
        check(r.json["cluster_id"] != cid, "skipped the full cluster")
        req("DELETE", API + "/" + r.json["id"], b)
    finally:
        sql("UPDATE clusters SET status = 'inactive' WHERE id = :'p1'", cid)


class Held:
    """A psql session holding whatever its first statements lock, in an
    open transaction, until send() ends it: the tests' way to stop a
    request at a lock and change the world under it."""

    def __init__(self, statements):
        env = dict(os.environ, PGAPPNAME="dp-test-held")
        self.p = subprocess.Popen([_psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", PG_SOCK,
                                   "-U", "devpocket", "-d", "devpocket"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  env=env)
        self.send("BEGIN;\n" + statements)
        wait_backends("application_name = 'dp-test-held' AND state = 'idle in transaction'", 1)

    def send(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def end(self, statements="COMMIT;"):
        self.send(statements)
        self.p.stdin.close()
        err = self.p.stderr.read()
        eq(self.p.wait(timeout=30), 0, "held session: %s" % err)


def wait_backends(where, n, timeout=20):
    """Until n backends of pg_stat_activity match where."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = int(sql("SELECT count(*) FROM pg_stat_activity WHERE " + where)[0][0])
        if got >= n:
            return
        time.sleep(0.05)
    fail("%d backend(s) never matched %s" % (n, where))


def in_threads(*calls):
    """Run the calls at once; their results in order."""
    out = [None] * len(calls)

    def run(i, f):
        out[i] = f()
    ts = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(calls)]
    for t in ts:
        t.start()
    return ts, out


def test_env_create_account_disabled_meanwhile():
    """A create that passed the token check while the account was being
    disabled (or deleted) must not make an environment for it."""
    local_cluster()
    _, tname = template()
    u = user()
    h = Held("SELECT 1 FROM users WHERE id = '%s' FOR UPDATE;" % u["id"])
    ts, out = in_threads(lambda: req("POST", API, u, {"name": "late", "template": tname}))
    wait_backends("wait_event_type = 'Lock' AND query LIKE 'SELECT 1 FROM users WHERE id%%'", 1)
    h.end("UPDATE users SET is_active = false WHERE id = '%s'; COMMIT;" % u["id"])
    ts[0].join(30)
    eq((out[0].status, out[0].json["detail"]), (401, "Could not validate credentials"),
       "create after the disable")
    eq(sql("SELECT count(*) FROM environments WHERE user_id = :'p1'", u["id"]), [["0"]],
       "no environment")


def test_env_create_reads_a_template_changed_meanwhile():
    """A template changed while a create of it runs: the environment
    copies one version of it (image and names alike), the new one, and
    two creates of one template at once both succeed (no deadlock on the
    template's row, sql/012)."""
    local_cluster()
    tid, tname = template()
    u = user("pro")
    h = Held("UPDATE templates SET display_name = 'Changed', docker_image = 'ubuntu:24.04' "
             "WHERE id = '%s';" % tid)
    try:
        ts, out = in_threads(lambda: req("POST", API, u, {"name": "mid", "template": tname}))
        wait_backends("wait_event_type = 'Lock' AND application_name <> 'dp-test-held'", 1)
    finally:
        h.end("COMMIT;")
    ts[0].join(30)
    eq(out[0].status, 201, "created: %s" % out[0].body)
    eq((out[0].json["template_name"], out[0].json["docker_image"]), ("Changed", "ubuntu:24.04"),
       "one version of the template")
    ts, out = in_threads(*[lambda i=i: req("POST", API, u, {"name": "par%d" % i,
                                                         "template": tname}) for i in range(4)])
    for t in ts:
        t.join(30)
    eq([r.status for r in out], [201] * 4, "creates at once")


def test_env_create_cluster_capacity_race():
    """Two users' creates on a cluster with room for one: exactly one wins,
    whatever their timing (the count and the insert are serialised)."""
    _, tname = template()
    cid = hexid()
    sql("INSERT INTO clusters (id, name, region, provider, max_environments) "
        "VALUES (:'p1', :'p2', 'asia-pacific', 'local', 1)", cid, "race-" + cid[:8])
    try:
        a, b = user(), user()
        h = Held("SELECT pg_advisory_xact_lock(hashtext('devpocket:clusters'));")
        body = {"name": "race", "template": tname, "cluster_id": cid}
        ts, out = in_threads(lambda: req("POST", API, a, body), lambda: req("POST", API, b, body))
        wait_backends("wait_event_type = 'Lock' AND wait_event = 'advisory' "
                      "AND application_name <> 'dp-test-held'", 2)
        h.end()
        for t in ts:
            t.join(30)
        got = sorted((r.status, r.json.get("detail")) for r in out)
        eq(got[0][0], 201, "one created")
        eq(got[1], (503, "No cluster available"), "the other refused")
        eq(sql("SELECT count(*) FROM environments WHERE cluster_id = :'p1' "
               "AND status <> 'terminated'", cid), [["1"]], "one on the cluster")
    finally:
        sql("UPDATE environments SET status = 'terminated', terminated_at = now() "
            "WHERE cluster_id = :'p1'", cid)
        sql("UPDATE clusters SET status = 'inactive' WHERE id = :'p1'", cid)


def test_env_worker_sweeps():
    """The worker's reconcile: an environment left creating with no job to
    move it becomes error (§4.2, "provisioning fails"); this host's
    WebSocket rows of gone processes (an unclaimed reservation, a dead pid)
    are dropped so that idle auto-stop and the socket limit see the truth."""
    u = user()
    stuck = insert_env(u, "creating")
    sql("UPDATE environments SET updated_at = now() - interval '10 minutes' "
        "WHERE id = :'p1'", stuck)
    run = insert_env(u, "running")
    host = socket.gethostname()
    # An unclaimed reservation, a pid that cannot exist, a live process.
    for slot, pid, age in ((hexid(), 0, "1 hour"), (hexid(), 2 ** 22 + 12345, "1 second"),
                           (hexid(), os.getpid(), "1 hour")):
        sql("INSERT INTO ws_connections (id, user_id, kind, environment_id, pid, host, "
            "started_at) VALUES (:'p1', :'p2', 'terminal', :'p3', :'p4', :'p5', "
            "now() - :'p6'::interval)", slot, u["id"], run, pid, host, age)
        last = slot
    wait_status(u, stuck, "error", timeout=40)
    logs = [l["message"] for l in req("GET", API + "/" + stuck + "/logs", u).json["logs"]]
    check("Provisioning failed" in logs, "log entry: %r" % logs)
    deadline = time.time() + 30
    while time.time() < deadline:
        left = sql("SELECT id FROM ws_connections WHERE user_id = :'p1'", u["id"])
        if left == [[last]]:
            break
        time.sleep(0.3)
    eq(left, [[last]], "only the live process's row is left")


def test_env_purge_retries_failed_destroy():
    """A terminated environment past retention whose destroy failed for
    good is not purged (its compute would be left with nothing to retry
    from) but destroyed again, at the worker's next purge (once a minute)."""
    u = user()
    gone = insert_env(u, "terminated")
    sql("UPDATE environments SET terminated_at = now() - interval '3 days' WHERE id = :'p1'", gone)
    sql("INSERT INTO jobs (kind, payload, state, attempts, max_attempts) VALUES "
        "('env.destroy', jsonb_build_object('id', :'p1'::text, 'generation', 1), 'failed', 8, 8)",
        gone)
    deadline = time.time() + 75
    while time.time() < deadline and len(jobs_for(gone)) < 2:
        time.sleep(0.5)
    check(len(jobs_for(gone)) >= 2, "a new destroy: %r" % jobs_for(gone))
    eq(sql("SELECT count(*) FROM environments WHERE id = :'p1'", gone), [["1"]],
       "kept while its destroy failed")


def test_env_release_retried_after_failing():
    """A stop or destroy that failed for good is run again, 10 minutes
    after its last failure, while the environment stays stopped, error or
    terminated: compute the API calls released must be released (§4.1),
    and nothing else would ask again (idle auto-stop sees only running)."""
    u = user()
    st, er, te, recent = (insert_env(u, s) for s in
                          ("stopped", "error", "terminated", "stopped"))
    for eid, kind, age in ((st, "env.stop", "11 minutes"),
                           (er, "env.stop", "11 minutes"),
                           (te, "env.destroy", "11 minutes"),
                           (recent, "env.stop", "1 minute")):
        sql("INSERT INTO jobs (kind, payload, state, attempts, max_attempts, "
            "updated_at) VALUES (:'p2', jsonb_build_object('id', :'p1'::text, "
            "'generation', 1), 'failed', 8, 8, now() - :'p3'::interval)",
            eid, kind, age)
    deadline = time.time() + 30     # the status pass runs every 10 s
    while time.time() < deadline and not all(
            len(jobs_for(e)) >= 2 for e in (st, er, te)):
        time.sleep(0.5)
    for eid, kind in ((st, "env.stop"), (er, "env.stop"), (te, "env.destroy")):
        js = jobs_for(eid)
        check(len(js) >= 2 and js[1][0] == kind,
              "%s: a new %s: %r" % (eid, kind, js))
    eq(len(jobs_for(recent)), 1, "a failure a minute old waits")


def test_env_create_rate_limit():
    local_cluster()
    _, tname = template()
    u = user()
    statuses = [req("POST", API, u, {"name": "-bad"}).status for _ in range(10)]
    eq(statuses, [422] * 10, "ten attempts")
    r = req("POST", API, u, {"name": "ok", "template": tname})
    eq(r.status, 429, "eleventh attempt")
    eq(r.json["detail"], "Too many requests. Please try again later.", "429 detail")
    check(int(r.headers["Retry-After"]) >= 1, "Retry-After")
    # The limit comes before content type and JSON (§0.9), and such
    # attempts count too.
    eq(req("POST", API, u, raw="{").status, 429, "bad JSON over the limit")
    eq(req("POST", API, u, raw="{}").status, 429, "empty object over the limit")
    r = http("POST", API, raw="name=x", headers=dict(u["headers"], **{"Content-Type": "text/plain"}))
    eq(r.status, 429, "wrong content type over the limit")
    v = user()
    eq([req("POST", API, v, raw="{").status for _ in range(10)], [400] * 10, "ten bad bodies")
    eq(req("POST", API, v, {"name": "ok", "template": tname}).status, 429, "they counted")
    a = admin()
    statuses = {req("POST", API, a, {"name": "-bad"}).status for _ in range(12)}
    eq(statuses, {422}, "admin exempt")


# -------------------------------------------------------------------- reads

def test_env_list_filters_and_pages():
    u = user("pro")
    tid, tname = template()
    tid2, _ = template()
    ids = [insert_env(u, st, tid=tid) for st in ("stopped", "error", "terminated")]
    other = insert_env(u, "stopped", tid=tid2)
    sql("UPDATE environments SET created_at = now() - (interval '1 minute' * "
        "array_position(ARRAY[:'p1', :'p2', :'p3', :'p4'], id)) WHERE user_id = :'p5'",
        other, ids[0], ids[1], ids[2], u["id"])
    r = req("GET", API, u)
    eq(r.status, 200, "list")
    eq([e["id"] for e in r.json], [other, ids[0], ids[1]], "newest first, no terminated")
    eq(r.headers["X-Total-Count"], "3", "total")
    r = req("GET", API + "/?include_terminated=true&limit=2&offset=1", u)
    eq([e["id"] for e in r.json], [ids[0], ids[1]], "page")
    eq(r.headers["X-Total-Count"], "4", "total with terminated")
    r = req("GET", API + "?include_terminated=1&offset=10", u)
    eq((r.json, r.headers["X-Total-Count"]), ([], "4"), "past the end")
    # A page that is not full counts itself; a full one asks the count.
    r = req("GET", API + "?include_terminated=true&limit=2&offset=3", u)
    eq(([e["id"] for e in r.json], r.headers["X-Total-Count"]), ([ids[2]], "4"), "last page")
    for q, n in (("limit=4", 3), ("limit=3", 3), ("limit=1", 1), ("limit=2&offset=2", 1)):
        r = req("GET", API + "?" + q, u)
        eq((len(r.json), r.headers["X-Total-Count"]), (n, "3"), q)
    eq(req("GET", API + "?status=running", u).headers["X-Total-Count"], "0", "none")
    eq([e["id"] for e in req("GET", API + "?status=terminated", u).json], [ids[2]], "terminated")
    eq([e["id"] for e in req("GET", API + "?status_filter=error", u).json], [ids[1]], "alias")
    eq([e["id"] for e in req("GET", API + "?status=stopped&status_filter=error", u).json],
       [other, ids[0]], "status wins")
    eq([e["id"] for e in req("GET", API + "?template_id=" + tid2, u).json], [other], "by id")
    name2 = sql("SELECT name FROM templates WHERE id = :'p1'", tid2)[0][0]
    eq([e["id"] for e in req("GET", API + "?template_id=" + name2, u).json], [other], "by name")
    eq(req("GET", API + "?template_id=%FF%00", u).json, [], "hostile template_id")
    for q in ("status=bogus", "status_filter=Running", "include_terminated=yes", "limit=0",
              "limit=501", "offset=-1"):
        eq(req("GET", API + "?" + q, u).status, 422, q)


def test_env_list_first_page_with_authentication():
    """GET /environments without a query reads its page in the bearer
    check's statement (lib/auth.c, the rider): the same body as the
    environments statement's (?limit=100), a full page counted, and a
    failure of that read neither a 401 nor the caller's fault."""
    u = user("admin")
    tid, _ = template()
    ids = [insert_env(u, st, tid=tid) for st in ("running", "stopped", "error", "terminated")]
    sql("UPDATE environments SET created_at = now() - (interval '1 minute' * "
        "array_position(ARRAY[:'p1', :'p2', :'p3', :'p4'], id)) WHERE user_id = :'p5'",
        ids[0], ids[1], ids[2], ids[3], u["id"])
    sql("INSERT INTO metric_samples (environment_id, cpu_usage, memory_usage, storage_usage, "
        "network_rx, network_tx) VALUES (:'p1', 12.5, 40, 4096, 0, 0)", ids[0])
    a = req("GET", API, u)
    b = req("GET", API + "?limit=100", u)
    eq((a.status, b.status), (200, 200), "both paths")
    eq(a.body, b.body, "the same bytes either way")
    eq([e["id"] for e in a.json], ids[:3], "newest first, no terminated")
    eq((a.json[0]["cpu_usage"], a.json[0]["storage_usage"]), (12.5, 4096), "usage")
    eq(a.headers["X-Total-Count"], "3", "total")
    eq(req("GET", API, user()).json, [], "none for another user")
    # A full first page (100) is counted; the 101st is on the next.
    sql("INSERT INTO environments (id, user_id, name, template_id, docker_image, port, "
        "resources, cluster_id, status) SELECT substr(md5(random()::text || n), 1, 24), "
        "user_id, name || '-' || n, template_id, docker_image, port, resources, cluster_id, "
        "'stopped' FROM environments, generate_series(1, 98) AS n WHERE id = :'p1'", ids[1])
    a = req("GET", API, u)
    eq((len(a.json), a.headers["X-Total-Count"]), (100, "101"), "full page")
    eq(a.body, req("GET", API + "?limit=100", u).body, "full page, both paths")
    eq(len(req("GET", API + "?offset=100", u).json), 1, "the rest")
    # The read failing (its table away): the caller is still the caller.
    v = user()
    insert_env(v, "running")
    try:
        sql("ALTER TABLE environment_usage RENAME TO environment_usage_away")
        r = req("GET", API, v)
        eq(r.status, 500, "the list's own failure, not 401")
        eq(req("GET", "/api/v1/auth/me", v).status, 200, "the caller")
    finally:
        sql("ALTER TABLE environment_usage_away RENAME TO environment_usage")
    eq(len(req("GET", API, v).json), 1, "back")


def test_env_list_first_page_refusals():
    """The first page read with the bearer check (the rider) is the
    same answer as the normal path's for HEAD, and never the answer of a
    refused request: 429 over the limit, 401 for a disabled account."""
    u = user()
    insert_env(u, "stopped")
    r = http("HEAD", API, headers=u["headers"])
    eq((r.status, r.body, r.headers["X-Total-Count"], r.headers["X-RateLimit-Limit"]),
       (200, b"", "1", "100"), "HEAD")
    last = None
    for _ in range(101):
        last = req("GET", API, u)
        if last.status == 429:
            break
    eq((last.status, last.json["detail"], last.headers["X-RateLimit-Remaining"]),
       (429, "Too many requests. Please try again later.", "0"), "over the limit")
    check("X-Total-Count" not in last.headers, "no page with the 429")
    v = user()
    insert_env(v, "stopped")
    eq(req("GET", API, v).status, 200, "before")
    sql("UPDATE users SET is_active = false WHERE id = :'p1'", v["id"])
    r = req("GET", API, v)
    eq((r.status, r.json["detail"]), (401, "Could not validate credentials"), "disabled")


def test_env_shows_template_and_cluster_changes():
    """An environment's template and region are copies on its row
    (sql/012): a template or cluster changed through the API shows at
    once in every environment of it, and one created after shows the new
    values."""
    a = admin()
    u = user()
    tid, tname = template(env={"A": "t", "B": "t"})
    cid = hexid()
    sql("INSERT INTO clusters (id, name, region, provider, endpoint, status) VALUES (:'p1', "
        ":'p2', 'eu-central', 'kubernetes', 'https://127.0.0.1:9', 'maintenance')",
        cid, "c-" + cid[:12])
    eid = insert_env(u, "stopped", tid=tid)
    sql("UPDATE environments SET cluster_id = :'p1', environment_variables = "
        "'{\"B\": \"mine\"}' WHERE id = :'p2'", cid, eid)
    e = req("GET", API + "/" + eid, u).json
    eq((e["template"], e["template_name"], e["region"], e["environment_variables"]),
       (tname, "Test " + tname, "eu-central", {"A": "t", "B": "mine"}), "copied")
    r = req("PUT", "/api/v1/templates/" + tid, a, {"display_name": "Renamed",
            "environment_variables": {"A": "new", "C": "new"}})
    eq(r.status, 200, "template updated: %s" % r.body)
    r = req("PUT", "/api/v1/clusters/" + cid, a, {"region": "us-west"})
    eq(r.status, 200, "cluster updated: %s" % r.body)
    for e in (req("GET", API + "/" + eid, u).json, req("GET", API, u).json[0],
              req("GET", API + "?template_id=" + tname, u).json[0]):
        eq((e["id"], e["template_name"], e["region"], e["environment_variables"]),
           (eid, "Renamed", "us-west", {"A": "new", "B": "mine", "C": "new"}), "followed")
    sql("UPDATE templates SET name = :'p1' WHERE id = :'p2'", tname + "x", tid)
    eq(req("GET", API + "/" + eid, u).json["template"], tname + "x", "renamed (templates load)")
    eq([e["id"] for e in req("GET", API + "?template_id=" + tname + "x", u).json], [eid],
       "filtered by the new name")
    eid2 = insert_env(u, "stopped", tid=tid)
    e = req("GET", API + "/" + eid2, u).json
    eq((e["template"], e["template_name"]), (tname + "x", "Renamed"), "created after")


def test_env_isolation_and_malformed_ids():
    a = user()
    eid = insert_env(a, "running")
    b = user()
    paths = [("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/start"), ("POST", "/stop"),
             ("POST", "/restart"), ("GET", "/metrics"), ("GET", "/logs")]
    for ident in (eid, "x" * 24, eid.upper(), "1", hexid()):
        for m, suffix in paths:
            r = req(m, API + "/" + ident + suffix, b, {"name": "zz"} if m == "PUT" else None)
            eq((r.status, r.json and r.json.get("detail")), (404, "Environment not found"),
               "%s %s%s by another user" % (m, ident, suffix))
    eq(req("GET", API, b).json, [], "not listed for b")
    eq(req("GET", API + "/" + eid, a).status, 200, "owner still sees it")
    eq(sql("SELECT status, name FROM environments WHERE id = :'p1'", eid)[0],
       ["running", "e" + eid[:10]], "untouched")


def test_env_put_fields():
    u = user("starter")
    eid = insert_env(u, "stopped", name="alpha")
    insert_env(u, "running", name="beta")
    gen0 = sql("SELECT generation FROM environments WHERE id = :'p1'", eid)[0][0]
    r = req("PUT", API + "/" + eid, u, {"name": "Gamma", "description": "hello",
                                        "resources": {"memory": "2Gi"},
                                        "environment_variables": {"X": "1"}})
    eq(r.status, 200, "put: %s" % (r.body,))
    e = r.json
    eq((e["name"], e["description"]), ("gamma", "hello"), "name, description")
    eq(e["resources"], {"cpu": "500m", "memory": "2Gi", "storage": "10Gi"}, "merged")
    eq(e["environment_variables"], {"X": "1"}, "replaced")
    eq(req("PUT", API + "/" + eid, u, {"description": ""}).json["description"], None, "cleared")
    r = req("PUT", API + "/" + eid, u, {"name": "BETA"})
    eq((r.status, r.json["detail"]), (409, "Environment with this name already exists"), "409")
    r = req("PUT", API + "/" + eid, u, {"resources": {"cpu": "3"}, "name": "-x"})
    eq((r.status, codes(r.json)), (422, {("resources.cpu", "out_of_range"), ("name", "pattern")}),
       "422 on PUT")
    eq(req("PUT", API + "/" + eid, u, {"status": "paused"}).status, 422, "bad enum")
    eq(req("PUT", API + "/" + eid, u, {}).status, 200, "empty body")
    eq(req("PUT", API + "/" + eid, u, {"status": "stopped", "name": "gamma"}).status, 200, "same")
    eq(sql("SELECT generation FROM environments WHERE id = :'p1'", eid)[0][0], gen0,
       "no-ops change no generation")
    eq(req("PUT", API + "/" + eid, u, raw=b"{nope").status, 400, "bad JSON")


TRANSITIONS = {
    "creating": {"running": "creating", "error": "error"},
    "installing": {"stopped": "stopped", "error": "error", "terminated": "terminated"},
    "running": {"stopped": "stopped", "error": "error", "terminated": "terminated"},
    "stopped": {"running": "creating", "terminated": "terminated"},
    "error": {"running": "creating", "terminated": "terminated"},
    "terminated": {},
}
STATUSES = ["creating", "installing", "running", "stopped", "terminated", "error"]
JOB_OF = {"stopped": "env.stop", "error": "env.stop", "terminated": "env.destroy",
          "creating": "env.start"}


def test_env_put_transition_table():
    u = user("admin")
    for cur in STATUSES:
        for new in STATUSES:
            eid = insert_env(u, cur)
            r = req("PUT", API + "/" + eid, u, {"status": new})
            row = sql("SELECT status, generation FROM environments WHERE id = :'p1'", eid)[0]
            if new == cur:
                eq((r.status, row), (200, [cur, "1"]), "%s -> same" % cur)
            elif new in TRANSITIONS[cur]:
                want = TRANSITIONS[cur][new]
                eq((r.status, r.json["status"]), (200, want), "%s -> %s" % (cur, new))
                if cur == "creating" and new == "running":
                    eq(row, ["creating", "1"], "accepted without effect")
                    eq(jobs_for(eid), [], "no job")
                else:
                    eq(row, [want, "2"], "%s -> %s applied, generation bumped" % (cur, new))
                    check(any(j[0] == JOB_OF[want] and j[1] == "2" for j in jobs_for(eid)),
                          "job %s generation 2 for %s -> %s: %r" % (JOB_OF[want], cur, new,
                                                                    jobs_for(eid)))
            else:
                eq((r.status, r.json["detail"]),
                   (400, "Cannot transition environment from %s to %s" % (cur, new)),
                   "%s -> %s" % (cur, new))
                eq(row, [cur, "1"], "nothing applied")
    # Terminated: any change but status → 400; checks happen before anything is applied.
    eid = insert_env(u, "terminated", name="gone")
    r = req("PUT", API + "/" + eid, u, {"description": "x"})
    eq((r.status, r.json["detail"]), (400, "Cannot modify a terminated environment"), "term")
    eq(req("PUT", API + "/" + eid, u, {"name": "gone", "status": "terminated"}).status, 200,
       "unchanged values on terminated")
    eid = insert_env(u, "running", name="keep")
    r = req("PUT", API + "/" + eid, u, {"name": "renamed", "status": "creating"})
    eq(r.status, 400, "bad transition with a rename")
    eq(sql("SELECT name FROM environments WHERE id = :'p1'", eid), [["keep"]], "not renamed")


def test_env_actions_and_texts():
    u = user("admin")
    acts = {
        "start": ({"stopped", "error"}, "Environment start initiated", "creating",
                  lambda s: "Environment is not in stopped state"),
        "stop": ({"running", "installing"}, "Environment stop initiated", "stopped",
                 lambda s: "Environment is not running"),
        "restart": ({"running", "stopped", "error"}, "Environment restart initiated", "creating",
                    lambda s: "Environment in %s state cannot be restarted" % s),
    }
    for act, (ok, msg, new, err) in acts.items():
        for cur in STATUSES:
            eid = insert_env(u, cur)
            r = req("POST", API + "/" + eid + "/" + act, u)
            if cur in ok:
                eq((r.status, r.json), (200, {"message": msg, "status": new}), act + " " + cur)
                eq(sql("SELECT status, generation FROM environments WHERE id = :'p1'", eid),
                   [[new, "2"]], "%s from %s" % (act, cur))
                kinds = [j[0] for j in jobs_for(eid)]
                check("env." + act in kinds, "job env.%s: %r" % (act, kinds))
            else:
                eq((r.status, r.json["detail"]), (400, err(cur)), "%s from %s" % (act, cur))
                eq(sql("SELECT generation FROM environments WHERE id = :'p1'", eid), [["1"]],
                   "unchanged")


def test_env_delete_and_retention():
    u = user()
    eid = insert_env(u, "running")
    r = req("DELETE", API + "/" + eid, u)
    eq((r.status, r.body), (204, b""), "204")
    check("Content-Type" not in r.headers, "no content type")
    row = sql("SELECT status, terminated_at IS NOT NULL, generation FROM environments "
              "WHERE id = :'p1'", eid)[0]
    eq(row, ["terminated", "t", "2"], "terminated at once")
    check(["env.destroy", "2", "queued"] in jobs_for(eid) or
          any(j[0] == "env.destroy" for j in jobs_for(eid)), "destroy job")
    eq(req("DELETE", API + "/" + eid, u).status, 204, "again")
    eq(sql("SELECT generation FROM environments WHERE id = :'p1'", eid), [["2"]], "no change")
    eq(req("GET", API + "/" + eid, u).json["status"], "terminated", "readable")
    eq(req("GET", API + "/" + eid + "/logs", u).status, 200, "logs readable")
    # Past the retention period every route answers 404.
    sql("UPDATE environments SET terminated_at = now() - interval '25 hours' WHERE id = :'p1'",
        eid)
    for m, s in (("GET", ""), ("DELETE", ""), ("GET", "/logs"), ("GET", "/metrics"),
                 ("POST", "/start")):
        eq(req(m, API + "/" + eid + s, u).status, 404, "%s %s after retention" % (m, s))
    eq(req("GET", API + "?include_terminated=true", u).json, [], "not listed")


def test_env_logs_route():
    u = user()
    eid = insert_env(u, "running")
    sql("INSERT INTO environment_logs (environment_id, ts, level, message, source) "
        "SELECT :'p1', timestamptz '2024-01-01 00:00:00Z' + n * interval '1 minute', "
        "CASE WHEN n % 2 = 0 THEN 'info' ELSE 'warning' END, 'line ' || n, 'install' "
        "FROM generate_series(1, 150) AS n", eid)
    r = req("GET", API + "/" + eid + "/logs", u)
    js = r.json
    eq(set(js), {"environment_id", "environment_name", "logs", "total_lines", "total",
                 "has_more"}, "keys")
    eq((js["environment_id"], js["environment_name"]), (eid, "e" + eid[:10]), "ids")
    eq((len(js["logs"]), js["total"], js["total_lines"], js["has_more"]), (100, 100, 100, True),
       "default 100")
    eq(js["logs"][0]["message"], "line 51", "oldest of the newest 100 first")
    eq(js["logs"][-1], {"timestamp": "2024-01-01T02:30:00.000000Z", "level": "info",
                        "message": "line 150", "source": "install"}, "entry")
    r = req("GET", API + "/" + eid + "/logs?lines=5&since=2024-01-01T02:25:00Z", u)
    eq([l["message"] for l in r.json["logs"]], ["line 146", "line 147", "line 148", "line 149",
                                                "line 150"], "lines")
    eq(r.json["has_more"], True, "older ones")
    r = req("GET", API + "/" + eid + "/logs?lines=1000&since=2024-01-01T04:25:00%2B02:00", u)
    eq((r.json["total"], r.json["has_more"]), (6, False), "since with offset")
    r = req("GET", API + "/" + eid + "/logs?since=2024-01-01T04:25:00+02:00", u)
    eq(r.json["total"], 6, "space read as +")
    for q in ("lines=0", "lines=1001", "lines=abc", "lines=-1"):
        eq(req("GET", API + "/" + eid + "/logs?" + q, u).status, 422, q)
    for since in ("yesterday", "2024-13-01T00:00:00Z", "%FF", "2024-01-01T25:00:00Z", "", "1" * 5000):
        r = req("GET", API + "/" + eid + "/logs?since=" + since, u)
        eq((r.status, r.json["detail"]), (400, "Invalid timestamp format. Use ISO format "
                                               "(e.g., 2024-01-01T12:00:00Z)"), since)
    # lines (422) is checked before the lookup (404); since (400) after.
    eq(req("GET", API + "/" + hexid() + "/logs?lines=0", u).status, 422, "422 before 404")
    eq(req("GET", API + "/" + hexid() + "/logs?since=x", u).status, 404, "404 before 400")


def test_env_metrics_route_and_usage():
    u = user()
    eid = insert_env(u, "running")
    r = req("GET", API + "/" + eid + "/metrics", u)
    eq(r.json, {"environment_id": eid, "metrics": [], "cpu_usage": 0, "memory_usage": 0,
                "storage_usage": 0, "disk_usage": 0, "network_in": 0, "network_out": 0,
                "timestamp": None}, "no samples")
    # Samples at 10, 20, …, 170 s into a 1-hour window; buckets of 1 minute.
    sql("INSERT INTO metric_samples (environment_id, ts, cpu_usage, memory_usage, "
        "storage_usage, network_rx, network_tx) SELECT :'p1', "
        "date_trunc('minute', now()) - interval '3 minutes' + n * interval '10 seconds', "
        "n, 2 * n, 1000 * n, n, 10 * n FROM generate_series(1, 17) AS n", eid)
    sql("INSERT INTO metric_samples (environment_id, ts, cpu_usage, memory_usage, "
        "storage_usage, network_rx, network_tx) VALUES (:'p1', now() - interval '2 hours', "
        "99, 99, 99, 99, 99)", eid)
    r = req("GET", API + "/" + eid + "/metrics?hours=1", u)
    js = r.json
    eq(js["cpu_usage"], 17, "newest cpu")
    eq((js["disk_usage"], js["storage_usage"], js["network_in"], js["network_out"]),
       (17000, 17000, 17, 170), "newest sample")
    check(TS.match(js["timestamp"]), "timestamp")
    total_rx = sum(m["network_rx"] for m in js["metrics"])
    eq(total_rx, sum(range(1, 18)), "rx summed, the old sample outside the window")
    check(3 <= len(js["metrics"]) <= 5, "about one bucket a minute: %d" % len(js["metrics"]))
    eq(js["metrics"][-1]["timestamp"], js["timestamp"], "bucket timestamp = its last sample")
    for m in js["metrics"]:
        eq(set(m), {"timestamp", "cpu_usage", "memory_usage", "storage_usage", "network_rx",
                    "network_tx"}, "sample keys")
        check(abs(m["memory_usage"] - 2 * m["cpu_usage"]) < 1e-6, "averaged")
    r = req("GET", API + "/" + eid + "/metrics?hours=168", u)
    eq(len(r.json["metrics"]), 2, "7-minute buckets hold everything in two")
    for q in ("hours=0", "hours=169", "hours=x"):
        eq(req("GET", API + "/" + eid + "/metrics?" + q, u).status, 422, q)
    # Environment usage: running with a sample ≤ 5 min old; else 0.
    e = req("GET", API + "/" + eid, u).json
    eq((e["cpu_usage"], e["memory_usage"], e["storage_usage"]), (17, 34, 17000), "usage")
    sql("UPDATE environments SET status = 'stopped' WHERE id = :'p1'", eid)
    e = req("GET", API + "/" + eid, u).json
    eq((e["cpu_usage"], e["storage_usage"]), (0, 0), "not running")
    eid2 = insert_env(u, "running")
    sql("INSERT INTO metric_samples (environment_id, ts, cpu_usage, memory_usage, storage_usage,"
        " network_rx, network_tx) VALUES (:'p1', now() - interval '6 minutes', 5, 5, 5, 0, 0)",
        eid2)
    eq(req("GET", API + "/" + eid2, u).json["cpu_usage"], 0, "stale sample")


# ------------------------------------------------------- local driver, e2e

def quick_template(cmds):
    return template(local=cmds)[1]


def test_env_local_lifecycle_end_to_end():
    local_cluster()
    tname = quick_template(["echo hello-from-step-1", "false", "echo done"])
    u = user()
    r = req("POST", API, u, {"name": "e2e", "template": tname})
    eq(r.status, 201, "create")
    eid = r.json["id"]
    e = wait_status(u, eid, "running", 30)
    eq(e["installation_completed"], True, "installation_completed")
    logs = req("GET", API + "/" + eid + "/logs?lines=1000", u).json["logs"]
    msgs = [(l["source"], l["level"], l["message"]) for l in logs]
    check(("install", "info", "hello-from-step-1") in msgs, "step output: %r" % msgs)
    check(("install", "info", "Running step 1/3: echo hello-from-step-1") in msgs, "step line")
    check(("install", "warning", "Command failed (exit 1): false") in msgs, "warning")
    check(("system", "info", "Environment is running") in msgs, "running entry")
    eq(sql("SELECT install_warnings FROM environments WHERE id = :'p1'", eid), [["1"]],
       "warnings recorded")
    # stop → stopped; start → running again; restart; delete.
    eq(req("POST", API + "/" + eid + "/stop", u).json["status"], "stopped", "stop")
    wait_status(u, eid, "stopped", 5)
    time.sleep(1.5)
    eq(req("GET", API + "/" + eid, u).json["status"], "stopped", "stays stopped")
    eq(req("POST", API + "/" + eid + "/start", u).json["status"], "creating", "start")
    e = wait_status(u, eid, "running", 30)
    eq(req("POST", API + "/" + eid + "/restart", u).json["status"], "creating", "restart")
    wait_status(u, eid, "running", 30)
    runs = sum(1 for l in req("GET", API + "/" + eid + "/logs?lines=1000", u).json["logs"]
               if l["message"] == "Environment is running")
    eq(runs, 3, "three installs")
    eq(req("DELETE", API + "/" + eid, u).status, 204, "delete")
    eq(req("GET", API + "/" + eid, u).json["status"], "terminated", "terminated")
    deadline = time.time() + 15
    while time.time() < deadline:
        if sql("SELECT state FROM jobs WHERE kind = 'env.destroy' AND payload->>'id' = :'p1'",
               eid) == [["done"]]:
            break
        time.sleep(0.2)
    else:
        fail("destroy job not done: %r" % jobs_for(eid))


def test_env_local_compute_lost():
    """A running environment whose compute is gone becomes error with its
    log entry (§4.2) within the worker's status pass: whether the driver
    finds it failed (its state still says running) or stopped (something
    else than our stop ended it: its state no longer says running)."""
    local_cluster()
    tname = quick_template(["echo up"])
    owners = [user(), user()]       # a free plan holds one environment
    envs = [req("POST", API, u, {"name": "lost", "template": tname}).json["id"]
            for u in owners]
    for u, eid in zip(owners, envs):
        wait_status(u, eid, "running", 30)
    for i, eid in enumerate(envs):
        d = os.path.join(VAR, "envs", eid)
        with open(os.path.join(d, "server.pid")) as f:
            os.kill(int(f.read().split()[0]), signal.SIGKILL)
        if i == 1:
            with open(os.path.join(d, "state"), "w") as f:
                f.write("stopped\n")
    for u, eid in zip(owners, envs):
        wait_status(u, eid, "error", 30)
        logs = [l["message"] for l in
                req("GET", API + "/" + eid + "/logs", u).json["logs"]]
        check("Environment compute was lost" in logs, "%s: %r" % (eid, logs))


def test_env_local_metrics_sample():
    local_cluster()
    tname = quick_template(["(timeout 20 sh -c 'while :; do :; done' >/dev/null 2>&1 &)",
                            "echo burning"])
    u = user()
    eid = req("POST", API, u, {"name": "burn", "template": tname}).json["id"]
    wait_status(u, eid, "running", 30)
    deadline = time.time() + 20
    js = None
    while time.time() < deadline:
        js = req("GET", API + "/" + eid + "/metrics?hours=1", u).json
        if js["metrics"]:
            break
        time.sleep(0.5)
    check(js and js["metrics"], "a sample soon after running: %r" % js)
    check(js["cpu_usage"] > 0, "cpu while burning: %r" % js)
    check(js["memory_usage"] > 0 and js["storage_usage"] > 0, "memory and storage: %r" % js)
    e = req("GET", API + "/" + eid, u).json
    check(e["cpu_usage"] > 0 and e["storage_usage"] > 0, "usage in the object: %r" % e)
    req("DELETE", API + "/" + eid, u)


def _worker_pid():
    with open(os.path.join(VAR, "run", "worker.pid")) as f:
        return int(f.read().split()[0])


def _restart_worker():
    """Start the worker as bin/devpocket-stack does and record its pid file."""
    env = dict(os.environ, DP_STACK_VAR=VAR)
    log = open(os.path.join(LOG_DIR, "worker.log"), "ab")
    p = subprocess.Popen([os.path.join(ROOT, "bin", "devpocket-worker"), "--config", CONF],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                         start_new_session=True)
    log.close()
    with open("/proc/%d/stat" % p.pid) as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    with open(os.path.join(VAR, "run", "worker.pid"), "w") as f:
        f.write("%d %s\n" % (p.pid, start))
    return p.pid


def _tmux_servers(eid):
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"tmux" and \
                any(eid.encode() in a and a.endswith(b"tmux.sock") for a in argv):
            n += 1
    return n


def test_env_sandbox_refused_fails_closed():
    """A worker where bubblewrap is installed but refused: here the mount
    systemd's ProtectKernelTunables makes (/proc/sys bound read-only in
    the worker's mount namespace), under which the kernel refuses the
    sandbox's fresh /proc.  The environment fails with the reason in its
    log and no process of it starts; it used to start unconfined, able to
    read the service's keys."""
    if shutil.which("unshare") is None or not os.path.exists("/usr/bin/bwrap"):
        check(False, "unshare and bwrap are needed (packaging/install-deps.sh)")
    local_cluster()
    tname = quick_template(["echo must-not-run"])
    u = user()
    os.kill(_worker_pid(), signal.SIGKILL)
    env = dict(os.environ, DP_STACK_VAR=VAR)
    log = open(os.path.join(LOG_DIR, "worker.log"), "ab")
    p = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'mount --bind -o ro /proc/sys /proc/sys && exec "$0" "$@"',
         os.path.join(ROOT, "bin", "devpocket-worker"), "--config", CONF],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
        start_new_session=True)
    log.close()
    try:
        eid = req("POST", API, u, {"name": "refused", "template": tname}).json["id"]
        e = wait_status(u, eid, "error", 30)
        eq(e["status"], "error", "the start failed")
        msgs = [l["message"] for l in req("GET", API + "/" + eid + "/logs?lines=1000",
                                         u).json["logs"]]
        check(any("bubblewrap is installed but does not work here" in m for m in msgs),
              "the reason in the log: %r" % msgs)
        check(any(m.startswith("Installation failed: the sandbox does not work")
                  for m in msgs), "the install failed with it: %r" % msgs)
        check(not any("must-not-run" in m for m in msgs), "no step ran: %r" % msgs)
        eq(_tmux_servers(eid), 0, "no tmux server")
    finally:
        p.kill()
        p.wait()
        _restart_worker()
    req("DELETE", API + "/" + eid, u)


def test_env_worker_crash_mid_provision():
    """kill -9 the worker while it provisions; the restarted worker finishes
    the job (its dead pid is recognised at once) without a second tmux
    server."""
    local_cluster()
    tname = quick_template(["echo crash-test"])
    u = user()
    old = _worker_pid()
    os.kill(old, signal.SIGKILL)
    eid = req("POST", API, u, {"name": "crash", "template": tname}).json["id"]
    # The state a crash inside the driver call leaves: the job claimed by
    # the dead worker (attempt 1), the driver half way (its tmux server up),
    # the environment still creating.
    host = os.uname().nodename
    pid = _restart_worker()
    deadline = time.time() + 15
    while time.time() < deadline and _tmux_servers(eid) == 0:
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    check(_tmux_servers(eid) <= 1, "at most one server before recovery")
    sql("UPDATE jobs SET state = 'running', locked_by = :'p2', locked_at = now(), "
        "attempts = 1 WHERE kind = 'env.provision' AND payload->>'id' = :'p1'",
        eid, "%s:%d" % (host, pid))
    sql("UPDATE environments SET status = 'creating', generation = 1, install_log_offset = 0 "
        "WHERE id = :'p1'", eid)
    sql("DELETE FROM environment_logs WHERE environment_id = :'p1' AND source = 'install'", eid)
    _restart_worker()
    e = wait_status(u, eid, "running", 30)
    eq(e["status"], "running", "reached running")
    eq(_tmux_servers(eid), 1, "exactly one tmux server")
    eq(sql("SELECT state, attempts FROM jobs WHERE kind = 'env.provision' "
           "AND payload->>'id' = :'p1'", eid), [["done", "2"]], "the job finished on retry")
    msgs = [l["message"] for l in req("GET", API + "/" + eid + "/logs?lines=1000", u).json["logs"]]
    eq(msgs.count("crash-test"), 1, "install output copied once: %r" % msgs)
    req("DELETE", API + "/" + eid, u)


def test_env_zz_cleanup():
    """Terminate what the tests left on the dead cluster and drop its jobs,
    so the shared stack's worker does not keep retrying them."""
    if not _dead:
        return
    sql("UPDATE jobs SET state = 'failed', last_error = 'test cleanup' "
        "WHERE state = 'queued' AND kind LIKE 'env.%' AND payload->>'id' IN "
        "(SELECT id FROM environments WHERE cluster_id = :'p1')", _dead[0])
    sql("UPDATE environments SET status = 'terminated', terminated_at = now() "
        "WHERE cluster_id = :'p1' AND status <> 'terminated'", _dead[0])
