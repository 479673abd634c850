#!/bin/sh
# bench/http.sh: wrk through nginx against /health, an authenticated
# GET /api/v1/auth/me, a trivial libfcgi responder (the ceiling), the same
# responder with one PostgreSQL round trip per request (trivial_pg: the
# floor of any route that asks the database once, as every authenticated
# one does), and concurrent logins (scrypt-bound).  Prints rps, p50 and
# p99 per target.
#
#   sh bench/http.sh [DURATION_SECONDS] [CONNECTIONS] [ROUNDS]
#
# The ceiling and the routes are measured in ROUNDS rounds (default 3),
# the ceiling first in each; a share is a round's, the figure its median.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DUR=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-3}
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
bench_run trivial_fast "http://127.0.0.1:$TPORT/fast"
bench_run trivial_pg "http://127.0.0.1:$TPORT/pg"
# The ceiling moves a lot from run to run on a shared machine, so each
# round measures it right before the routes it is the ceiling of, and the
# shares are those of a round (their median is the figure).
r=1
while [ "$r" -le "$ROUNDS" ]; do
	bench_run "trivial.$r" "http://127.0.0.1:$TPORT/health"
	bench_run "health.$r" "http://127.0.0.1:$PORT/health"
	bench_run "auth_me.$r" "http://127.0.0.1:$PORT/api/v1/auth/me" \
	    -H "Authorization: Bearer $TOKEN"
	r=$((r + 1))
done

# Logins: each is one scrypt (N=2^15); 64 at once must give no 5xx.
cat >"$TMP/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username_or_email":"$U","password":"Passw0rdX"}'
LUA
bench_run login "http://127.0.0.1:$PORT/api/v1/auth/login" -s "$TMP/login.lua"

python3 - "$TMP" "$ROUNDS" <<'PY'
import statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
def rps(n):
    return float(open("%s/%s.rps" % (d, n)).read() or 0)
share = {"health": [], "auth_me": []}
for i in range(1, rounds + 1):
    c = rps("trivial.%d" % i) or 1
    for k in share:
        share[k].append(100 * rps("%s.%d" % (k, i)) / c)
    print("round %d: trivial %.0f rps; health %.0f%%, auth_me %.0f%% of it" % (
        i, c, share["health"][-1], share["auth_me"][-1]))
f = rps("trivial_fast") or 1
print("trivial_fast (closes as lib/http.c does) %.0f rps; trivial_pg (one PostgreSQL round trip) %.0f rps = %.0f%% of it" % (
    f, rps("trivial_pg"), 100 * rps("trivial_pg") / f))
print("health  = %.0f%% of the ceiling, median of %d rounds (target >= 90%%)" % (statistics.median(share["health"]), rounds))
print("auth_me = %.0f%% of the ceiling, median of %d rounds (target >= 60%%)" % (statistics.median(share["auth_me"]), rounds))
print("login   = %.1f/s (scrypt-bound)" % rps("login"))
PY
