#!/bin/sh
# Every GGUF under ../shared/golden (llama.cpp's files) -> QFM -> GGUF gives
# the original bytes back, with zstd (2 threads) and with the raw codec; the
# QFM checks itself (qforge-sum --check) and its manifest equals the GGUF's.
: "${QF_BIN:?}" "${QF_GOLDEN:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
n=0
for f in $(find "$QF_GOLDEN" -name '*.gguf' | sort); do
    b=$(basename "$f" .gguf)
    n=$((n + 1))
    for codec in zstd raw; do
        if ! "$QF_BIN/qforge-import" -q -t 2 --codec $codec "$f" "$TMP/$b.qfm" 2>"$TMP/err"; then
            echo "not ok import $codec $b: $(cat "$TMP/err")"
            continue
        fi
        if ! "$QF_BIN/qforge-export" "$TMP/$b.qfm" "$TMP/$b.gguf" 2>"$TMP/err"; then
            echo "not ok export $codec $b: $(cat "$TMP/err")"
        elif cmp -s "$f" "$TMP/$b.gguf"; then
            echo "ok $codec round trip $b ($(wc -c <"$f") -> $(wc -c <"$TMP/$b.qfm") bytes)"
        else
            echo "not ok $codec round trip $b: bytes differ"
        fi
        if "$QF_BIN/qforge-sum" -q --check "$TMP/$b.qfm" >"$TMP/out" 2>&1; then
            echo "ok $codec sum --check $b"
        else
            echo "not ok $codec sum --check $b: $(head -3 "$TMP/out")"
        fi
        # digests and tensor names, without the file label
        "$QF_BIN/qforge-sum" "$TMP/$b.qfm" | sed 's/  [^ ]*\.qfm/  X/' >"$TMP/m1"
        "$QF_BIN/qforge-sum" "$f" | sed 's/  [^ ]*\.gguf/  X/' >"$TMP/m2"
        if cmp -s "$TMP/m1" "$TMP/m2"; then echo "ok $codec manifest $b"; else echo "not ok $codec manifest $b"; fi
        rm -f "$TMP/$b.qfm" "$TMP/$b.gguf"
    done
done
[ "$n" -ge 30 ] && echo "ok $n golden GGUFs" || echo "not ok only $n golden GGUFs"
