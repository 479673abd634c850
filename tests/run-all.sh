#!/bin/sh
# tests/run-all.sh: every test, as `make test` runs it.
#
#   1. make all, then the unit tests (make check) with a throw-away
#      PostgreSQL in DP_TEST_DB (tests/pgtmp.sh) for those that need one;
#   2. a fresh test stack (bin/devpocket-stack start --var var/test
#      --port 18000: its own PostgreSQL, responders, worker, nginx), the
#      integration tests against it (tests/integration/run.py), the stack
#      stopped again whatever happens;
#   3. a second, short stack behind lighttpd (--web lighttpd on port
#      <port> + 50, var <var>-lighttpd): the WebSocket tests (its FastCGI
#      authorizer in front of mod_proxy) and the smoke tests against it,
#      then that no process of it (environments included) outlives its
#      stop;
#   4. the package tests (tests/package/test_deb.sh: make deb, install it
#      here, the smoke tests against the installed layout behind nginx and
#      lighttpd, upgrade, purge; make rpm), as root only;
#   5. as the very last line of output: "N passed, N failed", unit,
#      integration, lighttpd and package checks summed.  Exit status 1 if
#      anything failed.
#
# A build that fails, a test program that does not build, or a stack that
# does not start counts as one failure (with the reason printed) rather than
# hiding the other results.  DP_TEST_PORT changes the port, DP_TEST_VAR the
# var directory; extra arguments go to tests/integration/run.py (the
# lighttpd section is left out then); DP_SKIP_LIGHTTPD=1 leaves out the
# lighttpd section, DP_SKIP_PACKAGE=1 the package tests.
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
PORT=${DP_TEST_PORT:-18000}
VAR=${DP_TEST_VAR:-$ROOT/var/test}
STACK="sh $ROOT/bin/devpocket-stack"
MAKE=${MAKE:-make}

upass=0
ufail=0
ipass=0
ifail=0
lpass=0
lfail=0
ppass=0
pfail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/run-all.XXXXXX")
stack_up=0
lstack_up=0
unitpg_up=0
LPORT=$((PORT + 50))
LVAR=${VAR%/}-lighttpd

