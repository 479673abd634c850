#!/bin/sh
# bench/term/run.sh: terminal WebSocket benchmarks through nginx →
# websocketd → ws/terminal → tmux in a local environment.  Prints:
#   keystroke echo RTT p50/p99 over KEYS keystrokes
#   output throughput of MB MB of base64 through tmux, and the same in
#   tmux alone and with a bare pty client (bench/term/ceiling.py)
#   connect-to-prompt on reattach
#   PSS per idle connection at 100 and IDLE sockets (smaps_rollup)
#
#   sh bench/term/run.sh [KEYS] [MB] [IDLE]      defaults 1000 100 1000
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
KEYS=${1:-1000}
MB=${2:-100}
IDLE=${3:-1000}
VAR=$ROOT/var/bench-term
PORT=18850
B=http://127.0.0.1:$PORT

make -s all build/libdevpocket.a
PKGS="libpq json-c libjwt libcurl yaml-0.1 inih libcrypto"
# shellcheck disable=SC2046 # pkg-config prints several words
cc -std=c17 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
    -iquote lib $(pkg-config --cflags $PKGS) -o bench/term/client \
    bench/term/client.c build/libdevpocket.a -lfcgi -lscrypt \
    $(pkg-config --libs $PKGS) -lutil -lm

# One user holds every socket: lift the per-user cap and the rate limits.
mkdir -p "$VAR/conf.d" "$VAR/wsenvs"
chmod 0755 "$VAR" "$VAR/wsenvs"
cat >"$VAR/conf.d/bench.conf" <<EOF
[limits]
ws_per_user = 5000
rate_anonymous = 100000000
rate_free = 100000000
rate_auth_ip = 100000000
rate_auth_identifier = 100000000
[drivers]
local_root = $VAR/wsenvs
[web]
log_level = warning
EOF

cleanup() {
	[ -n "${IPID:-}" ] && kill "$IPID" 2>/dev/null || true
	sh bin/devpocket-stack stop --var "$VAR" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM
sh bin/devpocket-stack start --var "$VAR" --port "$PORT" >/dev/null

json() {	# json KEY < body
	python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
name=bench$$
tok=$(curl -sf -H 'Content-Type: application/json' -d \
    "{\"username\":\"$name\",\"email\":\"$name@example.com\",\"password\":\"Bench-Passw0rd\"}" \
    "$B/api/v1/auth/register" | json access_token)
env=$(curl -sf -H 'Content-Type: application/json' -H "Authorization: Bearer $tok" \
    -d '{"name":"bench","template":"ubuntu"}' "$B/api/v1/environments" | json id)
i=0
while [ "$(curl -sf -H "Authorization: Bearer $tok" "$B/api/v1/environments/$env" |
    json status)" != running ]; do
	i=$((i + 1))
	[ $i -gt 300 ] && { echo "bench: environment never ran" >&2; exit 1; }
	sleep 0.2
done
URL="ws://127.0.0.1:$PORT/api/v1/ws/terminal/$env?token=$tok&cols=120&rows=40"

bench/term/client "$URL" rtt "$KEYS"
bench/term/client "$URL" throughput "$MB"
# The ceilings: the same load in tmux alone, and with a bare pty client.
python3 bench/term/ceiling.py "$MB" "$VAR/wsenvs/$env/tmux.conf"
bench/term/client "$URL" reattach 20

# PSS of everything a socket costs: nginx, websocketd and every process
# under them (ws/terminal and its tmux client), the environment's tmux
# server; summed from /proc/<pid>/smaps_rollup (smem's PSS).
pss_kb() {
	python3 - "$VAR" "$env" <<'PY'
import os, sys
var, env = sys.argv[1], sys.argv[2]
roots = set()
for n in ("websocketd", "nginx"):
    with open(os.path.join(var, "run", n + ".pid")) as f:
        roots.add(int(f.read().split()[0]))
ppid, cmd = {}, {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        st = open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()
        ppid[int(d)] = int(st[1])
        cmd[int(d)] = open("/proc/%s/cmdline" % d, "rb").read()
    except OSError:
        pass
def under(p):
    while p > 1:
        if p in roots:
            return True
        p = ppid.get(p, 0)
    return False
total, by = 0, {}
for p in ppid:
    if under(p) or (b"tmux" in cmd[p] and env.encode() in cmd[p]):
        try:
            name = open("/proc/%d/comm" % p).read().strip()
            for line in open("/proc/%d/smaps_rollup" % p):
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    by[name] = by.get(name, 0) + int(line.split()[1])
        except OSError:
            pass
print(total)
with open(os.path.join(var, "pss.by"), "w") as f:
    f.write(" ".join("%s %d MiB" % (k, v // 1024) for k, v in
                     sorted(by.items(), key=lambda x: -x[1])))
PY
}
idle() {
	n=$1
	base=$(pss_kb)
	fifo=$VAR/idle.fifo
	rm -f "$fifo"
	mkfifo "$fifo"
	bench/term/client "$URL" idle "$n" <"$fifo" >"$VAR/idle.out" &
	IPID=$!
	exec 9>"$fifo"
	i=0
	until grep -q ready "$VAR/idle.out" 2>/dev/null; do
		if ! kill -0 "$IPID" 2>/dev/null; then
			echo "bench: idle client failed at $n sockets" >&2
			exec 9>&-
			return 0
		fi
		sleep 0.2
	done
	sleep 2
	now=$(pss_kb)
	procs=$(ps --ppid "$(cut -d' ' -f1 "$VAR/run/websocketd.pid")" -o pid= | wc -l)
	echo "idle: $n sockets ($procs ws programs): PSS $(( (now - base) / n )) KiB per connection ($(( (now - base) / 1024 )) MiB in all; $(cat "$VAR/pss.by"))"
	exec 9>&-
	wait "$IPID" || true
	IPID=
	rm -f "$fifo"
	sleep 2
}
idle 100
idle "$IDLE"
