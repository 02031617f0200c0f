#!/bin/sh
# Rewrite every golden GGUF with qforge's reader and writer (all pairs copied,
# all tensors re-declared and streamed) and compare the bytes with cmp.
# Prints "ok <file>" or "not ok <file>: <why>" per file.
#   QF_GOLDEN=../shared/golden QF_BUILD=build sh tests/golden/gguf-roundtrip.sh
cd "$(dirname "$0")/../.." || exit 1
GOLDEN=${QF_GOLDEN:-../shared/golden}
BUILD=${QF_BUILD:-build}
TOOL="$BUILD/tests/util_gguf_rewrite"
if [ ! -x "$TOOL" ]; then
    echo "not ok gguf-roundtrip: $TOOL is not built"
    exit 1
fi
if [ ! -d "$GOLDEN" ]; then
    echo "not ok gguf-roundtrip: no golden folder $GOLDEN"
    exit 1
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
bad=0 n=0
list="$TMP/list"
find "$GOLDEN" -name '*.gguf' -type f | sort >"$list"
while IFS= read -r f; do
    n=$((n + 1))
    out="$TMP/out.gguf"
    rm -f "$out"
    if ! "$TOOL" "$f" "$out" 2>"$TMP/err"; then
        echo "not ok $f: rewrite failed: $(head -c 300 "$TMP/err")"
        bad=$((bad + 1))
    elif ! why=$(cmp "$f" "$out" 2>&1); then
        echo "not ok $f: $why"
        bad=$((bad + 1))
    else
        echo "ok $f"
    fi
done <"$list"
if [ "$n" -eq 0 ]; then
    echo "not ok gguf-roundtrip: no *.gguf under $GOLDEN"
    exit 1
fi
[ "$bad" -eq 0 ]
