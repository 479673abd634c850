"""tests/integration/test_docs.py: the API reference (docs/api*.md) matches
the route tables of cgi-bin/*.c, and every man page is mandoc-clean.

A route is "METHOD PATTERN" with every path parameter written as {}.  The C
side is read from each `struct dp_route <name>[] = { ... };` table: the
entries `{ DP_<METHOD>, <pattern>, ...` where the pattern is a concatenation
of string literals and macros #defined in the same file as string literals.
The docs side is every Markdown table row whose first cell is a method and
whose second cell is a path in backquotes; a path that does not start with
/api/, /health or /metrics is relative to /api/v1 (CONTRACT §2).  These tests
need no server."""
import glob
import os
import re
import shutil
import subprocess

from harness import ROOT

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")

_DEFINE = re.compile(r'^[ \t]*#[ \t]*define[ \t]+([A-Za-z_][A-Za-z0-9_]*)'
                     r'[ \t]+"((?:[^"\\\n]|\\.)*)"[ \t]*$', re.M)
_TABLE = re.compile(r'struct\s+dp_route\s+[A-Za-z_][A-Za-z0-9_]*\s*\[\s*\]'
                    r'\s*=\s*\{(.*?)\n\s*\}\s*;', re.S)
_ENTRY = re.compile(r'\{\s*DP_([A-Z]+)\s*,\s*((?:(?:[A-Za-z_][A-Za-z0-9_]*|'
                    r'"(?:[^"\\\n]|\\.)*")\s*)+),')
_TOKEN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*|"((?:[^"\\\n]|\\.)*)"')
_ROW = re.compile(r'^\|\s*`?([A-Z]+)`?\s*\|\s*`([^`]+)`', re.M)


class ParseError(Exception):
    pass


def normalize(path):
    """Full path, one trailing slash dropped, parameters as {}."""
    if not (path.startswith("/api/") or path.startswith("/health") or
            path.startswith("/metrics")):
        path = "/api/v1" + (path if path.startswith("/") else "/" + path)
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return re.sub(r"\{[^}/]*\}", "{}", path)


def c_routes(text, where="<text>"):
    """{"METHOD /pattern"} of every route table in a C source text."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    macros = {m.group(1): m.group(2) for m in _DEFINE.finditer(text)}
    out = set()
    tables = _TABLE.findall(text)
    for body in tables:
        entries = _ENTRY.findall(body)
        if body.count("DP_") and not entries and "{" in body:
            raise ParseError("%s: a route table with no readable entry" % where)
        for method, expr in entries:
            if method not in METHODS:
                raise ParseError("%s: unknown method DP_%s" % (where, method))
            pattern = ""
            for tok in _TOKEN.finditer(expr):
                if tok.group(0).startswith('"'):
                    pattern += tok.group(1)
                elif tok.group(0) in macros:
                    pattern += macros[tok.group(0)]
                else:
                    raise ParseError("%s: %s is not a string macro of this "
                                     "file" % (where, tok.group(0)))
            if not pattern.startswith("/"):
                raise ParseError("%s: pattern %r" % (where, pattern))
            out.add("%s %s" % (method, normalize(pattern)))
        # An entry the regex missed would silently shrink the set: count.
        n = len(re.findall(r"\{\s*DP_[A-Z]+\s*,", body))
        if n != len(entries):
            raise ParseError("%s: %d route entries, %d understood" %
                             (where, n, len(entries)))
    return out


def doc_routes(text):
    out = set()
    for method, path in _ROW.findall(text):
        if method in METHODS:
            out.add("%s %s" % (method, normalize(path.strip())))
    return out


def all_c_routes():
    out = {}
    for f in sorted(glob.glob(os.path.join(ROOT, "cgi-bin", "*.c"))):
        with open(f, encoding="utf-8") as fh:
            for r in c_routes(fh.read(), os.path.basename(f)):
                out[r] = os.path.basename(f)
    return out


def all_doc_routes():
    out = {}
    for f in sorted(glob.glob(os.path.join(ROOT, "docs", "api*.md"))):
        with open(f, encoding="utf-8") as fh:
            for r in doc_routes(fh.read()):
                out[r] = os.path.basename(f)
    return out


def test_docs_parser_reads_tables():
    # The parser itself: macros, multi-line entries, comments, and hostile
    # tables that must be refused rather than read as "no routes".
    src = '''
    #define X "/api/v1/things"
    static const struct dp_route routes[] = {
        { DP_GET, X "/", list, NULL, DP_AUTH },   /* "/ignored" */
        { DP_POST, X "/{id}/start", start, NULL,
            DP_AUTH },
        { DP_DELETE, "/api/v1/other/{thing_id}", del, NULL, 0 },
    };
    '''
    got = c_routes(src)
    assert got == {"GET /api/v1/things", "POST /api/v1/things/{}/start",
                   "DELETE /api/v1/other/{}"}, got
    for bad in ('static const struct dp_route r[] = {\n{ DP_GET, Y "/x", h, '
                'NULL, 0 },\n};',
                'static const struct dp_route r[] = {\n{ DP_GET, h, NULL, 0 },'
                '\n};',
                'static const struct dp_route r[] = {\n{ DP_FETCH, "/x", h, '
                'NULL, 0 },\n};'):
        try:
            c_routes(bad)
        except ParseError:
            continue
        raise AssertionError("accepted: %r" % bad)
    assert doc_routes("| Method | Path |\n|---|---|\n| `GET` | `/environments/{id}` "
                      "| user |\n| `HEAD` | `/x` |\n| GET | `/health/` |\n") == \
        {"GET /api/v1/environments/{}", "GET /health"}


def test_docs_cover_every_route():
    c = all_c_routes()
    d = all_doc_routes()
    assert len(c) >= 10, c
    missing = sorted("%s (%s)" % (r, f) for r, f in c.items() if r not in d)
    assert not missing, "routes not in docs/api*.md: " + "; ".join(missing)


def test_docs_name_no_route_the_server_lacks():
    c = all_c_routes()
    d = all_doc_routes()
    extra = sorted("%s (%s)" % (r, f) for r, f in d.items() if r not in c)
    assert not extra, "documented but not in cgi-bin/*.c: " + "; ".join(extra)


def test_man_pages_are_mandoc_clean():
    mandoc = shutil.which("mandoc")
    assert mandoc, "mandoc not installed (sh packaging/install-deps.sh)"
    pages = sorted(glob.glob(os.path.join(ROOT, "docs", "*.[1-9]")))
    assert len(pages) >= 3, pages
    for p in pages:
        r = subprocess.run([mandoc, "-Tlint", "-W", "warning", p],
                           capture_output=True, text=True)
        out = (r.stdout + r.stderr).strip()
        assert r.returncode == 0 and not out, "%s: %s" % (
            os.path.basename(p), out[:1000])
