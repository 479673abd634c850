#!/bin/sh
# bench/http.sh: wrk through nginx against /health, an authenticated
# GET /api/v1/auth/me, a trivial libfcgi responder (the ceiling), and
# concurrent logins (scrypt-bound).  Prints rps, p50 and p99 per target.
#
#   sh bench/http.sh [DURATION_SECONDS] [CONNECTIONS]
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DUR=${1:-10}
CONNS=${2:-64}
VAR=$ROOT/var/bench
PORT=18800
TPORT=18801

command -v wrk >/dev/null || { echo "bench: wrk is not installed (make deps)" >&2; exit 1; }
make -s all bench/fcgi-trivial

# Limits out of the way: this measures throughput, not the limiter's 429s.
export DEVPOCKET_LIMITS_RATE_ANONYMOUS=100000000 DEVPOCKET_LIMITS_RATE_FREE=100000000
export DEVPOCKET_LIMITS_RATE_AUTH_IP=100000000 DEVPOCKET_LIMITS_RATE_AUTH_IDENTIFIER=100000000
export DEVPOCKET_WEB_LOG_LEVEL=warning
# The production password cost, whatever the test stack uses.
export DEVPOCKET_AUTH_SCRYPT_N=32768

TMP=$(mktemp -d)
cleanup() {
	[ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
	[ -n "${TPID:-}" ] && kill "$TPID" 2>/dev/null || true
	sh bin/devpocket-stack stop --var "$VAR" >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

sh bin/devpocket-stack start --var "$VAR" --port "$PORT" >/dev/null

# The ceiling: the same nginx settings in front of a responder doing nothing.
bench/fcgi-trivial "$TMP/trivial.sock" 2 &
TPID=$!
chmod 0777 "$TMP"
cat >"$TMP/nginx.conf" <<NGX
worker_processes 2;
pid $TMP/nginx.pid;
error_log $TMP/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $TMP; fastcgi_temp_path $TMP; proxy_temp_path $TMP;
	uwsgi_temp_path $TMP; scgi_temp_path $TMP;
	server {
		listen 127.0.0.1:$TPORT;
		location / { include /etc/nginx/fastcgi_params; fastcgi_pass unix:$TMP/trivial.sock; }
	}
}
NGX
sleep 0.3
chmod 0666 "$TMP/trivial.sock"
nginx -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/error.log"
sleep 0.3

U=bench_$(date +%s)
BODY="{\"username\":\"$U\",\"email\":\"$U@example.com\",\"password\":\"Passw0rdX\"}"
TOKEN=$(curl -sf -H 'Content-Type: application/json' -d "$BODY" \
	"http://127.0.0.1:$PORT/api/v1/auth/register" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

run() {	# name url [wrk args...]
	name=$1; url=$2; shift 2
	wrk -t2 -c"$CONNS" -d"${DUR}s" --latency "$@" "$url" >"$TMP/out" 2>&1
	rps=$(awk '/Requests\/sec/ {print $2}' "$TMP/out")
	p50=$(awk '$1 == "50%" {print $2}' "$TMP/out")
	p99=$(awk '$1 == "99%" {print $2}' "$TMP/out")
	non2xx=$(awk '/Non-2xx/ {print $5}' "$TMP/out")
	printf '%-22s rps=%-10s p50=%-9s p99=%-9s non2xx=%s\n' "$name" "$rps" \
	    "$p50" "$p99" "${non2xx:-0}"
	echo "$rps" >"$TMP/$name.rps"
}

echo "wrk: ${DUR}s, $CONNS connections, 2 threads"
run trivial "http://127.0.0.1:$TPORT/health"
run health "http://127.0.0.1:$PORT/health"
run auth_me "http://127.0.0.1:$PORT/api/v1/auth/me" -H "Authorization: Bearer $TOKEN"

# Logins: each is one scrypt (N=2^15); 64 at once must give no 5xx.
cat >"$TMP/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username_or_email":"$U","password":"Passw0rdX"}'
LUA
CONNS_SAVE=$CONNS
run login "http://127.0.0.1:$PORT/api/v1/auth/login" -s "$TMP/login.lua"
CONNS=$CONNS_SAVE

python3 - "$TMP" <<'PY'
import sys
d = sys.argv[1]
r = {n: float(open("%s/%s.rps" % (d, n)).read() or 0) for n in ("trivial", "health", "auth_me", "login")}
c = r["trivial"] or 1
print("health  = %.0f%% of the ceiling (target >= 90%%)" % (100 * r["health"] / c))
print("auth_me = %.0f%% of the ceiling (target >= 60%%)" % (100 * r["auth_me"] / c))
print("login   = %.1f/s (scrypt-bound)" % r["login"])
PY
