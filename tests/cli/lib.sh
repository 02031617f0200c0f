# Helpers for CLI tests: source it, then call the checks. Each check prints
# "ok <name>" or "not ok <name>: <why>"; tests/run.sh counts those lines.
# QF_BIN points at the built tools; QF_ROOT at the repository.
: "${QF_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${QF_BIN:=$QF_ROOT/build/bin}"
FIX="$QF_ROOT/fixtures"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# run CMD...: runs it, keeping stdout in $TMP/out, stderr in $TMP/err, status in $RC
run() {
    "$@" >"$TMP/out" 2>"$TMP/err"
    RC=$?
}

ok() { echo "ok $1"; }
notok() { echo "not ok $1: $2"; }

# expect_rc NAME CODE: the last run exited with CODE
expect_rc() {
    if [ "$RC" -eq "$2" ]; then ok "$1"; else notok "$1" "exit $RC, expected $2; stderr: $(head -c 300 "$TMP/err")"; fi
}

# expect_out NAME PATTERN: stdout of the last run matches the grep -E pattern
expect_out() {
    if grep -Eq -- "$2" "$TMP/out"; then ok "$1"; else notok "$1" "stdout lacks /$2/: $(head -c 300 "$TMP/out")"; fi
}

# expect_err NAME PATTERN: stderr of the last run matches
expect_err() {
    if grep -Eq -- "$2" "$TMP/err"; then ok "$1"; else notok "$1" "stderr lacks /$2/: $(head -c 300 "$TMP/err")"; fi
}

# expect_err_lines NAME N: stderr has exactly N lines
expect_err_lines() {
    n=$(wc -l <"$TMP/err")
    if [ "$n" -eq "$2" ]; then ok "$1"; else notok "$1" "stderr has $n lines, expected $2: $(head -c 300 "$TMP/err")"; fi
}

# expect_same NAME FILE_A FILE_B: byte-identical
expect_same() {
    if cmp -s "$2" "$3"; then ok "$1"; else notok "$1" "$2 and $3 differ"; fi
}
