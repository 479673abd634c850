# bench/lib.sh: what the benchmarks share, sourced after they set VAR, PORT,
# TPORT, DUR and CONNS (and `cd` to the checkout):
#   bench_stack_start  the stack under $VAR on $PORT, and the ceiling: a
#                      trivial libfcgi responder behind its own nginx on
#                      $TPORT with the stack's nginx settings; on
#                      $TPORT/fast the same closing each connection as
#                      lib/http.c does (FCGX_Detach once the input is
#                      read, not libfcgi's lingering close); on
#                      $TPORT/pg that one asking the stack's PostgreSQL
#                      one prepared SELECT per request (the floor of any
#                      route that must ask the database);
#   bench_run NAME URL [wrk args]  one wrk run: prints rps, p50, p99 and
#                      the count of non-2xx answers, keeps rps in
#                      $TMP/NAME.rps;
# and a cleanup trap that stops everything it started.

command -v wrk >/dev/null || { echo "bench: wrk is not installed (make deps)" >&2; exit 1; }
make -s all bench/fcgi-trivial

# Limits out of the way: this measures throughput, not the limiter's 429s.
export DEVPOCKET_LIMITS_RATE_ANONYMOUS=100000000 DEVPOCKET_LIMITS_RATE_FREE=100000000
export DEVPOCKET_LIMITS_RATE_STARTER=100000000 DEVPOCKET_LIMITS_RATE_PRO=100000000
export DEVPOCKET_LIMITS_RATE_ENV_CREATE=100000000
export DEVPOCKET_LIMITS_RATE_AUTH_IP=100000000 DEVPOCKET_LIMITS_RATE_AUTH_IDENTIFIER=100000000
export DEVPOCKET_WEB_LOG_LEVEL=warning
# The production password cost, whatever the test stack uses.
export DEVPOCKET_AUTH_SCRYPT_N=32768

TMP=$(mktemp -d)
bench_cleanup() {
	[ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
	# fcgi-trivial forks its workers: stop them too, or they keep the
	# script's stdout open (and a pipe into tail never ends).
	for p in ${TPID:-} ${TFPID:-} ${TPGPID:-}; do
		pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null
	done || true
	sh bin/devpocket-stack stop --var "$VAR" >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap bench_cleanup EXIT INT TERM

bench_stack_start() {
	sh bin/devpocket-stack start --var "$VAR" --port "$PORT" >/dev/null
	bench/fcgi-trivial "$TMP/trivial.sock" 2 &
	TPID=$!
	FCGI_TRIVIAL_EARLY_CLOSE=1 bench/fcgi-trivial "$TMP/trivial-fast.sock" 2 &
	TFPID=$!
	dburl=$(sed -n 's/^url = //p' "$VAR/devpocket.conf" | head -1)
	FCGI_TRIVIAL_EARLY_CLOSE=1 bench/fcgi-trivial "$TMP/trivial-pg.sock" 2 \
	    "$dburl" &
	TPGPID=$!
	chmod 0777 "$TMP"
	cat >"$TMP/nginx.conf" <<NGX
worker_processes 2;
pid $TMP/nginx.pid;
error_log $TMP/error.log;
events { worker_connections 1024; }
http {
	# As the stack's nginx does: one access log line per request.
	access_log $TMP/access.log;
	client_body_temp_path $TMP; fastcgi_temp_path $TMP; proxy_temp_path $TMP;
	uwsgi_temp_path $TMP; scgi_temp_path $TMP;
	server {
		listen 127.0.0.1:$TPORT;
		location / { include /etc/nginx/fastcgi_params; fastcgi_pass unix:$TMP/trivial.sock; }
		location /fast { include /etc/nginx/fastcgi_params; fastcgi_pass unix:$TMP/trivial-fast.sock; }
		location /pg { include /etc/nginx/fastcgi_params; fastcgi_pass unix:$TMP/trivial-pg.sock; }
	}
}
NGX
	i=0
	while [ $i -lt 100 ] && ! { [ -S "$TMP/trivial.sock" ] &&
	    [ -S "$TMP/trivial-fast.sock" ] && [ -S "$TMP/trivial-pg.sock" ]; }; do
		sleep 0.05
		i=$((i + 1))
	done
	chmod 0666 "$TMP/trivial.sock" "$TMP/trivial-fast.sock" \
	    "$TMP/trivial-pg.sock"
	nginx -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/error.log"
	sleep 0.3
}

bench_run() {	# name url [wrk args...]
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
