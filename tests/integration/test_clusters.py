"""Clusters routes of CONTRACT §2.6 through nginx.

The test database is shared with every other module, so these tests only
reason about the clusters they create (counts are deltas), delete them at the
end, and put the default cluster back the way they found it.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from harness import ROOT, admin, check, eq, http, register_user, sql, unique

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
CLUSTER_KEYS = {
    "id", "name", "description", "region", "provider", "endpoint",
    "is_default", "max_environments", "status", "active",
    "environments_count", "current_environments", "health_status",
    "last_health_check", "has_kube_config", "used_resources",
    "available_resources", "created_at", "updated_at"}
HEALTH_KEYS = {"cluster_id", "status", "message", "last_check", "last_checked",
               "response_time_ms", "error_message", "node_count"}
REGIONS = [("us-east", "US East"), ("us-west", "US West"),
           ("eu-central", "EU Central"), ("asia-pacific", "Asia Pacific"),
           ("southeast-asia", "Southeast Asia")]
TOKEN = "sekrit-token-" + unique("t")

CA_B64 = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIBtestCA\n"
                          b"-----END CERTIFICATE-----\n").decode()


def kubeconfig(server="https://kube.example.com:6443", token=TOKEN,
               current="main", extra=""):
    return ("apiVersion: v1\nkind: Config\n"
            "clusters:\n- name: c\n  cluster:\n    server: %s\n"
            "    certificate-authority-data: %s\n"
            "users:\n- name: u\n  user:\n    token: %s\n"
            "contexts:\n- name: main\n  context:\n    cluster: c\n"
            "    user: u\n    namespace: devpocket\n"
            "current-context: %s\n%s" % (server, CA_B64, token, current, extra))


def b64(text):
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


def api(method, path, who=None, body=None, raw=None, headers=None):
    h = dict(who["headers"]) if who else {}
    h.update(headers or {})
    return http(method, "/api/v1" + path, body=body, raw=raw, headers=h)


def codes(js):
    return {(e["field"], e["code"]) for e in js["errors"]}


def name(prefix="cl"):
    return prefix + "-" + unique("c")


class Clusters:
    """Creates clusters as an admin and removes them (and anything
    referencing them) afterwards; restores the default cluster."""

    def __init__(self):
        self.adm = admin()
        self.ids = []
        self.templates = []
        rows = sql("SELECT id FROM clusters WHERE is_default")
        self.default = rows[0][0] if rows else None

    def __enter__(self):
        return self

    def create(self, want=201, **body):
        body.setdefault("name", name())
        body.setdefault("region", "us-west")
        r = api("POST", "/clusters", self.adm, body=body)
        eq(r.status, want, "POST /clusters %r: %s" % (body.get("name"), r.body[:300]))
        if want == 201:
            self.ids.append(r.json["id"])
        return r.json

    def __exit__(self, *exc):
        for cid in self.ids:
            sql("DELETE FROM environments WHERE cluster_id = :'p1'", cid)
            sql("DELETE FROM clusters WHERE id = :'p1'", cid)
        for tid in self.templates:
            sql("DELETE FROM templates WHERE id = :'p1'", tid)
        if self.default is not None:
            sql("UPDATE clusters SET is_default = false WHERE is_default "
                "AND id <> :'p1'", self.default)
            sql("UPDATE clusters SET is_default = true WHERE id = :'p1'",
                self.default)
        return False


def check_cluster(c):
    eq(set(c), CLUSTER_KEYS, "Cluster keys")
    check(re.match(r"^[0-9a-f]{24}$", c["id"]), "id %r" % c["id"])
    eq(c["active"], c["status"] == "active", "active")
    eq(c["environments_count"], c["current_environments"], "counts")
    check(TS.match(c["created_at"]) and TS.match(c["updated_at"]), "timestamps")
    eq(set(c["used_resources"]), {"cpu", "memory", "storage"}, "used keys")
    for v in c["used_resources"].values():
        check(isinstance(v, (int, float)) and not isinstance(v, bool), "number")


def test_clusters_auth_and_roles():
    user = register_user()
    with Clusters() as cs:
        c = cs.create(provider="local")
        cid = c["id"]
        routes = [("GET", "/clusters"), ("POST", "/clusters"),
                  ("GET", "/clusters/" + cid), ("PUT", "/clusters/" + cid),
                  ("DELETE", "/clusters/" + cid),
                  ("GET", "/clusters/" + cid + "/health")]
        for m, p in routes:
            body = {"name": name(), "region": "us-east"} if m in ("POST", "PUT") else None
            r = api(m, p, None, body=body)
            eq(r.status, 401, "%s %s anonymous" % (m, p))
            eq(r.json["detail"], "Not authenticated", "detail")
            eq(r.headers.get("WWW-Authenticate"), "Bearer", "WWW-Authenticate")
            r = api(m, p, user, body=body)
            eq(r.status, 403, "%s %s as a free user" % (m, p))
            eq(r.json["detail"], "Admin access required", "detail")
        # A pro user is not an admin either (§7 #5).
        sql("UPDATE users SET subscription_plan = 'pro' WHERE id = :'p1'", user["id"])
        eq(api("GET", "/clusters", user).status, 403, "pro user")
        # The cluster survived the refused DELETE and PUT.
        r = api("GET", "/clusters/" + cid, cs.adm)
        eq(r.status, 200, "GET")
        eq(r.json["name"], c["name"], "name unchanged")
        # regions is open to any user.
        eq(api("GET", "/clusters/regions", user).status, 200, "regions as user")
        eq(api("GET", "/clusters/regions").status, 401, "regions anonymous")


def test_clusters_create_local():
    with Clusters() as cs:
        n = name("Loc")
        c = cs.create(name=n, region="eu-central", provider="local",
                      description="on this host", endpoint="https://ignored.example.com",
                      kube_config=b64(kubeconfig()), max_environments=7)
        check_cluster(c)
        eq(c["name"], n, "name keeps its case")
        eq(c["provider"], "local", "provider")
        eq(c["endpoint"], None, "endpoint is null for local")
        eq(c["has_kube_config"], False, "kube_config ignored for local")
        eq(c["region"], "eu-central", "region")
        eq(c["description"], "on this host", "description")
        eq(c["max_environments"], 7, "max_environments")
        eq(c["is_default"], False, "is_default")
        eq(c["status"], "active", "status defaults to active (§8)")
        eq(c["health_status"], "unknown", "never probed")
        eq(c["last_health_check"], None, "last_health_check")
        eq(c["environments_count"], 0, "count")
        eq(c["used_resources"], {"cpu": 0, "memory": 0, "storage": 0}, "used")
        eq(c["available_resources"], None, "available unknown before a probe")
        rows = sql("SELECT kube_config_sealed IS NULL, endpoint IS NULL FROM clusters "
                   "WHERE id = :'p1'", c["id"])
        eq(rows, [["t", "t"]], "nothing stored for local")
        r = api("GET", "/clusters/" + c["id"], cs.adm)
        eq(r.status, 200, "GET")
        eq(r.json, c, "GET equals the created object")
        # Same handler with one trailing slash; HEAD like GET.
        eq(api("GET", "/clusters/" + c["id"] + "/", cs.adm).json, c, "trailing slash")
        r = api("HEAD", "/clusters/" + c["id"], cs.adm)
        eq((r.status, r.body), (200, b""), "HEAD")
        # Defaults: provider kubernetes, max_environments 100, "" description.
        d = cs.create(description="")
        eq((d["provider"], d["max_environments"], d["description"]),
           ("kubernetes", 100, None), "defaults")
        # Without kube_config a kubernetes cluster uses the in-cluster account.
        eq((d["endpoint"], d["has_kube_config"]), (None, False), "in-cluster")


def test_clusters_kube_config_sealed_never_returned():
    with Clusters() as cs:
        yaml = kubeconfig(server="https://api.k8s.example.net:6443")
        c = cs.create(kube_config=b64(yaml))
        check_cluster(c)
        eq(c["endpoint"], "https://api.k8s.example.net:6443",
           "endpoint from the current context")
        eq(c["has_kube_config"], True, "has_kube_config")
        bodies = [api("GET", "/clusters/" + c["id"], cs.adm).body,
                  api("GET", "/clusters?limit=500", cs.adm).body,
                  api("PUT", "/clusters/" + c["id"], cs.adm, body={}).body]
        for b in bodies + [json.dumps(c).encode()]:
            check(TOKEN.encode() not in b, "token leaked in a response")
            check(b'"kube_config"' not in b and b"certificate-authority" not in b,
                  "kubeconfig leaked in a response")
            check(b64(yaml).encode()[:40] not in b, "base64 kubeconfig leaked")
        sealed = sql("SELECT kube_config_sealed FROM clusters WHERE id = :'p1'", c["id"])[0][0]
        check(sealed.startswith("v1:"), "sealed form: %r" % sealed[:10])
        check(TOKEN not in sealed and "current-context" not in sealed, "plain text stored")
        check(b64(yaml)[:40] not in sealed, "base64 of the plain text stored")
        raw = base64.b64decode(sealed[3:])
        check(TOKEN.encode() not in raw and b"apiVersion" not in raw, "not encrypted")
        check(len(raw) >= 12 + len(yaml) + 16, "nonce + ciphertext + tag")
        # An explicit endpoint wins over the kubeconfig's server.
        d = cs.create(kube_config=b64(yaml), endpoint="https://lb.example.net")
        eq(d["endpoint"], "https://lb.example.net", "explicit endpoint")
        sealed2 = sql("SELECT kube_config_sealed FROM clusters WHERE id = :'p1'", d["id"])[0][0]
        check(sealed2 != sealed, "a fresh nonce per seal")
        # Line-wrapped base64 (base64 -w 76) is accepted.
        wrapped = "\n".join(b64(yaml)[i:i + 76] for i in range(0, len(b64(yaml)), 76))
        e = cs.create(kube_config=wrapped)
        eq(e["has_kube_config"], True, "wrapped base64")


def test_clusters_create_validation():
    with Clusters() as cs:
        a = cs.adm
        r = api("POST", "/clusters", a, body={})
        eq(r.status, 422, "empty body")
        eq(codes(r.json), {("name", "missing"), ("region", "missing")}, "missing")
        bad = {"name": "ab", "region": "moon", "provider": "docker",
               "description": "d" * 201, "is_default": "yes",
               "max_environments": 0}
        r = api("POST", "/clusters", a, body=bad)
        eq(r.status, 422, "bad fields")
        eq(codes(r.json), {("name", "too_short"), ("region", "invalid_choice"),
                           ("provider", "invalid_choice"), ("description", "too_long"),
                           ("is_default", "type_error"),
                           ("max_environments", "out_of_range")}, "codes")
        cases = [
            ({"name": ""}, ("name", "too_short")),
            ({"name": "x" * 51}, ("name", "too_long")),
            ({"name": "bad name"}, ("name", "pattern")),
            ({"name": "clüster"}, ("name", "pattern")),
            ({"name": "a/b/c"}, ("name", "pattern")),
            ({"name": "nul\u0000name"}, ("name", "invalid_format")),
            ({"name": 12345}, ("name", "type_error")),
            ({"region": "US-EAST"}, ("region", "invalid_choice")),
            ({"max_environments": 1001}, ("max_environments", "out_of_range")),
            ({"max_environments": -5}, ("max_environments", "out_of_range")),
            ({"max_environments": 1.5}, ("max_environments", "type_error")),
            ({"max_environments": "10"}, ("max_environments", "type_error")),
            ({"endpoint": "http://kube.example.com"}, ("endpoint", "invalid_url")),
            ({"endpoint": "ftp://kube.example.com"}, ("endpoint", "invalid_url")),
            ({"endpoint": "https://"}, ("endpoint", "invalid_url")),
            ({"endpoint": "https://a b.example.com"}, ("endpoint", "invalid_url")),
            ({"kube_config": "not base64!!"}, ("kube_config", "invalid_format")),
            ({"kube_config": 42}, ("kube_config", "type_error")),
            ({"kube_config": b64("clusters: []\nusers: []\ncurrent-context: x\n")},
             ("kube_config", "invalid_format")),
            ({"kube_config": b64(kubeconfig(current="nowhere"))},
             ("kube_config", "invalid_format")),
            ({"kube_config": b64(kubeconfig(extra="x: &a [1]\ny: *a\n"))},
             ("kube_config", "invalid_format")),
            ({"kube_config": b64(kubeconfig().encode() + b"\xff\xfe\n")},
             ("kube_config", "invalid_format")),
            ({"kube_config": b64(kubeconfig().encode() + b"# \x00\n")},
             ("kube_config", "invalid_format")),
            ({"kube_config": b64(kubeconfig() + "#" + "x" * 300000 + "\n")},
             ("kube_config", "invalid_format")),
            ({"kube_config": b64(kubeconfig(token='"a\\r\\nX-Evil: 1"'))},
             ("kube_config", "invalid_format")),
            ({"kube_config": b64("[" * 5000)}, ("kube_config", "invalid_format")),
            # Its server would be the endpoint, which must be https://.
            ({"kube_config": b64(kubeconfig(server="http://kube.example.com"))},
             ("kube_config", "invalid_format")),
            ({"kube_config": b64(kubeconfig(
                extra="").replace("    certificate-authority-data:",
                                  "    insecure-skip-tls-verify: true\n"
                                  "    certificate-authority-data:"))},
             ("kube_config", "invalid_format")),
        ]
        for extra, want in cases:
            body = {"name": name(), "region": "us-east"}
            body.update(extra)
            r = api("POST", "/clusters", a, body=body)
            eq(r.status, 422, "POST %r" % (extra,))
            eq(codes(r.json), {want}, "POST %r" % (extra,))
            eq(r.json["detail"], "Validation error", "detail")
        # Rules beyond the field table land in the same list (§0.7).
        r = api("POST", "/clusters", a, body={
            "name": "bad name!", "region": "moon", "endpoint": "http://x.example.com",
            "kube_config": b64(kubeconfig(current="nowhere")), "max_environments": 0})
        eq(codes(r.json), {("name", "pattern"), ("region", "invalid_choice"),
                           ("endpoint", "invalid_url"), ("kube_config", "invalid_format"),
                           ("max_environments", "out_of_range")}, "every error at once")
        msg = [e["message"] for e in r.json["errors"] if e["field"] == "kube_config"][0]
        check("nowhere" in msg, "the message says why: %r" % msg)
        # For local, endpoint and kube_config are not even looked at.
        c = cs.create(provider="local", endpoint="http://x", kube_config="@@@")
        eq((c["endpoint"], c["has_kube_config"]), (None, False), "ignored for local")
        # null is absent; unknown fields are ignored.
        c = cs.create(description=None, endpoint=None, kube_config=None, colour="red")
        eq(c["description"], None, "null description")
        # Boundaries.
        c = cs.create(name="abc", max_environments=1)
        eq((c["name"], c["max_environments"]), ("abc", 1), "minimums")
        c = cs.create(name="Z_-9" + "y" * 46, max_environments=1000,
                      description="é" * 200)
        eq((len(c["name"]), c["max_environments"]), (50, 1000), "maximums")
        # Syntax and body shape.
        r = api("POST", "/clusters", a, raw=b"{\"name\": ")
        eq((r.status, r.json["detail"]), (400, "Invalid JSON in request body"), "bad JSON")
        r = api("POST", "/clusters", a, body=["name"])
        eq((r.status, codes(r.json)), (422, {("body", "type_error")}), "array body")
        r = api("POST", "/clusters", a, raw=b"name=x", headers={"Content-Type": "text/plain"})
        eq(r.status, 415, "content type")


def test_clusters_name_conflict():
    with Clusters() as cs:
        base = name("Dup")
        a = cs.create(name=base)
        r = api("POST", "/clusters", cs.adm, body={"name": base.lower(), "region": "us-east",
                                                  "provider": "local"})
        eq(r.status, 409, "case-insensitive duplicate")
        eq(r.json["detail"], "Cluster with name '%s' already exists" % base.lower(), "detail")
        b = cs.create(name=name("Other"))
        r = api("PUT", "/clusters/" + b["id"], cs.adm, body={"name": base.upper()})
        eq(r.status, 409, "PUT to a taken name")
        eq(r.json["detail"], "Cluster with name '%s' already exists" % base.upper(), "detail")
        # Renaming itself to another case is fine.
        r = api("PUT", "/clusters/" + a["id"], cs.adm, body={"name": base.upper()})
        eq((r.status, r.json["name"]), (200, base.upper()), "rename own case")
        # Deleted names are free again.
        eq(api("DELETE", "/clusters/" + b["id"], cs.adm).status, 204, "delete")
        c = cs.create(name=b["name"])
        eq(c["name"], b["name"], "name reused")


def test_clusters_is_default_exclusive():
    with Clusters() as cs:
        a = cs.create(is_default=True, region="asia-pacific")
        eq(a["is_default"], True, "a default")
        b = cs.create(is_default=True, region="southeast-asia", provider="local")
        eq(b["is_default"], True, "b default")
        eq(api("GET", "/clusters/" + a["id"], cs.adm).json["is_default"], False,
           "a cleared by b")
        eq(sql("SELECT count(*) FROM clusters WHERE is_default"), [["1"]], "one default")
        regions = {x["region"]: x for x in api("GET", "/clusters/regions", cs.adm).json["regions"]}
        eq(regions["southeast-asia"]["has_default"], True, "has_default follows b")
        eq(regions["asia-pacific"]["has_default"], False, "not a's region any more")
        r = api("PUT", "/clusters/" + a["id"], cs.adm, body={"is_default": True})
        eq((r.status, r.json["is_default"]), (200, True), "PUT a default")
        eq(api("GET", "/clusters/" + b["id"], cs.adm).json["is_default"], False,
           "b cleared by a")
        eq(sql("SELECT id FROM clusters WHERE is_default"), [[a["id"]]], "only a")
        # A created non-default leaves the default alone.
        cs.create(is_default=False)
        eq(sql("SELECT id FROM clusters WHERE is_default"), [[a["id"]]], "still a")
        r = api("PUT", "/clusters/" + a["id"], cs.adm, body={"is_default": False})
        eq(r.json["is_default"], False, "unset")
        eq(sql("SELECT count(*) FROM clusters WHERE is_default"), [["0"]], "no default")


def test_clusters_regions():
    user = register_user()
    with Clusters() as cs:
        def regions():
            r = api("GET", "/clusters/regions", user)
            eq(r.status, 200, "regions")
            eq(list(r.json), ["regions"], "body keys")
            out = r.json["regions"]
            eq([(x["region"], x["display_name"]) for x in out], REGIONS, "order and names")
            for x in out:
                eq(set(x), {"region", "display_name", "cluster_count", "available",
                            "has_default"}, "region keys")
                eq(x["available"], x["cluster_count"] > 0, "available")
            return {x["region"]: x for x in out}

        before = regions()
        cs.create(region="us-west")
        cs.create(region="us-west", provider="local")
        m = cs.create(region="us-west")
        i = cs.create(region="eu-central")
        api("PUT", "/clusters/" + m["id"], cs.adm, body={"status": "maintenance"})
        api("PUT", "/clusters/" + i["id"], cs.adm, body={"status": "inactive"})
        after = regions()
        eq(after["us-west"]["cluster_count"] - before["us-west"]["cluster_count"], 2,
           "active clusters only")
        eq(after["us-west"]["available"], True, "available")
        eq(after["eu-central"]["cluster_count"], before["eu-central"]["cluster_count"],
           "inactive not counted")
        api("PUT", "/clusters/" + i["id"], cs.adm, body={"status": "active"})
        eq(regions()["eu-central"]["cluster_count"],
           before["eu-central"]["cluster_count"] + 1, "active again")
        # Trailing slash; "regions" is never read as an id.
        eq(api("GET", "/clusters/regions/", user).status, 200, "trailing slash")
        eq(api("PUT", "/clusters/regions", cs.adm, body={}).status, 405, "regions is GET only")


def test_clusters_update():
    with Clusters() as cs:
        c = cs.create(description="first", kube_config=b64(kubeconfig()))
        cid = c["id"]
        time.sleep(0.01)
        r = api("PUT", "/clusters/" + cid, cs.adm, body={})
        eq((r.status, r.json["updated_at"]), (200, c["updated_at"]), "empty PUT changes nothing")
        n2 = name("Ren")
        r = api("PUT", "/clusters/" + cid, cs.adm, body={
            "name": n2, "region": "eu-central", "description": "second",
            "max_environments": 5, "status": "maintenance", "provider": "local",
            "endpoint": "https://other.example.com"})
        eq(r.status, 200, "PUT %s" % r.body[:300])
        u = r.json
        check_cluster(u)
        eq((u["name"], u["region"], u["description"], u["max_environments"]),
           (n2, "eu-central", "second", 5), "fields")
        eq((u["status"], u["active"]), ("maintenance", False), "status")
        eq(u["provider"], "kubernetes", "provider cannot change")
        eq(u["endpoint"], "https://other.example.com", "endpoint")
        eq(u["has_kube_config"], True, "kubeconfig kept")
        eq(u["created_at"], c["created_at"], "created_at")
        check(u["updated_at"] > c["updated_at"], "updated_at moves")
        eq(api("GET", "/clusters/" + cid, cs.adm).json, u, "GET after PUT")
        # A new kubeconfig moves the endpoint to its server unless given.
        old = sql("SELECT kube_config_sealed FROM clusters WHERE id = :'p1'", cid)[0][0]
        r = api("PUT", "/clusters/" + cid, cs.adm, body={
            "kube_config": b64(kubeconfig(server="https://new.example.com"))})
        eq(r.json["endpoint"], "https://new.example.com", "endpoint follows kubeconfig")
        new = sql("SELECT kube_config_sealed FROM clusters WHERE id = :'p1'", cid)[0][0]
        check(new.startswith("v1:") and new != old, "re-sealed")
        # "" clears description, endpoint and kube_config.
        r = api("PUT", "/clusters/" + cid, cs.adm, body={
            "description": "", "endpoint": "", "kube_config": "", "status": "active"})
        eq((r.json["description"], r.json["endpoint"], r.json["has_kube_config"],
            r.json["active"]), (None, None, False, True), "cleared")
        eq(sql("SELECT kube_config_sealed IS NULL FROM clusters WHERE id = :'p1'", cid),
           [["t"]], "sealed cleared")
        # Validation.
        r = api("PUT", "/clusters/" + cid, cs.adm, body={
            "status": "broken", "max_environments": 0, "region": "mars", "name": "x!"})
        eq(r.status, 422, "PUT validation")
        eq(codes(r.json), {("status", "invalid_choice"), ("max_environments", "out_of_range"),
                           ("region", "invalid_choice"), ("name", "too_short")}, "codes")
        r = api("PUT", "/clusters/" + cid, cs.adm, body={"name": "bad name"})
        eq(codes(r.json), {("name", "pattern")}, "name pattern")
        r = api("PUT", "/clusters/" + cid, cs.adm, body={
            "name": "bad name", "status": "gone", "endpoint": "ftp://x.example.com",
            "kube_config": "%%%", "description": 7})
        eq(codes(r.json), {("name", "pattern"), ("status", "invalid_choice"),
                           ("endpoint", "invalid_url"), ("kube_config", "invalid_format"),
                           ("description", "type_error")}, "every PUT error at once")
        r = api("PUT", "/clusters/" + cid, cs.adm, body={"endpoint": "http://plain.example.com"})
        eq(codes(r.json), {("endpoint", "invalid_url")}, "endpoint https")
        r = api("PUT", "/clusters/" + cid, cs.adm, body={"kube_config": b64("a: b\n")})
        eq(codes(r.json), {("kube_config", "invalid_format")}, "kubeconfig checked")
        r = api("PUT", "/clusters/" + cid, cs.adm, body={"status": "terminated"})
        eq(codes(r.json), {("status", "invalid_choice")}, "status choices")
        # A local cluster ignores endpoint and kube_config.
        loc = cs.create(provider="local")
        r = api("PUT", "/clusters/" + loc["id"], cs.adm, body={
            "endpoint": "https://x.example.com", "kube_config": b64(kubeconfig())})
        eq((r.status, r.json["endpoint"], r.json["has_kube_config"]),
           (200, None, False), "local PUT")
        # Unknown and malformed ids.
        for bad in ("0" * 24, "zz", cid.upper(), cid + "0", "regions2"):
            r = api("PUT", "/clusters/" + bad, cs.adm, body={"description": "x"})
            eq((r.status, r.json["detail"]), (404, "Cluster not found"), "PUT %s" % bad)
        # Processing order: 422 before 404.
        r = api("PUT", "/clusters/" + "0" * 24, cs.adm, body={"max_environments": 0})
        eq(r.status, 422, "validation before lookup")
        r = api("PUT", "/clusters/zz", cs.adm, body={"name": "no way"})
        eq(r.status, 422, "validation before lookup (malformed id)")
        # The fields a kubernetes cluster's PUT checks too (an unknown id
        # has no provider yet: all of them are checked).
        for body, field in (({"endpoint": "ftp://x"}, "endpoint"),
                            ({"kube_config": "!!!"}, "kube_config")):
            r = api("PUT", "/clusters/" + "0" * 24, cs.adm, body=body)
            eq((r.status, r.json and codes(r.json)),
               (422, {(field, "invalid_url" if field == "endpoint"
                       else "invalid_format")}), "PUT unknown id %r" % body)
        r = api("PUT", "/clusters/" + cid, cs.adm, raw=b"[1,")
        eq(r.status, 400, "bad JSON on PUT")


def insert_env(cs, cluster_id, user_id, resources, status="stopped"):
    """A template and an environment row straight into the database."""
    tid = os.urandom(12).hex()
    sql("INSERT INTO templates (id, name, display_name, description, category, "
        "docker_image, default_resources) VALUES (:'p1', :'p2', 'T', 'test', "
        "'programming_language', 'alpine:3', '{}')", tid, "tpl-" + tid)
    cs.templates.append(tid)
    eid = os.urandom(12).hex()
    sql("INSERT INTO environments (id, user_id, name, template_id, docker_image, port, "
        "resources, status, cluster_id) VALUES (:'p1', :'p2', :'p3', :'p4', 'alpine:3', "
        "8080, :'p5'::jsonb, :'p6', :'p7')", eid, user_id, "env-" + eid[:8], tid,
        json.dumps(resources), status, cluster_id)
    return eid


def test_clusters_delete_and_usage():
    user = register_user()
    with Clusters() as cs:
        c = cs.create(provider="local")
        cid = c["id"]
        e1 = insert_env(cs, cid, user["id"], {"cpu": "500m", "memory": "1Gi", "storage": "5Gi"})
        # Stable statuses only: the worker leaves stopped and error alone.
        insert_env(cs, cid, user["id"], {"cpu": "1.5", "memory": "512Mi", "storage": "10Gi"},
                   status="error")
        insert_env(cs, cid, user["id"], {"cpu": "4", "memory": "8Gi", "storage": "50Gi"},
                   status="terminated")
        g = api("GET", "/clusters/" + cid, cs.adm).json
        eq((g["environments_count"], g["current_environments"]), (2, 2),
           "non-terminated environments")
        eq(g["used_resources"], {"cpu": 2.0, "memory": 1.5, "storage": 15.0}, "used")
        eq(g["available_resources"], None, "no capacity known")
        # With a capacity from a probe, available = capacity - used.
        sql("UPDATE clusters SET capacity = '{\"cpu\": 8, \"memory\": 16.5, "
            "\"storage\": 100}' WHERE id = :'p1'", cid)
        g = api("GET", "/clusters/" + cid, cs.adm).json
        eq(g["available_resources"], {"cpu": 6.0, "memory": 15.0, "storage": 85.0},
           "available")
        listed = [x for x in api("GET", "/clusters?limit=500", cs.adm).json if x["id"] == cid]
        eq(listed, [g], "list shows the same object")
        r = api("DELETE", "/clusters/" + cid, cs.adm)
        eq((r.status, r.json["detail"]), (409, "Cluster is in use by environments"), "in use")
        sql("UPDATE environments SET status = 'terminated', terminated_at = now() "
            "WHERE id = :'p1'", e1)
        eq(api("DELETE", "/clusters/" + cid, cs.adm).status, 409, "error still counts")
        sql("UPDATE environments SET status = 'terminated', terminated_at = now() "
            "WHERE cluster_id = :'p1'", cid)
        g = api("GET", "/clusters/" + cid, cs.adm).json
        eq(g["environments_count"], 0, "all terminated")
        eq(g["used_resources"], {"cpu": 0, "memory": 0, "storage": 0}, "nothing used")
        # A terminated environment whose destroy has not succeeded still
        # needs the cluster (failed: the worker leaves it alone here).
        sql("INSERT INTO jobs (kind, payload, state) VALUES ('env.destroy', "
            "jsonb_build_object('id', :'p1'::text), 'failed')", e1)
        r = api("DELETE", "/clusters/" + cid, cs.adm)
        eq((r.status, r.json["detail"]), (409, "Cluster is in use by environments"),
           "destroy not done")
        sql("INSERT INTO jobs (kind, payload, state) VALUES ('env.destroy', "
            "jsonb_build_object('id', :'p1'::text), 'done')", e1)
        r = api("DELETE", "/clusters/" + cid, cs.adm)
        eq((r.status, r.body), (204, b""), "DELETE")
        check("Content-Type" not in r.headers, "204 has no Content-Type")
        eq(sql("SELECT count(*) FROM environments WHERE id = :'p1'", e1), [["0"]],
           "terminated environments go with the cluster")
        r = api("GET", "/clusters/" + cid, cs.adm)
        eq((r.status, r.json["detail"]), (404, "Cluster not found"), "gone")
        r = api("DELETE", "/clusters/" + cid, cs.adm)
        eq((r.status, r.json["detail"]), (404, "Cluster not found"), "DELETE again")
        for bad in ("zz", "0" * 24, cid.upper()):
            r = api("DELETE", "/clusters/" + bad, cs.adm)
            eq((r.status, r.json["detail"]), (404, "Cluster not found"), "DELETE %s" % bad)
            r = api("GET", "/clusters/" + bad, cs.adm)
            eq((r.status, r.json["detail"]), (404, "Cluster not found"), "GET %s" % bad)


def test_clusters_list_pagination():
    with Clusters() as cs:
        tag = unique("pg")
        made = [cs.create(name="%s-%d" % (tag, i), provider="local") for i in (2, 0, 1)]
        r = api("GET", "/clusters?limit=500", cs.adm)
        eq(r.status, 200, "list")
        names = [x["name"] for x in r.json]
        eq(names, sorted(names), "ordered by name")
        total = int(r.headers["X-Total-Count"])
        eq(total, len(r.json), "X-Total-Count")
        eq(total, int(sql("SELECT count(*) FROM clusters")[0][0]), "count matches the table")
        mine = [x for x in r.json if x["name"].startswith(tag)]
        eq([x["name"] for x in mine], ["%s-%d" % (tag, i) for i in range(3)], "mine in order")
        for x in r.json:
            check_cluster(x)
        first = names.index(mine[0]["name"])
        r = api("GET", "/clusters?limit=2&offset=%d" % first, cs.adm)
        eq([x["name"] for x in r.json], [mine[0]["name"], mine[1]["name"]], "slice")
        eq(int(r.headers["X-Total-Count"]), total, "total before slicing")
        r = api("GET", "/clusters?offset=%d" % (total + 10), cs.adm)
        eq((r.status, r.json, int(r.headers["X-Total-Count"])), (200, [], total),
           "past the end")
        for q, field in (("limit=0", "limit"), ("limit=501", "limit"), ("limit=abc", "limit"),
                         ("offset=-1", "offset"), ("limit=1.5", "limit")):
            r = api("GET", "/clusters?" + q, cs.adm)
            eq(r.status, 422, q)
            eq({f for f, _ in codes(r.json)}, {field}, q)
        eq(api("GET", "/clusters/?limit=1", cs.adm).status, 200, "trailing slash")
        eq(api("PATCH", "/clusters", cs.adm, body={}).status, 405, "PATCH")
        r = api("OPTIONS", "/clusters/" + made[0]["id"] + "/health")
        eq(r.status, 204, "OPTIONS")
        eq(api("GET", "/clusters//health", cs.adm).status, 404, "empty segment")


def driver_present(name):
    return os.path.exists(os.path.join(ROOT, "lib", "driver_%s.c" % name))


def check_health(cs, cid, h):
    eq(set(h), HEALTH_KEYS, "ClusterHealth keys")
    eq(h["cluster_id"], cid, "cluster_id")
    check(h["status"] in ("healthy", "unhealthy"), "status %r" % h["status"])
    check(TS.match(h["last_check"]), "last_check")
    eq(h["last_checked"], h["last_check"], "last_checked")
    check(isinstance(h["response_time_ms"], int) and h["response_time_ms"] >= 0,
          "response_time_ms")
    if h["status"] == "healthy":
        eq((h["message"], h["error_message"]), ("Cluster is healthy", None), "healthy")
    else:
        check(isinstance(h["error_message"], str) and h["error_message"], "error_message")
        eq(h["message"], h["error_message"], "message equals error_message")
        eq(h["node_count"], None, "no node count when unhealthy")
    c = api("GET", "/clusters/" + cid, cs.adm).json
    eq(c["health_status"], h["status"], "health_status recorded")
    eq(c["last_health_check"], h["last_check"], "last_health_check recorded")
    return c


def test_clusters_health_local():
    with Clusters() as cs:
        c = cs.create(provider="local")
        r = api("GET", "/clusters/" + c["id"] + "/health", cs.adm)
        eq(r.status, 200, "health %s" % r.body[:300])
        h = r.json
        c2 = check_health(cs, c["id"], h)
        if driver_present("local"):
            eq(h["status"], "healthy", "local driver probe: %r" % h["message"])
            eq(h["node_count"], 1, "node_count of the local host")
            eq(sql("SELECT node_count FROM clusters WHERE id = :'p1'", c["id"]), [["1"]],
               "node_count stored")
            check(c2["available_resources"] is None or
                  set(c2["available_resources"]) == {"cpu", "memory", "storage"},
                  "available shape")
        else:
            # Until lib/driver_local.c is linked the probe cannot run.
            eq(h["status"], "unhealthy", "no local driver yet")
            check("driver" in h["message"], "message names the driver: %r" % h["message"])
        time.sleep(0.01)
        h2 = api("GET", "/clusters/" + c["id"] + "/health/", cs.adm).json
        check(h2["last_check"] > h["last_check"], "probes again each time")
        for bad in ("0" * 24, "xyz"):
            r = api("GET", "/clusters/%s/health" % bad, cs.adm)
            eq((r.status, r.json["detail"]), (404, "Cluster not found"), "health %s" % bad)


def test_clusters_health_kubernetes_unreachable():
    """A kubernetes cluster whose API server refuses connections: 200 with
    status unhealthy, within the 10 s bound.  (A healthy probe needs the
    fake API server of tests/fake-kube/, covered by the driver's tests.)"""
    with Clusters() as cs:
        c = cs.create(kube_config=b64(kubeconfig(server="https://127.0.0.1:1")))
        t0 = time.time()
        r = api("GET", "/clusters/" + c["id"] + "/health", cs.adm)
        took = time.time() - t0
        eq(r.status, 200, "health")
        eq(r.json["status"], "unhealthy", "refused connection: %r" % r.json["message"])
        check(took < 12, "bounded: took %.1f s" % took)
        check(TOKEN not in r.json["message"], "no secret in the message")
        check("decrypt" not in r.json["message"], "the kubeconfig opened: %r" % r.json["message"])
        check_health(cs, c["id"], r.json)
        # The capacity of an earlier success survives a failure.
        sql("UPDATE clusters SET capacity = '{\"cpu\": 4, \"memory\": 8, \"storage\": 20}' "
            "WHERE id = :'p1'", c["id"])
        api("GET", "/clusters/" + c["id"] + "/health", cs.adm)
        eq(api("GET", "/clusters/" + c["id"], cs.adm).json["available_resources"],
           {"cpu": 4.0, "memory": 8.0, "storage": 20.0}, "capacity kept")


FAKE_KUBE = os.path.join(ROOT, "tests", "fake-kube", "fake_kube.py")


class FakeKube:
    """tests/fake-kube/fake_kube.py over TLS with its own CA, on a free port."""

    def __init__(self, nodes=3, token="fake-kube-" + unique("t")):
        self.dir = tempfile.mkdtemp(prefix="dp-clusters-kube.")
        self.token = token
        self.proc = subprocess.Popen(
            [sys.executable, FAKE_KUBE, "--port", "0", "--certs-dir", self.dir,
             "--nodes", str(nodes), "--token", token, "--state-dir",
             os.path.join(self.dir, "state")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.close()
            raise AssertionError("fake-kube did not start: %r %s" % (
                line, self.proc.stderr.read()[-500:] if self.proc.stderr else ""))
        self.port = int(line.split()[1])

    def file_b64(self, name):
        with open(os.path.join(self.dir, name), "rb") as f:
            return base64.b64encode(f.read()).decode()

    def kubeconfig(self, cert=False):
        user = ("    client-certificate-data: %s\n    client-key-data: %s\n" % (
            self.file_b64("client.crt"), self.file_b64("client.key"))
            if cert else "    token: %s\n" % self.token)
        return ("apiVersion: v1\nkind: Config\n"
                "clusters:\n- name: fake\n  cluster:\n"
                "    server: https://127.0.0.1:%d\n"
                "    certificate-authority-data: %s\n"
                "users:\n- name: me\n  user:\n%s"
                "contexts:\n- name: fake\n  context: {cluster: fake, user: me}\n"
                "current-context: fake\n" % (self.port, self.file_b64("ca.crt"), user))

    def requests(self):
        """What the fake was sent (its GET /_requests)."""
        import http.client
        import ssl
        tls = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=tls,
                                           timeout=15)
        try:
            conn.request("GET", "/_requests",
                         headers={"Authorization": "Bearer " + self.token})
            r = conn.getresponse()
            eq(r.status, 200, "GET /_requests")
            return json.loads(r.read())
        finally:
            conn.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_clusters_health_many_nodes():
    """A big cluster's node list is read in chunks (limit and continue, as
    kubectl does; a node object runs to tens of KB, and the whole list of
    a few hundred would pass the response cap): every node is counted and
    its capacity summed."""
    fk = FakeKube(nodes=600)
    try:
        with Clusters() as cs:
            c = cs.create(kube_config=b64(fk.kubeconfig()))
            h = api("GET", "/clusters/" + c["id"] + "/health", cs.adm).json
            eq((h["status"], h["node_count"]), ("healthy", 600), "health: %r" % h)
            g = api("GET", "/clusters/" + c["id"], cs.adm).json
            # Half the fake's nodes have 4 cpu, 16Gi and 100Gi, half 3500m,
            # 8388608Ki and 53687091200 bytes.
            eq(g["available_resources"], {"cpu": 2250.0, "memory": 7200.0,
                                          "storage": 45000.0}, "capacity")
            pages = [r["query"] for r in fk.requests()
                     if r["path"] == "/api/v1/nodes"]
            eq([q.get("limit") for q in pages], [["250"]] * 3, "three chunks")
            eq([bool(q.get("continue")) for q in pages], [False, True, True],
               "continued")
    finally:
        fk.close()


def test_clusters_health_kubernetes_fake_api():
    """A kubeconfig (token, then client certificate) reaching the fake API
    server: healthy, node_count from its node list, capacity recorded."""
    if not os.path.exists(FAKE_KUBE):
        print("skipped: tests/fake-kube/fake_kube.py is not there yet")
        return
    fk = FakeKube(nodes=3)
    try:
        with Clusters() as cs:
            for cert in (False, True):
                c = cs.create(kube_config=b64(fk.kubeconfig(cert=cert)))
                eq(c["endpoint"], "https://127.0.0.1:%d" % fk.port, "endpoint")
                r = api("GET", "/clusters/" + c["id"] + "/health", cs.adm)
                eq(r.status, 200, "health")
                h = r.json
                eq(h["status"], "healthy", "cert=%s: %r" % (cert, h["message"]))
                eq(h["node_count"], 3, "nodes of the fake")
                g = check_health(cs, c["id"], h)
                eq(sql("SELECT node_count FROM clusters WHERE id = :'p1'", c["id"]), [["3"]],
                   "node_count stored")
                av = g["available_resources"]
                check(av is None or set(av) == {"cpu", "memory", "storage"}, "shape %r" % av)
            # A wrong token is an unhealthy cluster, not an error.
            bad = fk.kubeconfig().replace(fk.token, "wrong-token")
            c = cs.create(kube_config=b64(bad))
            h = api("GET", "/clusters/" + c["id"] + "/health", cs.adm).json
            eq(h["status"], "unhealthy", "wrong token")
            check("wrong-token" not in h["message"], "no token in the message")
            check_health(cs, c["id"], h)
    finally:
        fk.close()