cleanup() {
	if [ "$unitpg_up" -eq 1 ]; then
		sh tests/pgtmp.sh stop "$UNITPG" >/dev/null 2>&1 || true
		rm -rf "$UNITPG"
		unitpg_up=0
	fi
	if [ "$stack_up" -eq 1 ]; then
		$STACK stop --var "$VAR" >"$tmp/stop.log" 2>&1 || true
		stack_up=0
	fi
	if [ "$lstack_up" -eq 1 ]; then
		$STACK stop --var "$LVAR" >"$tmp/lstop.log" 2>&1 || true
		lstack_up=0
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'cleanup; trap - EXIT; exit 130' INT TERM HUP

section() {
	echo
	echo "==== $*"
}

# "<label>: N passed, N failed" from a log -> "N M" (or nothing).
counts() {
	sed -n "s/^$1: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed\$/\1 \2/p" \
	    "$2" | tail -n 1
}

# --------------------------------------------------------------- build
section "build (make all)"
built=1
if ! $MAKE -k all; then
	echo "FAIL build: make all failed"
	ufail=$((ufail + 1))
	built=0
fi

# ---------------------------------------------------------------- unit
section "unit tests (make check)"
# Unit tests of the database modules (check_jobs, ...) get a throw-away
# PostgreSQL through DP_TEST_DB.
# It lives under /tmp: postgres may not be able to enter the checkout.
UNITPG=$(mktemp -d "${TMPDIR:-/tmp}/devpocket-unit-pg.XXXXXX")
chmod 0755 "$UNITPG"
if DP_TEST_DB=$(sh tests/pgtmp.sh start "$UNITPG" 2>"$tmp/pgtmp.log"); then
	export DP_TEST_DB
	unitpg_up=1
else
	cat "$tmp/pgtmp.log"
	echo "warning: no PostgreSQL for the unit tests (tests/pgtmp.sh failed)"
fi
$MAKE -k check 2>&1 | tee "$tmp/unit.log"
c=$(counts unit "$tmp/unit.log")
if [ -z "$c" ]; then
	# make check stopped before running anything (a test program did
	# not build): run those that did, and count the others as failures.
	echo "make check did not run the unit tests; running the built ones"
	progs=
	for src in tests/unit/check_*.c; do
		[ -e "$src" ] || continue
		b=build/tests/$(basename "$src" .c)
		if $MAKE -k "$b" >/dev/null 2>&1 && [ -x "$b" ]; then
			progs="$progs $b"
		else
			echo "FAIL unit: $b does not build"
			ufail=$((ufail + 1))
		fi
	done
	# shellcheck disable=SC2086 # one word per program
	sh tests/run-unit.sh $progs 2>&1 | tee "$tmp/unit.log"
	c=$(counts unit "$tmp/unit.log")
fi
if [ -n "$c" ]; then
	read -r a b <<-EOF
	$c
	EOF
	upass=$((upass + a))
	ufail=$((ufail + b))
else
	echo "FAIL unit: no unit summary"
	ufail=$((ufail + 1))
fi
if [ "$unitpg_up" -eq 1 ]; then
	sh tests/pgtmp.sh stop "$UNITPG" >/dev/null 2>&1 || true
	unitpg_up=0
	rm -rf "$UNITPG"
fi
unset DP_TEST_DB

# --------------------------------------------------------- integration
section "integration tests (stack on 127.0.0.1:$PORT, var $VAR)"
if [ "$built" -eq 0 ] && [ ! -x cgi-bin/health ]; then
	echo "FAIL integration: nothing to test, the build failed"
	ifail=$((ifail + 1))
else
	# A clean database every time; stops a stack left over from an
	# interrupted run first.
	$STACK wipe --var "$VAR" >/dev/null 2>&1 || rm -rf "$VAR"
	# Google sign-in against the fake JWKS that test_google.py starts on
	# this port (DP_TEST_JWKS_PORT); the client id is the tests' own.
	JWKS_PORT=$((PORT + 99))
	DP_TEST_JWKS_PORT=$JWKS_PORT
	DEVPOCKET_GOOGLE_CLIENT_IDS="devpocket-test.apps.googleusercontent.com, other-client"
	DEVPOCKET_GOOGLE_JWKS_URL="http://127.0.0.1:$JWKS_PORT/oauth2/v3/certs"
	DEVPOCKET_GOOGLE_TIMEOUT=2
	export DP_TEST_JWKS_PORT DEVPOCKET_GOOGLE_CLIENT_IDS DEVPOCKET_GOOGLE_JWKS_URL \
	    DEVPOCKET_GOOGLE_TIMEOUT
	stack_up=1
	if ! $STACK start --var "$VAR" --port "$PORT" >"$tmp/start.log" 2>&1; then
		cat "$tmp/start.log"
		echo "FAIL integration: the test stack did not start (logs above, and in $VAR/log/)"
		ifail=$((ifail + 1))
	else
		cat "$tmp/start.log"
		DP_TEST_URL=http://127.0.0.1:$PORT DP_TEST_VAR=$VAR \
		    python3 tests/integration/run.py "$@" 2>&1 |
		    tee "$tmp/integration.log"
		c=$(counts integration "$tmp/integration.log")
		if [ -n "$c" ]; then
			read -r a b <<-EOF
			$c
			EOF
			ipass=$((ipass + a))
			ifail=$((ifail + b))
		else
			echo "FAIL integration: tests/integration/run.py gave no summary"
			ifail=$((ifail + 1))
		fi
		# Processes that died during the tests are a failure too.
		if ! $STACK status --var "$VAR" >"$tmp/status.log" 2>&1; then
			cat "$tmp/status.log"
			echo "FAIL integration: a stack process died during the tests"
			for f in "$VAR"/log/*.log; do
				[ -s "$f" ] || continue
				echo "---- $f (last 10 lines)"
				tail -n 10 "$f"
			done
			ifail=$((ifail + 1))
		fi
	fi
	$STACK stop --var "$VAR" >"$tmp/stop.log" 2>&1 || true
	cat "$tmp/stop.log"
	stack_up=0
fi

# ------------------------------------------------------------ lighttpd
# The same responders and websocketd behind lighttpd, whose WebSocket
# path differs most from nginx's: the FastCGI authorizer in front of
# mod_proxy (etc/lighttpd/devpocket.conf).  test_body_caps is left out:
# lighttpd's own 413 for a 9 MiB body is HTML (docs/admin-guide.md).  The
# ws programs re-check the login session every 2 s here, so the logout
# test does not wait the default 30 s.
section "lighttpd: WebSocket and smoke tests (stack on 127.0.0.1:$LPORT, var $LVAR)"
if [ "${DP_SKIP_LIGHTTPD:-0}" = 1 ]; then
	echo "skipped (DP_SKIP_LIGHTTPD=1)"
elif [ $# -gt 0 ]; then
	echo "skipped: integration tests were selected ($*)"
elif ! command -v lighttpd >/dev/null 2>&1; then
	echo "FAIL lighttpd: lighttpd is not installed (sh packaging/install-deps.sh)"
	lfail=$((lfail + 1))
elif [ "$built" -eq 0 ] && [ ! -x cgi-bin/health ]; then
	echo "FAIL lighttpd: nothing to test, the build failed"
	lfail=$((lfail + 1))
else
	$STACK wipe --var "$LVAR" >/dev/null 2>&1 || rm -rf "$LVAR"
	lstack_up=1
	if ! DP_WS_CHECK_MS=2000 $STACK start --var "$LVAR" --port "$LPORT" \
	    --web lighttpd >"$tmp/lstart.log" 2>&1; then
		cat "$tmp/lstart.log"
		echo "FAIL lighttpd: the lighttpd stack did not start (logs above, and in $LVAR/log/)"
		lfail=$((lfail + 1))
	else
		cat "$tmp/lstart.log"
		smoke=$(sed -n 's/^def \(test_[a-z0-9_]*\)(.*/test_smoke::\1/p' \
		    tests/integration/test_smoke.py | grep -v '::test_body_caps$')
		# shellcheck disable=SC2086 # one word per test
		DP_TEST_URL=http://127.0.0.1:$LPORT DP_TEST_VAR=$LVAR \
		    python3 tests/integration/run.py test_ws $smoke 2>&1 |
		    tee "$tmp/lighttpd.log"
		c=$(counts integration "$tmp/lighttpd.log")
		if [ -n "$c" ]; then
			read -r a b <<-EOF
			$c
			EOF
			lpass=$((lpass + a))
			lfail=$((lfail + b))
		else
			echo "FAIL lighttpd: tests/integration/run.py gave no summary"
			lfail=$((lfail + 1))
		fi
		if ! $STACK status --var "$LVAR" >"$tmp/lstatus.log" 2>&1; then
			cat "$tmp/lstatus.log"
			echo "FAIL lighttpd: a stack process died during the tests"
			for f in "$LVAR"/log/*.log; do
				[ -s "$f" ] || continue
				echo "---- $f (last 10 lines)"
				tail -n 10 "$f"
			done
			lfail=$((lfail + 1))
		fi
	fi
	# The stop must run no tmux client on an environment's socket: it
	# is the user's, and a server there makes a client run any program
	# (here: as root, on the host).
	mkdir -p "$LVAR/envs/fa4efa4efa4efa4efa4efa4e/run"
	printf '#!/bin/sh\ntouch %s\n' "$tmp/stop-ran-it" >"$tmp/stop-prog"
	chmod 0755 "$tmp/stop-prog"
	python3 tests/fake_tmux.py \
	    "$LVAR/envs/fa4efa4efa4efa4efa4efa4e/run/tmux.sock" \
	    "$tmp/stop-prog" "$tmp/fake-ready" &
	fakepid=$!
	i=0
	while [ ! -f "$tmp/fake-ready" ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	# Its record names a process of root's: the stop must spare it.
	printf '%s %s\n' "$fakepid" "$(tr '\n' ' ' <"/proc/$fakepid/stat" |
	    sed 's/.*) //' | awk '{ print $20 }')" \
	    >"$LVAR/envs/fa4efa4efa4efa4efa4efa4e/server.pid"
	$STACK stop --var "$LVAR" >"$tmp/lstop.log" 2>&1 || true
	cat "$tmp/lstop.log"
	lstack_up=0
	fakelived=0
	kill -0 "$fakepid" 2>/dev/null && fakelived=1
	kill "$fakepid" 2>/dev/null || true
	wait "$fakepid" 2>/dev/null || true
	rm -rf "$LVAR/envs/fa4efa4efa4efa4efa4efa4e"
	if [ ! -f "$tmp/fake-ready" ]; then
		echo "FAIL lighttpd: the fake tmux server did not start"
		lfail=$((lfail + 1))
	elif [ "$fakelived" != 1 ]; then
		echo "FAIL lighttpd: the stack's stop killed a root process an environment's record named"
		lfail=$((lfail + 1))
	elif [ -e "$tmp/stop-ran-it" ]; then
		echo "FAIL lighttpd: the stack's stop ran a tmux client on an environment's socket (it ran the server's program)"
		lfail=$((lfail + 1))
	else
		echo "PASS lighttpd: the stack's stop runs no tmux client on an environment's socket and kills no root process a record names"
		lpass=$((lpass + 1))
	fi
	# No orphans: nothing that runs from the stack's var (environment
	# sandboxes and their tmux servers included) outlives its stop.
	i=0
	while pgrep -f "$LVAR/" >/dev/null 2>&1 && [ $i -lt 30 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if pgrep -f "$LVAR/" >/dev/null 2>&1; then
		echo "FAIL lighttpd: processes of $LVAR outlived the stack's stop:"
		pgrep -af "$LVAR/" | cut -c1-200
		lfail=$((lfail + 1))
	else
		echo "PASS lighttpd: no process of the stack is left after its stop"
		lpass=$((lpass + 1))
	fi
	# make run keeps its data: the stack starts again on it (the
	# environments' records of the killed sandboxes included).
	lstack_up=1
	if $STACK start --var "$LVAR" --port "$LPORT" --web lighttpd \
	    >"$tmp/lrestart.log" 2>&1 &&
	    curl -sf -o /dev/null "http://127.0.0.1:$LPORT/health"; then
		echo "PASS lighttpd: the stack starts again on its kept data"
		lpass=$((lpass + 1))
	else
		cat "$tmp/lrestart.log"
		echo "FAIL lighttpd: the stack did not start again on its kept data"
		lfail=$((lfail + 1))
	fi
	$STACK stop --var "$LVAR" >/dev/null 2>&1 || true
	lstack_up=0
fi

# ------------------------------------------------------------- package
section "package tests (tests/package/test_deb.sh)"
if [ "${DP_SKIP_PACKAGE:-0}" = 1 ]; then
	echo "skipped (DP_SKIP_PACKAGE=1)"
elif [ "$(id -u)" -ne 0 ]; then
	echo "skipped: installing a package needs root"
else
	sh tests/package/test_deb.sh 2>&1 | tee "$tmp/package.log" |
	    grep -E '^(PASS|FAIL|SKIP|note|package:) |^package: '
	c=$(counts package "$tmp/package.log")
	if [ -n "$c" ]; then
		read -r a b <<-EOF
		$c
		EOF
		ppass=$((ppass + a))
		pfail=$((pfail + b))
	else
		tail -n 30 "$tmp/package.log"
		echo "FAIL package: tests/package/test_deb.sh gave no summary"
		pfail=$((pfail + 1))
	fi
	if [ "$pfail" -ne 0 ]; then
		echo "---- tests/package/test_deb.sh (last 40 lines)"
		tail -n 40 "$tmp/package.log"
	fi
fi

echo
echo "unit: $upass passed, $ufail failed; integration: $ipass passed, $ifail failed; lighttpd: $lpass passed, $lfail failed; package: $ppass passed, $pfail failed"
echo "$((upass + ipass + lpass + ppass)) passed, $((ufail + ifail + lfail + pfail)) failed"
[ $((ufail + ifail + lfail + pfail)) -eq 0 ]
