"""Templates routes of CONTRACT §2.5 through nginx.

The shipped templates (python, nodejs, golang, rust, ubuntu) are shared with
other tests: they are only ever initialized here, never changed; every test
that changes a template works on one with a fresh name.
"""
import re

from harness import admin, http, register_user, sql, unique

CATALOG = ["golang", "nodejs", "python", "rust", "ubuntu"]
KEYS = {"id", "name", "display_name", "description", "category", "tags",
        "docker_image", "image", "default_port", "default_resources",
        "environment_variables", "startup_commands", "documentation_url",
        "icon_url", "status", "version", "usage_count", "created_at",
        "updated_at"}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
T = "/api/v1/templates"

_admin = None
_user = None


def adm():
    global _admin
    if _admin is None:
        _admin = admin()
    return _admin["headers"]


def usr():
    global _user
    if _user is None:
        _user = register_user()
    return _user["headers"]


def req(method, path, body=None, headers=None, raw=None):
    return http(method, T + path, body=body, headers=headers, raw=raw)


def codes(js):
    return {(e["field"], e["code"]) for e in js["errors"]}


def new_name(prefix="tt"):
    return unique(prefix).lower().replace("_", "-")[:50]


def body(name=None, **kw):
    b = {"name": name or new_name(), "display_name": "Test template",
         "description": "Made by test_templates", "category": "devops",
         "docker_image": "alpine:3.19"}
    b.update(kw)
    return b


def create(**kw):
    st, _, _, js = req("POST", "", body(**kw), adm())
    assert st == 201, (st, js)
    return js


def initialize():
    st, _, _, js = req("POST", "/initialize", None, adm())
    assert st == 200, (st, js)
    return js


def check_template(js):
    assert set(js) == KEYS, set(js) ^ KEYS
    assert re.match(r"^[0-9a-f]{24}$", js["id"])
    assert js["image"] == js["docker_image"]
    assert TS.match(js["created_at"]) and TS.match(js["updated_at"])
    assert isinstance(js["default_port"], int)
    assert isinstance(js["usage_count"], int)
    assert isinstance(js["tags"], list)
    assert set(js["default_resources"]) == {"cpu", "memory", "storage"}
    assert all(isinstance(v, str) for v in js["environment_variables"].values())


# ------------------------------------------------------------ initialize

