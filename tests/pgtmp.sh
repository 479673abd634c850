#!/bin/sh
# tests/pgtmp.sh: a throw-away PostgreSQL cluster for tests and `make run`.
#
#   tests/pgtmp.sh start DIR   initdb (if needed) and start a cluster in DIR,
#                              listening on a unix socket in DIR/sock only;
#                              prints the conninfo on stdout
#   tests/pgtmp.sh stop DIR    stop it (fast shutdown)
#   tests/pgtmp.sh conninfo DIR  print the conninfo again
#
# When run as root the cluster belongs to the postgres user (PostgreSQL
# refuses to run as root) and is started with runuser.  Nothing listens on
# TCP, fsync is off: this is for tests, never for data you want to keep.
set -eu

usage() {
	echo "usage: $0 start|stop|conninfo DIR" >&2
	exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

pgbin=${PGBIN:-}
if [ -z "$pgbin" ]; then
	for v in 17 16 15 14 13; do
		if [ -x /usr/lib/postgresql/$v/bin/initdb ]; then
			pgbin=/usr/lib/postgresql/$v/bin
			break
		fi
	done
fi
if [ -z "$pgbin" ]; then
	if command -v initdb >/dev/null 2>&1; then
		pgbin=$(dirname "$(command -v initdb)")
	else
		echo "$0: PostgreSQL server binaries not found (set PGBIN)" >&2
		exit 1
	fi
fi

# Run a command as the cluster's owner.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/data
sock=$dir/sock
logf=$dir/postgres.log
conninfo="host=$sock dbname=devpocket user=devpocket"

case $cmd in
start)
	if [ "$(id -u)" -eq 0 ]; then
		if ! id postgres >/dev/null 2>&1; then
			echo "$0: running as root needs a postgres user" >&2
			exit 1
		fi
		chown postgres: "$dir"
	fi
	if [ ! -f "$data/PG_VERSION" ]; then
		as_owner "$pgbin/initdb" -D "$data" -U postgres --auth=trust \
		    -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
			cat "$dir/initdb.log" >&2
			exit 1
		}
		as_owner mkdir -p "$sock"
		cat >>"$data/postgresql.conf" <<-EOF
		# tests/pgtmp.sh
		listen_addresses = ''
		unix_socket_directories = '$sock'
		fsync = off
		synchronous_commit = off
		full_page_writes = off
		max_connections = 100
		EOF
		fresh=1
	else
		fresh=0
	fi
	if as_owner "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		:
	else
		as_owner "$pgbin/pg_ctl" -D "$data" -l "$logf" -w -t 60 \
		    start >/dev/null || {
			tail -n 20 "$logf" >&2 || true
			exit 1
		}
	fi
	if [ "$fresh" -eq 1 ]; then
		as_owner "$pgbin/psql" -X -q -h "$sock" -U postgres -d postgres \
		    -v ON_ERROR_STOP=1 \
		    -c "CREATE ROLE devpocket LOGIN" \
		    -c "CREATE DATABASE devpocket OWNER devpocket" >/dev/null
	fi
	echo "$conninfo"
	;;
stop)
	if [ -f "$data/PG_VERSION" ]; then
		as_owner "$pgbin/pg_ctl" -D "$data" -m fast -w stop \
		    >/dev/null 2>&1 || true
	fi
	;;
conninfo)
	echo "$conninfo"
	;;
*)
	usage
	;;
esac
