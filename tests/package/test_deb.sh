#!/bin/sh
# tests/package/test_deb.sh: the Debian package, installed on this machine.
#
#   sh tests/package/test_deb.sh
#
# Builds the .deb (make deb), installs it with dpkg -i, starts the installed
# programs the way their systemd units do but without systemd as PID 1 (for
# each devpocket-*.socket unit, spawn-fcgi binds its ListenStream with its
# owner and mode and runs its service's ExecStart as its User; the worker
# runs directly as its User), gives them a throw-away PostgreSQL
# (tests/pgtmp.sh) through /etc/devpocket/conf.d/test.conf, migrates with the
# installed devpocketctl, and runs the smoke tests and some auth tests of
# tests/integration against the installed layout behind the installed nginx
# site and again behind the installed lighttpd site (each rendered onto a
# test port).  Then: an upgrade to a rebuilt package with a bumped version
# keeps an edited conffile, and dpkg --purge leaves no file behind.  Ends
# with "package: N passed, N failed".
#
# Needs root.  Refuses to touch a devpocket package that it did not
# install itself (one without conf.d/test.conf).  DP_PKG_PORT (default
# 18600) and DP_PKG_PORT + 1 are used; DP_PKG_REF=<commit> packages that
# commit instead of the working tree (make deb PKG_REF=).
set -u

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
PORT=${DP_PKG_PORT:-18600}
LPORT=$((PORT + 1))
MAKE=${MAKE:-make}
UNITS=/lib/systemd/system
pass=0
fail=0
work=
pg_up=0

ok() {
	echo "PASS package::$1"
	pass=$((pass + 1))
}

bad() {
	echo "FAIL package::$1: $2"
	fail=$((fail + 1))
}

# check NAME COMMAND...: one result for one command.
check() {
	name=$1
	shift
	if "$@" >"$work/check.log" 2>&1; then
		ok "$name"
	else
		bad "$name" "$(tail -n 5 "$work/check.log" | tr '\n' ' ')"
	fi
}

summary() {
	echo "package: $pass passed, $fail failed"
}

# Files that belong to no test: everything a package could leave, without
# dpkg's own database and the places other tests and services write to.
snapshot() {
	find /etc /usr /lib /opt /srv /var -xdev \
	    \( -path /var/lib/dpkg -o -path /var/cache -o -path /var/log \
	    -o -path /var/tmp -o -path /var/lib/devpocket-stack \
	    -o -path /var/lib/apt -o -path /var/lib/postgresql \
	    -o -path /var/lib/systemd/timers -o -path /var/mail \
	    -o -path /var/spool \) -prune -o -print 2>/dev/null | LC_ALL=C sort
	for d in /run/devpocket /var/log/devpocket; do
		[ -e "$d" ] && echo "$d"
	done
	return 0
}

# ----------------------------------------------------------- processes

# Everything started here runs in its own session, with its pid recorded.
start_bg() {
	name=$1
	shift
	setsid "$@" </dev/null >>"$work/log/$name.log" 2>&1 &
	echo $! >>"$work/pids"
}

