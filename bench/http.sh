#!/bin/sh
# bench/http.sh: wrk through nginx against /health, an authenticated
# GET /api/v1/auth/me, a trivial libfcgi responder (the ceiling), the same
# responder with one PostgreSQL round trip per request (trivial_pg: the
# floor of any route that asks the database once, as every authenticated
# one does), and concurrent logins (scrypt-bound).  Prints rps, p50 and
# p99 per target.
#
#   sh bench/http.sh [DURATION_SECONDS] [CONNECTIONS]
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DUR=${1:-10}
CONNS=${2:-64}
VAR=$ROOT/var/bench
PORT=18800
TPORT=18809	# the stack takes PORT and PORT+1 (websocketd)

. bench/lib.sh
bench_stack_start

U=bench_$(date +%s)
BODY="{\"username\":\"$U\",\"email\":\"$U@example.com\",\"password\":\"Passw0rdX\"}"
TOKEN=$(curl -sf -H 'Content-Type: application/json' -d "$BODY" \
	"http://127.0.0.1:$PORT/api/v1/auth/register" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')


echo "wrk: ${DUR}s, $CONNS connections, 2 threads"
bench_run trivial "http://127.0.0.1:$TPORT/health"
bench_run trivial_fast "http://127.0.0.1:$TPORT/fast"
bench_run trivial_pg "http://127.0.0.1:$TPORT/pg"
bench_run health "http://127.0.0.1:$PORT/health"
bench_run auth_me "http://127.0.0.1:$PORT/api/v1/auth/me" -H "Authorization: Bearer $TOKEN"

# Logins: each is one scrypt (N=2^15); 64 at once must give no 5xx.
cat >"$TMP/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username_or_email":"$U","password":"Passw0rdX"}'
LUA
bench_run login "http://127.0.0.1:$PORT/api/v1/auth/login" -s "$TMP/login.lua"

python3 - "$TMP" <<'PY'
import sys
d = sys.argv[1]
r = {n: float(open("%s/%s.rps" % (d, n)).read() or 0) for n in ("trivial", "trivial_fast", "trivial_pg", "health", "auth_me", "login")}
c = r["trivial"] or 1
f = r["trivial_fast"] or 1
print("ceiling: trivial (libfcgi's own close); trivial_fast closes as lib/http.c does: %.0f%% of it" % (100 * f / c))
print("trivial_pg = %.0f%% of the ceiling, %.0f%% of trivial_fast (one PostgreSQL round trip per request, nothing else)" % (100 * r["trivial_pg"] / c, 100 * r["trivial_pg"] / f))
print("health  = %.0f%% of the ceiling (target >= 90%%), %.0f%% of trivial_fast" % (100 * r["health"] / c, 100 * r["health"] / f))
print("auth_me = %.0f%% of the ceiling (target >= 60%%), %.0f%% of trivial_fast" % (100 * r["auth_me"] / c, 100 * r["auth_me"] / f))
print("login   = %.1f/s (scrypt-bound)" % r["login"])
PY
