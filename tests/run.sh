#!/bin/sh
# Run every unit test binary and CLI test script; end with "N passed, N failed".
#   QF_BUILD=build sh tests/run.sh [-v]
# Unit tests are cmocka binaries build/tests/test_*; each test case counts.
# CLI tests are tests/cli/*.sh; each "ok ..." / "not ok ..." line counts.
BUILD=${QF_BUILD:-build}
VERBOSE=0
[ "$1" = "-v" ] && VERBOSE=1
cd "$(dirname "$0")/.." || exit 1
export QF_BUILD="$BUILD" QF_BIN="$PWD/$BUILD/bin" QF_ROOT="$PWD"
export CMOCKA_MESSAGE_OUTPUT=stdout
pass=0 fail=0 skip=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    "$t" >"$log" 2>&1
    rc=$?
    run=$(grep -c '^\[ RUN      \]' "$log")
    ok=$(grep -c '^\[       OK \]' "$log")
    sk=$(grep -c '^\[  SKIPPED \]' "$log")
    bad=$((run - ok - sk))
    [ $rc -ne 0 ] && [ $bad -eq 0 ] && bad=1
    pass=$((pass + ok)) fail=$((fail + bad)) skip=$((skip + sk))
    if [ $bad -ne 0 ] || [ $VERBOSE = 1 ]; then
        echo "== $t (exit $rc)"
        grep -v '^\[       OK \]\|^\[ RUN      \]' "$log" | head -60
    else
        echo "$(basename "$t"): $ok passed"
    fi
done

for s in tests/cli/*.sh; do
    [ -f "$s" ] || continue
    case "$s" in */lib.sh) continue ;; esac
    sh "$s" >"$log" 2>&1
    rc=$?
    ok=$(grep -c '^ok ' "$log")
    bad=$(grep -c '^not ok ' "$log")
    [ $rc -ne 0 ] && [ $bad -eq 0 ] && bad=1
    pass=$((pass + ok)) fail=$((fail + bad))
    if [ $bad -ne 0 ] || [ $VERBOSE = 1 ]; then
        echo "== $s (exit $rc)"
        grep -v '^ok ' "$log" | head -60
    else
        echo "$(basename "$s"): $ok passed"
    fi
done

if [ $skip -gt 0 ]; then
    echo "$pass passed, $fail failed, $skip skipped"
else
    echo "$pass passed, $fail failed"
fi
[ $fail -eq 0 ]
