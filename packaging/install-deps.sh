#!/bin/sh
# packaging/install-deps.sh: install the Debian packages DevPocket needs to
# build, test and run, but only those that are missing.
#
#   sh packaging/install-deps.sh [--check]
#
# --check only lists what is missing (exit 1 if anything is).  Without it,
# missing packages are installed with apt-get (one `apt-get update` first,
# only when something is missing).  Installing needs root; as another user
# the script names the missing packages and fails.
set -eu

# Build and unit tests.
BUILD_PKGS="gcc make pkg-config libfcgi-dev libpq-dev libjson-c-dev
libjwt-dev libscrypt-dev libcurl4-openssl-dev libyaml-dev libinih-dev check
libssl-dev nettle-dev mandoc valgrind openssl"
# make deb, make rpm and the package tests.
PKG_PKGS="dpkg-dev debhelper fakeroot rpm"
# `make run`, integration tests and benchmarks.
RUN_PKGS="postgresql nginx lighttpd spawn-fcgi websocketd tmux bubblewrap python3-jsonschema
python3 curl wrk"

check_only=0
case ${1:-} in
--check) check_only=1 ;;
"") ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-deps: dpkg-query not found; this script is for Debian 12." >&2
	echo "install-deps: install these by hand: $BUILD_PKGS $RUN_PKGS $PKG_PKGS" | tr '\n' ' ' >&2
	echo >&2
	exit 1
fi

missing=
for p in $BUILD_PKGS $RUN_PKGS $PKG_PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case $st in
	*" ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -z "$missing" ]; then
	[ "$check_only" -eq 1 ] && echo "install-deps: all packages installed"
	exit 0
fi

if [ "$check_only" -eq 1 ]; then
	echo "install-deps: missing:$missing"
	exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: these Debian packages are missing:$missing" >&2
	echo "install-deps: run as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi

echo "install-deps: installing$missing"
# Debian starts a packaged service when it is installed; nginx and lighttpd
# would then fight over port 80 and a failed start fails the installation.
# The stack runs private instances, so keep the packaged services from
# starting during this installation (policy-rc.d, as in container images).
# An existing policy-rc.d is the administrator's and is left alone.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	trap 'rm -f "$policy"' EXIT
	trap 'rm -f "$policy"; exit 1' HUP INT TERM
	printf '#!/bin/sh\n# packaging/install-deps.sh (temporary)\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # word splitting of the package list is wanted
apt-get install -y -q --no-install-recommends $missing
echo "install-deps: done"