stop_all() {
	[ -n "$work" ] && [ -f "$work/pids" ] || return 0
	for p in $(cat "$work/pids"); do
		kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
	done
	n=0
	for p in $(cat "$work/pids"); do
		while kill -0 "$p" 2>/dev/null && [ $n -lt 100 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		kill -KILL -- "-$p" 2>/dev/null || true
	done
	: >"$work/pids"
	rm -f /run/devpocket/*.sock
}

# Key=value of a unit file (the last one wins, as in systemd).
unit_key() {
	sed -n "s/^$2=//p" "$1" | tail -n 1
}

# The responders and the worker, as their units describe them.
start_units() {
	for s in "$UNITS"/devpocket-*.socket; do
		[ -e "$s" ] || continue
		name=$(basename "$s" .socket)
		svc=$UNITS/$name.service
		listen=$(unit_key "$s" ListenStream)
		cond=$(unit_key "$s" ConditionPathExists)
		if [ -n "$cond" ] && [ ! -e "$cond" ]; then
			continue
		fi
		mkdir -p "$(dirname "$listen")"
		rm -f "$listen"
		# shellcheck disable=SC2046 # ExecStart is split into words
		start_bg "$name" spawn-fcgi -n -s "$listen" \
		    -M "$(unit_key "$s" SocketMode)" \
		    -U "$(unit_key "$s" SocketUser)" \
		    -G "$(unit_key "$s" SocketGroup)" \
		    -u "$(unit_key "$svc" User)" -g "$(unit_key "$svc" Group)" \
		    -- $(unit_key "$svc" ExecStart) --workers 2
	done
	w=$UNITS/devpocket-worker.service
	# shellcheck disable=SC2046
	start_bg worker setpriv --reuid "$(unit_key "$w" User)" \
	    --regid "$(unit_key "$w" Group)" --init-groups \
	    -- $(unit_key "$w" ExecStart)
}

http_code() {
	curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
}

wait_ready() {
	n=0
	while [ "$(http_code "http://127.0.0.1:$1/health/ready")" != 200 ]; do
		n=$((n + 1))
		[ $n -ge 100 ] && return 1
		sleep 0.2
	done
	return 0
}

# The installed nginx site on 127.0.0.1:$PORT, its logs in $work.
start_nginx() {
	d=$work/nginx
	mkdir -p "$d"
	sed -e "s|^\([[:space:]]*\)listen 80;|\1listen 127.0.0.1:$PORT;|" \
	    -e '/listen \[::\]:80;/d' \
	    -e "s|/var/log/nginx/|$work/log/nginx-|" \
	    /etc/nginx/sites-available/devpocket >"$d/site.conf"
	cat >"$d/nginx.conf" <<-EOF
	user www-data;
	worker_processes 2;
	pid $d/nginx.pid;
	error_log $work/log/nginx-error.log;
	events { worker_connections 512; }
	http {
		client_body_temp_path $d/body;
		fastcgi_temp_path $d/fastcgi;
		proxy_temp_path $d/proxy;
		uwsgi_temp_path $d/uwsgi;
		scgi_temp_path $d/scgi;
		include $d/site.conf;
	}
	EOF
	nginx -t -q -e "$work/log/nginx-error.log" -c "$d/nginx.conf" &&
	    start_bg nginx nginx -e "$work/log/nginx-error.log" -c "$d/nginx.conf" \
	    -g 'daemon off;'
}

# The installed lighttpd site on 127.0.0.1:$LPORT.
start_lighttpd() {
	d=$work/lighttpd
	mkdir -p "$d/empty" "$d/tmp"
	chown www-data "$d/tmp"
	: >"$work/log/lighttpd-error.log"
	chown www-data "$work/log/lighttpd-error.log"
	cat >"$d/lighttpd.conf" <<-EOF
	server.username = "www-data"
	server.groupname = "www-data"
	server.bind = "127.0.0.1"
	server.port = $LPORT
	server.document-root = "$d/empty"
	server.pid-file = "$d/lighttpd.pid"
	server.errorlog = "$work/log/lighttpd-error.log"
	server.upload-dirs = ( "$d/tmp" )
	server.modules = ( )
	EOF
	# Debian's own lighttpd.conf sets server.http-parseopts: the site
	# must add to it, not set it again (lighty-enable-mod).
	sed -n '/^server.http-parseopts *= *(/,/^)/p' /etc/lighttpd/lighttpd.conf \
	    >>"$d/lighttpd.conf"
	grep -q '^server.http-parseopts' "$d/lighttpd.conf" || return 1
	echo 'include "/etc/lighttpd/conf-available/50-devpocket.conf"' \
	    >>"$d/lighttpd.conf"
	lighttpd -tt -f "$d/lighttpd.conf" &&
	    start_bg lighttpd lighttpd -D -f "$d/lighttpd.conf"
}

# The integration tests, pointed at the installed programs: the harness
# reads <var>/devpocket.conf (+ conf.d) and <var>/mail.
run_integration() {
	label=$1
	url=$2
	shift 2
	tv=$work/tv
	mkdir -p "$tv"
	ln -sfn /etc/devpocket/devpocket.conf "$tv/devpocket.conf"
	ln -sfn /etc/devpocket/conf.d "$tv/conf.d"
	ln -sfn /var/lib/devpocket/mail "$tv/mail"
	mkdir -p "$tv/log"
	DP_TEST_URL=$url DP_TEST_VAR=$tv DP_TEST_LIMIT=60 \
	    python3 tests/integration/run.py "$@" >"$work/it-$label.log" 2>&1
	sed "s/^\(PASS\|FAIL\) /\1 package[$label]::/" "$work/it-$label.log" |
	    grep -E '^(PASS|FAIL) ' || true
	c=$(sed -n 's/^integration: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' \
	    "$work/it-$label.log" | tail -n 1)
	if [ -z "$c" ]; then
		tail -n 20 "$work/it-$label.log"
		bad "integration-$label" "run.py gave no summary"
		return
	fi
	set -- $c
	pass=$((pass + $1))
	fail=$((fail + $2))
}

cleanup() {
	stop_all
	if [ "$pg_up" -eq 1 ]; then
		sh tests/pgtmp.sh stop "$work/pg" >/dev/null 2>&1 || true
		pg_up=0
	fi
	if [ -n "$work" ] && [ -f /etc/devpocket/conf.d/test.conf ]; then
		dpkg --purge devpocket >/dev/null 2>&1 || true
	fi
	[ -n "$work" ] && rm -rf "$work"
	work=
}
trap cleanup EXIT
trap 'cleanup; trap - EXIT; summary; exit 130' INT TERM HUP

# ----------------------------------------------------------------- main

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP package: installing a package needs root"
	summary
	exit 0
fi
# One run at a time on a machine (several checkouts may run make test):
# the package, its user and /etc/devpocket are machine-wide.
exec 9>/run/lock/devpocket-test-deb.lock
if ! flock -w 900 9; then
	bad lock "another tests/package/test_deb.sh held the lock for 15 minutes"
	summary
	exit 1
fi
for c in dpkg-buildpackage dh spawn-fcgi nginx lighttpd setpriv curl flock; do
	if ! command -v "$c" >/dev/null 2>&1; then
		bad prerequisites "$c not found (sh packaging/install-deps.sh)"
		summary
		exit 1
	fi
done

if dpkg-query -W -f='${Status}' devpocket 2>/dev/null | grep -q installed; then
	if [ -f /etc/devpocket/conf.d/test.conf ]; then
		echo "removing the devpocket package an interrupted run left"
		dpkg --purge devpocket >/dev/null 2>&1 || true
	else
		echo "SKIP package: a devpocket package is installed here (not by this test)"
		summary
		exit 0
	fi
fi

work=$(mktemp -d /tmp/devpocket-pkg.XXXXXX)
chmod 0755 "$work"
mkdir -p "$work/log"
: >"$work/pids"

snapshot >"$work/before.list"

# 1. Build.
if $MAKE -s deb DEB_FLAGS=-j2 PKG_REF="${DP_PKG_REF:-}" >"$work/log/deb.log" 2>&1; then
	ok "make deb"
else
	tail -n 30 "$work/log/deb.log"
	bad "make deb" "the build failed"
	summary
	exit 1
fi
deb=$(ls build/deb/devpocket_*_*.deb | head -n 1)
# The RPM builds too (Debian's rpmbuild: no BuildRequires database).
if command -v rpmbuild >/dev/null 2>&1; then
	check "make rpm" $MAKE -s rpm RPM_FLAGS=--nodeps PKG_REF="${DP_PKG_REF:-}"
else
	bad "make rpm" "rpmbuild not found (sh packaging/install-deps.sh)"
fi
cp "$deb" "$work/v1.deb"

# 2. Install.
if dpkg -i "$work/v1.deb" >"$work/log/dpkg-i.log" 2>&1; then
	ok "dpkg -i"
else
	cat "$work/log/dpkg-i.log"
	bad "dpkg -i" "installation failed"
	summary
	exit 1
fi
: >/etc/devpocket/conf.d/test.conf

# 3. The installed layout.
layout() {
	for f in /usr/bin/devpocketctl /usr/sbin/devpocket-worker \
	    /usr/lib/devpocket/health /usr/lib/devpocket/auth \
	    /usr/share/devpocket/sql/001_init.sql \
	    /etc/nginx/sites-available/devpocket \
	    /etc/lighttpd/conf-available/50-devpocket.conf \
	    /etc/logrotate.d/devpocket "$UNITS/devpocket-health.socket" \
	    "$UNITS/devpocket-worker.service" /usr/share/man/man8/devpocketctl.8.gz; do
		[ -e "$f" ] || { echo "missing $f"; return 1; }
	done
	getent passwd devpocket >/dev/null || { echo "no devpocket user"; return 1; }
	for d in /var/lib/devpocket /run/devpocket /var/log/devpocket; do
		[ "$(stat -c %U "$d")" = devpocket ] || { echo "$d not devpocket's"; return 1; }
	done
	for k in jwt.key secret.key; do
		s=$(stat -c '%a %U %G %s' "/etc/devpocket/$k") || return 1
		[ "$s" = "640 root devpocket 65" ] || { echo "$k: $s"; return 1; }
	done
	grep -qx /etc/devpocket/devpocket.conf /var/lib/dpkg/info/devpocket.conffiles ||
	    { echo "devpocket.conf is no conffile"; return 1; }
}
check "layout: files, user, directories, keys 0640 root:devpocket" layout
check "units: responder sockets are 0660 devpocket:www-data" \
    grep -qx SocketMode=0660 "$UNITS/devpocket-health.socket"
check "units: websocketd may make the sandbox namespaces, no other" sh -c \
    "grep -qx 'RestrictNamespaces=user mnt pid ipc uts' $UNITS/devpocket-websocketd.service"
check "units: websocketd's stop lets each program send close 1001 first" sh -c \
    "grep -qx 'ExecStop=-/usr/bin/pkill -TERM -P \$MAINPID' $UNITS/devpocket-websocketd.service &&
    dpkg-query -W -f='\${Depends}' devpocket | grep -q procps"
check "units: no hardening that stops bubblewrap in the worker and websocketd" sh -c \
    "! grep -Eq '^(ProtectKernelTunables|ProtectKernelLogs|ProtectHostname)=' \
    $UNITS/devpocket-worker.service $UNITS/devpocket-websocketd.service &&
    dpkg-query -W -f='\${Depends}' devpocket | grep -q bubblewrap"
check "control: Static-Built-Using names what ws/terminal links in" sh -c \
    "dpkg-query -W -f='\${Static-Built-Using}' devpocket | grep -q 'json-c (= ' &&
    dpkg-query -W -f='\${Static-Built-Using}' devpocket | grep -q 'nettle (= '"
check "units: hardened services" sh -c "grep -qx ProtectSystem=strict $UNITS/devpocket-auth.service &&
    grep -qx NoNewPrivileges=yes $UNITS/devpocket-worker.service &&
    grep -qx StandardInput=socket $UNITS/devpocket-auth.service"
if command -v systemd-analyze >/dev/null 2>&1; then
	check "units: systemd-analyze verify" sh -c \
	    "systemd-analyze verify $UNITS/devpocket-*.socket $UNITS/devpocket-*.service 2>&1 |
	    grep -v 'Failed to\|Unit .* not found\|is not a symlink\|No such file' | grep . && exit 1 || exit 0"
fi
keys_before=$(cat /etc/devpocket/jwt.key)

# 4. A database, the programs, the tests.
if conninfo=$(sh tests/pgtmp.sh start "$work/pg" 2>"$work/log/pgtmp.log"); then
	pg_up=1
	ok "postgresql"
else
	cat "$work/log/pgtmp.log"
	bad "postgresql" "tests/pgtmp.sh failed"
	summary
	exit 1
fi
cat >/etc/devpocket/conf.d/test.conf <<EOF
# written by tests/package/test_deb.sh
[database]
url = $conninfo
[auth]
scrypt_n = 1024
EOF
check "devpocketctl migrate (installed, as devpocket)" \
    setpriv --reuid devpocket --regid devpocket --init-groups -- \
    devpocketctl migrate
start_units
if start_nginx && wait_ready "$PORT"; then
	ok "nginx site serves the installed responders"
	# shellcheck disable=SC2046
	run_integration nginx "http://127.0.0.1:$PORT" test_smoke \
	    test_auth::test_register_returns_token_and_flattened_user \
	    test_auth::test_login_by_username_email_and_form \
	    test_auth::test_refresh_rotation_grace_and_reuse \
	    test_auth::test_me_requires_bearer \
	    test_auth::test_forgot_and_reset_password_flow \
	    test_auth::test_change_password_keeps_current_session_only
	check "devpocketctl doctor (installed)" sh -c \
	    "devpocketctl doctor >$work/doctor.log 2>&1; grep -q 'database: *ok\|database.*reachable' $work/doctor.log"
else
	tail -n 20 "$work"/log/*.log
	bad "nginx site serves the installed responders" "no 200 from /health/ready"
fi

# lighttpd: the same responders behind the other site.  Under lighttpd
# the responders take the alias target from REDIRECT_URI; until
# lib/http.c reads it, the alias test is left out (said so below).
# test_body_caps wants the JSON 413 for a 9 MiB body that nginx makes
# itself; lighttpd's own 413 is HTML (docs/admin-guide.md).
if start_lighttpd && wait_ready "$LPORT"; then
	ok "lighttpd site serves the installed responders"
	smoke=$(sed -n 's/^def \(test_[a-z0-9_]*\)(.*/test_smoke::\1/p' \
	    tests/integration/test_smoke.py | grep -v test_body_caps)
	if ! grep -q REDIRECT_URI /usr/lib/devpocket/health; then
		echo "note: lib/http.c does not read REDIRECT_URI: alias test skipped under lighttpd"
		smoke=$(echo "$smoke" | grep -v test_alias_reaches_auth)
	fi
	# shellcheck disable=SC2086 # one word per test
	run_integration lighttpd "http://127.0.0.1:$LPORT" $smoke \
	    test_auth::test_register_returns_token_and_flattened_user \
	    test_auth::test_login_by_username_email_and_form \
	    test_auth::test_me_requires_bearer \
	    test_auth::test_forgot_and_reset_password_flow
else
	tail -n 20 "$work"/log/lighttpd*.log
	bad "lighttpd site serves the installed responders" "no 200 from /health/ready"
fi
stop_all

# 5. Upgrade: a rebuilt package with a bumped version keeps an edited
# conffile, the keys and the drop-in.
v1=$(dpkg-query -W -f='${Version}' devpocket)
v2=$(echo "$v1" | sed 's/-\([0-9]*\)$/-\1+test1/')
echo "# edited by test_deb.sh" >>/etc/devpocket/devpocket.conf
if $MAKE -s deb DEB_VERSION="$v2" DEB_FLAGS=-j2 PKG_REF="${DP_PKG_REF:-}" >"$work/log/deb2.log" 2>&1 &&
    dpkg -i --force-confold "build/deb/devpocket_${v2}_$(dpkg --print-architecture).deb" \
    >"$work/log/dpkg-upgrade.log" 2>&1; then
	ok "upgrade $v1 -> $v2"
	check "upgrade: version is $v2" \
	    test "$(dpkg-query -W -f='${Version}' devpocket)" = "$v2"
	check "upgrade: the edited conffile is kept" \
	    grep -qx "# edited by test_deb.sh" /etc/devpocket/devpocket.conf
	check "upgrade: keys and drop-ins are kept" sh -c \
	    "test \"\$(cat /etc/devpocket/jwt.key)\" = '$keys_before' &&
	    test -s /etc/devpocket/conf.d/test.conf"
else
	tail -n 20 "$work/log/deb2.log" "$work/log/dpkg-upgrade.log"
	bad "upgrade $v1 -> $v2" "rebuild or dpkg -i failed"
fi
# The checkout's build/deb holds the first version again afterwards.
rm -f build/deb/devpocket_"$v2"_*.deb build/deb/devpocket-dbgsym_"$v2"_*.deb

# 6. Purge.
sh tests/pgtmp.sh stop "$work/pg" >/dev/null 2>&1 || true
pg_up=0
if dpkg --purge devpocket >"$work/log/purge.log" 2>&1; then
	ok "dpkg --purge"
else
	cat "$work/log/purge.log"
	bad "dpkg --purge" "failed"
fi
snapshot >"$work/after.list"
left=$(LC_ALL=C comm -13 "$work/before.list" "$work/after.list")
gone=$(LC_ALL=C comm -23 "$work/before.list" "$work/after.list")
if [ -z "$left" ] && [ -z "$gone" ]; then
	ok "purge leaves no file behind"
else
	bad "purge leaves no file behind" "new: $(echo $left | cut -c1-400) gone: $(echo $gone | cut -c1-200)"
fi

summary
[ "$fail" -eq 0 ]