def test_templates_initialize_twice():
    first = initialize()
    assert first["message"] == "Default templates initialized successfully"
    assert set(first) == {"message", "created", "updated", "skipped", "errors"}
    assert first["errors"] == [], first
    assert sorted(first["created"] + first["updated"] + first["skipped"]) == CATALOG
    second = initialize()
    assert second["created"] == [] and second["updated"] == [], second
    assert sorted(second["skipped"]) == CATALOG and second["errors"] == []
    # The catalog as the contract's table has it.
    st, _, _, py = req("GET", "/python", None, usr())
    assert st == 200, py
    check_template(py)
    assert py["display_name"] == "Python 3.11"
    assert py["category"] == "programming_language"
    assert py["docker_image"] == "python:3.11-slim"
    assert py["tags"] == ["python", "pip", "virtualenv", "flask", "django"]
    assert py["default_resources"] == {"cpu": "500m", "memory": "1Gi", "storage": "10Gi"}
    assert py["environment_variables"] == {"PYTHONUNBUFFERED": "1",
                                           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    assert py["startup_commands"][1] == "pip install --no-cache-dir --upgrade pip virtualenv"
    assert py["documentation_url"] == "https://docs.python.org/3.11/"
    assert py["icon_url"] is None and py["status"] == "active" and py["version"] == "1.0.0"
    assert "local_startup_commands" not in py
    st, _, _, rs = req("GET", "/rust", None, usr())
    assert rs["default_resources"] == {"cpu": "1000m", "memory": "2Gi", "storage": "15Gi"}
    st, _, _, ub = req("GET", "/ubuntu", None, usr())
    assert ub["category"] == "operating_system" and ub["docker_image"] == "ubuntu:22.04"
    st, _, _, nd = req("GET", "/nodejs", None, usr())
    assert nd["default_port"] == 3000 and nd["environment_variables"] == {"NODE_ENV": "development"}
    st, _, _, go = req("GET", "/golang", None, usr())
    assert go["environment_variables"]["GO111MODULE"] == "on"
    # The local steps are stored, not shown.
    rows = sql("SELECT jsonb_array_length(local_startup_commands) FROM templates "
               "WHERE name = 'python'")
    assert int(rows[0][0]) > 0


def test_templates_initialize_auth():
    st, _, _, js = req("POST", "/initialize", None, usr())
    assert st == 403 and js["detail"] == "Admin access required"
    st, hd, _, js = req("POST", "/initialize")
    assert st == 401 and js["detail"] == "Not authenticated"
    assert hd["WWW-Authenticate"] == "Bearer"
    # A literal segment is never an id: GET on it is 405.
    st, hd, _, js = req("GET", "/initialize", None, adm())
    assert st == 405 and js["detail"] == "Method Not Allowed"
    assert "POST" in hd["Allow"] and "GET" not in hd["Allow"]
    st, _, _, js = req("PUT", "/initialize", {}, adm())
    assert st == 405
    # A body is ignored; a trailing slash is the same route.
    st, _, _, js = http("POST", T + "/initialize/", raw=b"{not json", headers=adm())
    assert st == 200 and js["errors"] == []


# ------------------------------------------------------------ list and get

def test_templates_list_order_filters_paging():
    initialize()
    a = create(name="zz-" + new_name(), category="database")
    b = create(name="aa-" + new_name(), category="database", status="beta")
    st, hd, _, js = req("GET", "?limit=500", None, usr())
    assert st == 200 and isinstance(js, list)
    names = [t["name"] for t in js]
    assert names == sorted(names)
    assert set(CATALOG) <= set(names)
    assert int(hd["X-Total-Count"]) == len(js)
    for t in js:
        check_template(t)
        assert t["status"] != "deprecated"
    st, hd, _, js = req("GET", "?category=database&limit=500", None, usr())
    assert st == 200 and all(t["category"] == "database" for t in js)
    assert {a["name"], b["name"]} <= {t["name"] for t in js}
    total = int(hd["X-Total-Count"])
    assert total == len(js)
    st, hd, _, js = req("GET", "?category=database&limit=1&offset=1", None, usr())
    assert st == 200 and len(js) == 1 and int(hd["X-Total-Count"]) == total
    st, hd, _, js = req("GET", "?category=database&offset=100000", None, usr())
    assert st == 200 and js == [] and int(hd["X-Total-Count"]) == total
    st, _, _, js = req("GET", "?status=beta&limit=500", None, usr())
    assert st == 200 and b["name"] in [t["name"] for t in js]
    assert all(t["status"] == "beta" for t in js)
    st, _, _, js = req("GET", "?category=programming_language&status=active&limit=500",
                       None, usr())
    assert {"python", "nodejs", "golang", "rust"} <= {t["name"] for t in js}
    assert "ubuntu" not in [t["name"] for t in js]
    # The first of repeated parameters counts; trailing slash and HEAD.
    st, _, _, js = req("GET", "/?category=database&category=nope&limit=500", None, usr())
    assert st == 200 and all(t["category"] == "database" for t in js)
    st, hd, raw, _ = req("HEAD", "", None, usr())
    assert st == 200 and raw in (b"", None) and "X-Total-Count" in hd


def test_templates_list_invalid_query():
    st, _, _, js = req("GET", "?category=games&status=retired&limit=0&offset=-1",
                       None, usr())
    assert st == 422 and js["detail"] == "Validation error"
    assert codes(js) == {("category", "invalid_choice"), ("status", "invalid_choice"),
                         ("limit", "out_of_range"), ("offset", "type_error")}
    st, _, _, js = req("GET", "?category=", None, usr())
    assert st == 422 and codes(js) == {("category", "invalid_choice")}
    st, _, _, js = req("GET", "?status=ACTIVE", None, usr())
    assert st == 422 and codes(js) == {("status", "invalid_choice")}
    st, _, _, js = req("GET", "?category=%FF%00", None, usr())
    assert st == 422 and codes(js) == {("category", "invalid_choice")}
    st, _, _, js = req("GET", "?limit=501", None, usr())
    assert st == 422 and codes(js) == {("limit", "out_of_range")}
    st, _, _, js = req("GET", "")
    assert st == 401 and js["detail"] == "Not authenticated"
    st, _, _, js = req("GET", "", None, {"Authorization": "Bearer nope"})
    assert st == 401 and js["detail"] == "Could not validate credentials"


def test_templates_get_by_id_and_name():
    t = create(tags=["x", "y"], environment_variables={"A": "1"},
               startup_commands=["echo hi"], default_port=9000,
               documentation_url="https://example.com/docs", version="2.1.0")
    check_template(t)
    for key in (t["id"], t["name"], t["name"] + "/"):
        st, _, _, js = req("GET", "/" + key, None, usr())
        assert st == 200 and js == t, (key, js)
    st, _, _, js = req("GET", "/" + t["id"], None, adm())
    assert st == 200 and js["id"] == t["id"]
    # (%00 never gets here: nginx answers 400 itself.)
    for bad in ("nope-" + new_name(), "0" * 24, "f" * 25, "UPPER", "%FF", "%C3%A9",
                "x" * 5000, "%27%20OR%201%3D1", "%20python", "python%0A"):
        st, _, _, js = req("GET", "/" + bad, None, usr())
        assert st == 404 and js["detail"] == "Template not found", (bad, st, js)
    st, _, _, js = req("GET", "//" + t["name"], None, usr())
    assert st == 404 and js["detail"] == "Not Found"
    st, _, _, js = req("GET", "/" + t["name"] + "/extra", None, usr())
    assert st == 404 and js["detail"] == "Not Found"


# ------------------------------------------------------------ create

def test_templates_create_defaults_and_fields():
    name = new_name()
    st, _, _, js = req("POST", "", body(name), adm())
    assert st == 201, js
    check_template(js)
    assert js["name"] == name and js["usage_count"] == 0
    assert js["tags"] == [] and js["default_port"] == 8080
    assert js["default_resources"] == {"cpu": "500m", "memory": "1Gi", "storage": "10Gi"}
    assert js["environment_variables"] == {} and js["startup_commands"] == []
    assert js["documentation_url"] is None and js["icon_url"] is None
    assert js["status"] == "active" and js["version"] == "1.0.0"
    full = body(new_name(), tags=["a", "b" * 30], default_port=65535,
                default_resources={"cpu": "1.5", "memory": "128Mi", "ignored": 5},
                environment_variables={"_X": "", "Y1": "v" * 4096},
                startup_commands=["echo 1", "c" * 4096],
                documentation_url="https://example.com/d", icon_url="",
                status="beta", version="v" * 50, display_name="é" * 100,
                description="d" * 500, usage_count=99, id="0" * 24,
                local_startup_commands=["rm -rf /"])
    st, _, _, js = req("POST", "", full, adm())
    assert st == 201, js
    assert js["tags"] == ["a", "b" * 30] and js["default_port"] == 65535
    assert js["default_resources"] == {"cpu": "1.5", "memory": "128Mi", "storage": "10Gi"}
    assert js["environment_variables"] == {"_X": "", "Y1": "v" * 4096}
    assert js["startup_commands"] == ["echo 1", "c" * 4096]
    assert js["icon_url"] is None and js["status"] == "beta"
    assert js["usage_count"] == 0 and js["id"] != "0" * 24
    assert js["display_name"] == "é" * 100
    rows = sql("SELECT local_startup_commands IS NULL FROM templates WHERE id = '%s'" % js["id"])
    assert rows == [["t"]]
    # null is absent.
    st, _, _, js = req("POST", "", body(new_name(), tags=None, status=None,
                                        default_port=None), adm())
    assert st == 201 and js["tags"] == [] and js["status"] == "active"


def test_templates_create_conflict_and_auth():
    t = create()
    st, _, _, js = req("POST", "", body(t["name"]), adm())
    assert st == 409 and js["detail"] == "Template with name '%s' already exists" % t["name"]
    st, _, _, js = req("POST", "", body("python"), adm())
    assert st == 409 and js["detail"] == "Template with name 'python' already exists"
    st, _, _, js = req("POST", "", body(), usr())
    assert st == 403 and js["detail"] == "Admin access required"
    # 403 comes before validation.
    st, _, _, js = req("POST", "", {"name": 5}, usr())
    assert st == 403
    st, _, _, js = req("POST", "", body())
    assert st == 401
    st, _, _, js = req("POST", "", raw=b"{bad", headers=adm())
    assert st == 400 and js["detail"] == "Invalid JSON in request body"
    st, _, _, js = req("POST", "", raw=b'{"name": "x\xff"}', headers=adm())
    assert st == 400
    st, _, _, js = req("POST", "", raw=b"name=x", headers=dict(adm(), **{
        "Content-Type": "application/x-www-form-urlencoded"}))
    assert st == 415 and js["detail"] == "Unsupported Media Type"
    st, _, _, js = req("POST", "", [1, 2], adm())
    assert st == 422 and codes(js) == {("body", "type_error")}
    st, _, _, js = req("POST", "", raw=b"x" * (1024 * 1024 + 1), headers=adm())
    assert st == 413 and js["detail"] == "Request body too large"


def test_templates_create_validation():
    st, _, _, js = req("POST", "", {}, adm())
    assert st == 422
    assert codes(js) == {("name", "missing"), ("display_name", "missing"),
                         ("description", "missing"), ("category", "missing"),
                         ("docker_image", "missing")}
    st, _, _, js = req("POST", "", {"name": "", "display_name": "", "description": "",
                                    "category": "", "docker_image": ""}, adm())
    assert st == 422
    assert codes(js) == {("name", "too_short"), ("display_name", "too_short"),
                         ("description", "too_short"), ("category", "invalid_choice"),
                         ("docker_image", "too_short")}
    st, _, _, js = req("POST", "", body("n" * 51, display_name="d" * 101,
                                        description="d" * 501, category="games",
                                        docker_image="a" * 256, default_port=0,
                                        status="deprecated", version="v" * 51,
                                        documentation_url="ftp://x", icon_url=3,
                                        tags="a", default_resources=[],
                                        environment_variables="A=1",
                                        startup_commands={}), adm())
    assert st == 422
    assert codes(js) == {("name", "too_long"), ("display_name", "too_long"),
                         ("description", "too_long"), ("category", "invalid_choice"),
                         ("docker_image", "too_long"), ("default_port", "out_of_range"),
                         ("status", "invalid_choice"), ("version", "too_long"),
                         ("documentation_url", "invalid_url"), ("icon_url", "type_error"),
                         ("tags", "type_error"), ("default_resources", "type_error"),
                         ("environment_variables", "type_error"),
                         ("startup_commands", "type_error")}
    st, _, _, js = req("POST", "", body("Bad_Name", docker_image="Alpine:3"), adm())
    assert st == 422 and codes(js) == {("name", "pattern"), ("docker_image", "pattern")}
    for bad in ("-x", "_x", "a b", "a.b", "ü"):
        st, _, _, js = req("POST", "", body(bad), adm())
        assert st == 422 and codes(js) == {("name", "pattern")}, (bad, js)
    st, _, _, js = req("POST", "", body(default_port=65536), adm())
    assert st == 422 and codes(js) == {("default_port", "out_of_range")}
    for port in ("80", 80.0, True, -1, 2 ** 70):
        st, _, _, js = req("POST", "", body(default_port=port), adm())
        assert st == 422, (port, js)
    st, _, _, js = req("POST", "", body(display_name="a\u0000b"), adm())
    assert st == 422 and codes(js) == {("display_name", "invalid_format")}
    st, _, _, js = req("POST", "", body(
        tags=["ok", "", "t" * 31, 5, None, "x\u0000"],
        default_resources={"cpu": "50m", "memory": "64Mi", "storage": 10},
        environment_variables={"1BAD": "x", "OK": 1, "LONG": "v" * 4097,
                               "NUL": "a\u0000", "NULL": None, "A-B": "x"},
        startup_commands=["", "c" * 4097, ["x"], "fine"]), adm())
    assert st == 422
    assert codes(js) == {("tags.1", "too_short"), ("tags.2", "too_long"),
                         ("tags.3", "type_error"), ("tags.4", "type_error"),
                         ("tags.5", "invalid_format"),
                         ("default_resources.cpu", "out_of_range"),
                         ("default_resources.memory", "out_of_range"),
                         ("default_resources.storage", "type_error"),
                         ("environment_variables.1BAD", "pattern"),
                         ("environment_variables.OK", "type_error"),
                         ("environment_variables.LONG", "too_long"),
                         ("environment_variables.NUL", "invalid_format"),
                         ("environment_variables.NULL", "type_error"),
                         ("environment_variables.A-B", "pattern"),
                         ("startup_commands.0", "too_short"),
                         ("startup_commands.1", "too_long"),
                         ("startup_commands.2", "type_error")}, codes(js)
    st, _, _, js = req("POST", "", body(default_resources={"cpu": "1.2345", "memory": "1GB",
                                                           "storage": "512Mi"}), adm())
    assert st == 422
    assert codes(js) == {("default_resources.cpu", "pattern"),
                         ("default_resources.memory", "pattern"),
                         ("default_resources.storage", "out_of_range")}
    st, _, _, js = req("POST", "", body(tags=["t%d" % i for i in range(21)],
                                        startup_commands=["c"] * 101,
                                        environment_variables={"V%d" % i: "x"
                                                               for i in range(101)}), adm())
    assert st == 422
    assert codes(js) == {("tags", "too_many"), ("startup_commands", "too_many"),
                         ("environment_variables", "too_many")}
    # At the caps is fine.
    st, _, _, js = req("POST", "", body(tags=["t%d" % i for i in range(20)],
                                        startup_commands=["c"] * 100,
                                        environment_variables={"V%d" % i: "x"
                                                               for i in range(100)}), adm())
    assert st == 201, js
    assert len(js["tags"]) == 20 and len(js["startup_commands"]) == 100
    assert len(js["environment_variables"]) == 100


# ------------------------------------------------------------ update

def test_templates_update():
    t = create(tags=["a"], documentation_url="https://example.com/a",
               icon_url="https://example.com/i.png",
               default_resources={"cpu": "2", "memory": "2Gi", "storage": "20Gi"})
    st, _, _, js = req("PUT", "/" + t["id"], {}, adm())
    assert st == 200
    same = dict(js, updated_at=t["updated_at"])
    assert same == t
    new = new_name()
    st, _, _, js = req("PUT", "/" + t["name"], {
        "name": new, "display_name": "Renamed", "description": "New text",
        "category": "framework", "docker_image": "ghcr.io/org/img:1@sha256:" + "a" * 64,
        "tags": [], "default_port": 1, "default_resources": {"memory": "256Mi"},
        "environment_variables": {"K": "v"}, "startup_commands": ["true"],
        "documentation_url": "", "status": "deprecated", "version": "3",
        "usage_count": 50, "id": "f" * 24}, adm())
    assert st == 200, js
    check_template(js)
    assert js["id"] == t["id"] and js["name"] == new and js["display_name"] == "Renamed"
    assert js["category"] == "framework" and js["tags"] == [] and js["default_port"] == 1
    assert js["docker_image"] == js["image"] == "ghcr.io/org/img:1@sha256:" + "a" * 64
    assert js["default_resources"] == {"cpu": "500m", "memory": "256Mi", "storage": "10Gi"}
    assert js["environment_variables"] == {"K": "v"} and js["startup_commands"] == ["true"]
    assert js["documentation_url"] is None and js["icon_url"] == "https://example.com/i.png"
    assert js["status"] == "deprecated" and js["version"] == "3" and js["usage_count"] == 0
    assert js["created_at"] == t["created_at"]
    # Deprecated: hidden from users, still there for admins.
    st, _, _, js = req("GET", "/" + new, None, usr())
    assert st == 404 and js["detail"] == "Template not found"
    st, _, _, js = req("GET", "?status=deprecated", None, usr())
    assert st == 200 and js == []
    st, _, _, js = req("GET", "?status=deprecated&limit=500", None, adm())
    assert st == 200 and new in [x["name"] for x in js]
    st, _, _, js = req("GET", "/" + new, None, adm())
    assert st == 200 and js["status"] == "deprecated"
    st, _, _, js = req("PUT", "/" + new, {"status": "active"}, adm())
    assert st == 200 and js["status"] == "active"
    st, _, _, js = req("GET", "/" + new, None, usr())
    assert st == 200


def test_templates_update_errors():
    t = create()
    other = create()
    st, _, _, js = req("PUT", "/" + t["id"], {"name": other["name"]}, adm())
    assert st == 409 and js["detail"] == "Template with name '%s' already exists" % other["name"]
    st, _, _, js = req("PUT", "/" + t["id"], {"name": t["name"]}, adm())
    assert st == 200
    st, _, _, js = req("PUT", "/nope-" + new_name(), {"display_name": "x"}, adm())
    assert st == 404 and js["detail"] == "Template not found"
    st, _, _, js = req("PUT", "/" + "0" * 24, {}, adm())
    assert st == 404
    # 422 before 404.
    st, _, _, js = req("PUT", "/nope-" + new_name(), {"name": "BAD"}, adm())
    assert st == 422 and codes(js) == {("name", "pattern")}
    st, _, _, js = req("PUT", "/" + t["id"], {"status": "retired", "version": "",
                                              "tags": ["x"] * 21, "display_name": None,
                                              "default_resources": {"cpu": 1}}, adm())
    assert st == 422
    assert codes(js) == {("status", "invalid_choice"), ("version", "too_short"),
                         ("tags", "too_many"), ("default_resources.cpu", "type_error")}
    st, _, _, js = req("PUT", "/" + t["id"], {"display_name": "x"}, usr())
    assert st == 403 and js["detail"] == "Admin access required"
    st, _, _, js = req("PUT", "/" + t["id"], {"display_name": "x"})
    assert st == 401
    st, _, _, js = req("GET", "/" + t["id"], None, usr())
    assert js["display_name"] == t["display_name"]


# ------------------------------------------------------------ delete

def test_templates_delete():
    t = create()
    st, _, _, js = req("DELETE", "/" + t["name"], None, usr())
    assert st == 403 and js["detail"] == "Admin access required"
    st, _, _, js = req("DELETE", "/" + t["name"])
    assert st == 401
    st, _, _, js = req("DELETE", "/" + t["name"], None, adm())
    assert st == 200 and js == {"message": "Template deleted successfully"}, js
    st, _, _, js = req("GET", "/" + t["id"], None, usr())
    assert st == 404 and js["detail"] == "Template not found"
    st, _, _, js = req("GET", "?limit=500", None, usr())
    assert t["name"] not in [x["name"] for x in js]
    st, _, _, js = req("GET", "/" + t["id"], None, adm())
    assert st == 200 and js["status"] == "deprecated"
    rows = sql("SELECT status FROM templates WHERE id = '%s'" % t["id"])
    assert rows == [["deprecated"]]
    # Deleting again is the same answer; unknown ones are 404.
    st, _, _, js = req("DELETE", "/" + t["id"], None, adm())
    assert st == 200
    st, _, _, js = req("DELETE", "/nope-" + new_name(), None, adm())
    assert st == 404 and js["detail"] == "Template not found"
    st, _, _, js = req("DELETE", "", None, adm())
    assert st == 405


def test_templates_options_and_allow():
    st, hd, _, _ = req("OPTIONS", "")
    assert st == 204
    assert set(x.strip() for x in hd["Allow"].split(",")) == {"GET", "HEAD", "POST", "OPTIONS"}
    st, hd, _, _ = req("OPTIONS", "/python")
    assert st == 204
    assert set(x.strip() for x in hd["Allow"].split(",")) == {"GET", "HEAD", "PUT", "DELETE",
                                                             "OPTIONS"}
    st, hd, _, _ = req("OPTIONS", "/initialize")
    assert st == 204 and set(x.strip() for x in hd["Allow"].split(",")) == {"POST", "OPTIONS"}
    st, _, _, js = req("PATCH", "/python", {}, adm())
    assert st == 405
