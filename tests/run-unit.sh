#!/bin/sh
# tests/run-unit.sh: runs the Check unit-test programs given as arguments.
#
#   sh tests/run-unit.sh build/tests/check_*
#   VALGRIND=1 sh tests/run-unit.sh build/tests/check_*
#
# Prints each program's own output, then one line
# "unit: N passed, N failed" summed from Check's
# "Checks: N, Failures: F, Errors: E" lines.  A program that exits non-zero
# without reporting a failure (a crash, a valgrind error, no summary line)
# counts as one failed check.  With VALGRIND=1 each program runs under
# valgrind with CK_FORK=no (so leaks in the tests themselves are seen);
# definite leaks and memory errors fail it.  Exit status 1 on any failure.
set -u

passed=0
failed=0
out=$(mktemp "${TMPDIR:-/tmp}/run-unit.XXXXXX")
trap 'rm -f "$out"' EXIT
trap 'rm -f "$out"; exit 130' INT TERM

if [ "${VALGRIND:-0}" = 1 ] && ! command -v valgrind >/dev/null 2>&1; then
	echo "run-unit: VALGRIND=1 but valgrind is not installed" >&2
	exit 1
fi

for prog in "$@"; do
	case $prog in
	*/*) ;;
	*) prog=./$prog ;;
	esac
	echo "== $prog"
	if [ ! -x "$prog" ]; then
		echo "run-unit: $prog: not an executable"
		failed=$((failed + 1))
		continue
	fi
	if [ "${VALGRIND:-0}" = 1 ]; then
		CK_FORK=no valgrind -q --leak-check=full \
		    --errors-for-leak-kinds=definite --error-exitcode=99 \
		    "$prog" >"$out" 2>&1
	else
		"$prog" >"$out" 2>&1
	fi
	rc=$?
	cat "$out"
	# Check: "100%: Checks: 12, Failures: 0, Errors: 0" (one per runner).
	summary=$(sed -n 's/.*Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p' "$out" |
	    awk '{ c += $1; f += $2 + $3 } END { print NR, c + 0, f + 0 }')
	read -r lines checks bad <<-EOF
	$summary
	EOF
	if [ "$lines" -eq 0 ]; then
		echo "run-unit: $prog: no Check summary (exit $rc)"
		bad=1
		checks=1
	elif [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		echo "run-unit: $prog: exit status $rc"
		bad=1
		checks=$((checks + 1))
	fi
	passed=$((passed + checks - bad))
	failed=$((failed + bad))
done

echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
