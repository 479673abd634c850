#!/bin/sh
# bench/envs.sh: GET /api/v1/environments (a pro user with 3 environments)
# against /health, a trivial libfcgi responder (the ceiling) and the same
# responder with one PostgreSQL round trip per request (trivial_pg), with wrk
# through nginx; then the time from POST /environments to running for a
# trivial template on the local driver (median of 5).
#
#   sh bench/envs.sh [DURATION_SECONDS] [CONNECTIONS]
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DUR=${1:-10}
CONNS=${2:-64}
VAR=$ROOT/var/bench-envs
PORT=18820
TPORT=18829

. bench/lib.sh
bench_stack_start

PSQL=$(ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | head -n 1)
sqlq() {
	"${PSQL:-psql}" -X -q -At -h "$VAR/pg/sock" -U devpocket -d devpocket -c "$1"
}
# A trivial template and a local cluster (when the stack did not seed one).
sqlq "INSERT INTO templates (id, name, display_name, description, category,
    docker_image, default_resources, local_startup_commands) VALUES
    ('b0b0b0b0b0b0b0b0b0b0b0b0', 'benchtrivial', 'Bench', 'bench',
    'operating_system', 'ubuntu:22.04',
    '{\"cpu\":\"500m\",\"memory\":\"1Gi\",\"storage\":\"10Gi\"}',
    '[\"true\"]') ON CONFLICT DO NOTHING" >/dev/null
sqlq "INSERT INTO clusters (id, name, region, provider, is_default)
    SELECT 'b1b1b1b1b1b1b1b1b1b1b1b1', 'local', 'us-east', 'local',
    NOT EXISTS (SELECT 1 FROM clusters WHERE is_default)
    WHERE NOT EXISTS (SELECT 1 FROM clusters WHERE lower(name) = 'local')" >/dev/null

U=benv_$(date +%s)
BODY="{\"username\":\"$U\",\"email\":\"$U@example.com\",\"password\":\"Passw0rdX\"}"
curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$BODY" \
	"http://127.0.0.1:$PORT/api/v1/auth/register"
DEVPOCKET_WEB_DATA_DIR=$ROOT bin/devpocketctl --config "$VAR/devpocket.conf" \
	user set-plan "$U" pro >/dev/null
TOKEN=$(curl -sf -H 'Content-Type: application/json' \
	-d "{\"username_or_email\":\"$U\",\"password\":\"Passw0rdX\"}" \
	"http://127.0.0.1:$PORT/api/v1/auth/login" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
for i in 1 2 3; do
	curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" \
	    -H 'Content-Type: application/json' \
	    -d "{\"name\":\"list$i\",\"template\":\"benchtrivial\"}" \
	    "http://127.0.0.1:$PORT/api/v1/environments"
done

# Measure the list with its three environments running (the metric
# columns' path), not still creating.
python3 - "$PORT" "$TOKEN" <<'PY'
import json, sys, time, urllib.request
req = urllib.request.Request("http://127.0.0.1:%s/api/v1/environments" % sys.argv[1],
                             headers={"Authorization": "Bearer " + sys.argv[2]})
t0 = time.monotonic()
while time.monotonic() - t0 < 30:
    with urllib.request.urlopen(req) as r:
        st = [e["status"] for e in json.load(r)]
    if st.count("running") == 3:
        break
    time.sleep(0.1)
else:
    print("bench: environments not running: %s" % st, file=sys.stderr)
PY


echo "wrk: ${DUR}s, $CONNS connections, 2 threads"
bench_run trivial "http://127.0.0.1:$TPORT/health"
bench_run trivial_fast "http://127.0.0.1:$TPORT/fast"
bench_run trivial_pg "http://127.0.0.1:$TPORT/pg"
bench_run health "http://127.0.0.1:$PORT/health"
bench_run auth_me "http://127.0.0.1:$PORT/api/v1/auth/me" -H "Authorization: Bearer $TOKEN"
bench_run env_list "http://127.0.0.1:$PORT/api/v1/environments" -H "Authorization: Bearer $TOKEN"

# POST → running on the local driver, five times (each deleted after).
python3 - "$PORT" "$TOKEN" "$TMP" <<'PY'
import json, statistics, sys, time, urllib.request
port, token, d = sys.argv[1], sys.argv[2], sys.argv[3]
base = "http://127.0.0.1:%s/api/v1/environments" % port
def call(method, url, body=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        data = r.read()
        return json.loads(data) if data else None
times = []
for i in range(5):
    t0 = time.monotonic()
    e = call("POST", base, {"name": "time%d" % i, "template": "benchtrivial"})
    while True:
        st = call("GET", base + "/" + e["id"])["status"]
        if st in ("running", "error"):
            break
        if time.monotonic() - t0 > 60:
            st = "timeout"
            break
        time.sleep(0.02)
    times.append(time.monotonic() - t0 if st == "running" else float("inf"))
    call("DELETE", base + "/" + e["id"])
r = {n: float(open("%s/%s.rps" % (d, n)).read() or 0) for n in ("trivial", "trivial_fast", "trivial_pg", "health", "auth_me", "env_list")}
c = r["trivial"] or 1
f = r["trivial_fast"] or 1
print("ceiling: trivial (libfcgi's own close); trivial_fast closes as lib/http.c does: %.0f%% of it" % (100 * f / c))
print("trivial_pg = %.0f%% of the ceiling, %.0f%% of trivial_fast (one PostgreSQL round trip per request, nothing else)" % (100 * r["trivial_pg"] / c, 100 * r["trivial_pg"] / f))
print("health   = %.0f%% of the ceiling, %.0f%% of trivial_fast" % (100 * r["health"] / c, 100 * r["health"] / f))
print("auth_me  = %.0f%% of the ceiling, %.0f%% of trivial_fast" % (100 * r["auth_me"] / c, 100 * r["auth_me"] / f))
print("env_list = %.0f%% of the ceiling (3 environments, pro user), %.0f%% of trivial_fast" % (100 * r["env_list"] / c, 100 * r["env_list"] / f))
print("POST to running (local driver, trivial template): median %.2f s of %s"
      % (statistics.median(times), ["%.2f" % t for t in times]))
PY
