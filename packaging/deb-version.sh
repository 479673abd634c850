#!/bin/sh
# packaging/deb-version.sh: give a debian/changelog copy another version.
#
#   deb-version.sh CHANGELOG [VERSION]
#
# Without VERSION (or when it is the changelog's own) nothing changes.
# Otherwise a new top entry for VERSION is prepended, as `dch -v` would:
# `make deb DEB_VERSION=0.1.0-2` builds an upgrade of the same tree.
set -eu

[ $# -ge 1 ] || { echo "usage: $0 CHANGELOG [VERSION]" >&2; exit 2; }
cl=$1
v=${2:-}
[ -n "$v" ] || exit 0
case $v in
*[!A-Za-z0-9.+~:-]*|'') echo "$0: bad version: $v" >&2; exit 2 ;;
esac
cur=$(sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' "$cl")
[ "$v" = "$cur" ] && exit 0
{
	printf 'devpocket (%s) unstable; urgency=medium\n\n' "$v"
	printf '  * Local build %s.\n\n' "$v"
	printf ' -- DevPocket developers <devpocket@localhost>  %s\n\n' \
	    "$(LC_ALL=C date -R)"
	cat "$cl"
} >"$cl.new"
mv "$cl.new" "$cl"
