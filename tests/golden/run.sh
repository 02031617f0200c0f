#!/bin/sh
# make check-golden: compare qforge with the files llama.cpp's own tools made
# (../shared/golden). Each check script prints "ok ..." / "not ok ..." lines;
# this runner ends with "N passed, N failed".
cd "$(dirname "$0")/../.." || exit 1
export QF_BUILD="${QF_BUILD:-build}" QF_ROOT="$PWD"
export QF_BIN="$PWD/$QF_BUILD/bin"
export QF_GOLDEN="${QF_GOLDEN:-$PWD/../shared/golden}"
if [ ! -d "$QF_GOLDEN" ]; then
    echo "check-golden: $QF_GOLDEN not found (set QF_GOLDEN)" >&2
    exit 1
fi
pass=0 fail=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for s in tests/golden/*.sh tests/golden/*.py; do
    [ -f "$s" ] || continue
    case "$s" in */run.sh) continue ;; esac
    case "$s" in
    *.py) python3 "$s" >"$log" 2>&1 ;;
    *) sh "$s" >"$log" 2>&1 ;;
    esac
    rc=$?
    ok=$(grep -c '^ok ' "$log")
    bad=$(grep -c '^not ok ' "$log")
    [ $rc -ne 0 ] && [ $bad -eq 0 ] && bad=1
    pass=$((pass + ok)) fail=$((fail + bad))
    if [ $bad -ne 0 ]; then
        echo "== $s (exit $rc)"
        grep -v '^ok ' "$log" | head -40
    else
        echo "$(basename "$s"): $ok passed"
    fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
