#!/bin/sh
# QFM size and speed. For the golden F16/BF16/F32 GGUFs (../shared/golden) and
# a generated LLaMA-shaped 1.1B-parameter BF16 model (TinyLlama's shape,
# 2.2 GB, made by tests/util_genmodel and converted to a BF16 GGUF): the size
# of the QFM with zstd (default level) and raw, against `zstd -19` of the
# whole GGUF; compression (qforge-import) and decompression (qforge-sum
# --check: decode and hash every tensor; qforge-export: decode and write the
# GGUF) at 1 and 2 threads, with peak RSS. Warm page cache, one run each.
#   sh bench/qfm.sh [BUILD]    BENCH_DIR (/tmp/qfm-bench), GOLDEN (../shared/golden), BIG (1), Z19_BIG (1)
set -e
BUILD=${1:-build}
BIN="$BUILD/bin"
DIR=${BENCH_DIR:-/tmp/qfm-bench}
GOLDEN=${GOLDEN:-../shared/golden}
command -v zstd >/dev/null || { echo "bench: needs the zstd CLI (apt-get install zstd)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 1; }
mkdir -p "$DIR"

size() { wc -c <"$1" | tr -d ' '; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }

# timed NAME BYTES CMD...: "NAME  s  MB/s  MiB RSS" (BYTES: uncompressed bytes processed)
timed() {
    name=$1 bytes=$2
    shift 2
    sync
    /usr/bin/time -f "%e %M" -o "$DIR/time.txt" "$@" >/dev/null 2>"$DIR/err" || { cat "$DIR/err" >&2; exit 1; }
    read -r t rss <"$DIR/time.txt"
    printf '  %-40s %7.2f s %9.1f MB/s %8.1f MiB peak RSS\n' "$name" "$t" \
        "$(awk -v s="$bytes" -v t="$t" 'BEGIN { print (t > 0 ? s / t / 1e6 : 0) }')" \
        "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
}

sizes() {
    g=$1
    b=$(basename "$g" .gguf)
    "$BIN/qforge-import" -q -f -t 2 "$g" "$DIR/$b.qfm"
    "$BIN/qforge-import" -q -f -t 2 --codec raw "$g" "$DIR/$b-raw.qfm"
    if [ "${3:-1}" = 1 ]; then
        zstd -q -f -19 -T2 "$g" -o "$DIR/$b.gguf.zst"
        z19=$(size "$DIR/$b.gguf.zst")
    else
        z19=""
    fi
    gs=$(size "$g")
    printf '%-34s %12s %12s %7s %12s %7s %12s %7s\n' "$b" "$gs" "$(size "$DIR/$b-raw.qfm")" \
        "$(pct "$(size "$DIR/$b-raw.qfm")" "$gs")" "$(size "$DIR/$b.qfm")" "$(pct "$(size "$DIR/$b.qfm")" "$gs")" \
        "${z19:--}" "$( [ -n "$z19" ] && pct "$z19" "$gs" || echo -)"
}

echo "Sizes in bytes (QFM zstd at the default level; percentages of the GGUF)"
printf '%-34s %12s %12s %7s %12s %7s %12s %7s\n' "model" "GGUF" "QFM raw" "" "QFM zstd" "" "zstd -19" ""
for g in $(find "$GOLDEN" -name '*-f16.gguf' -o -name '*-bf16.gguf' -o -name '*-f32.gguf' | sort); do
    sizes "$g"
done

[ "${BIG:-1}" = 1 ] || exit 0
MODEL="$DIR/llama-1.1b-bf16"
BIGG="$DIR/llama-1.1b-bf16.gguf"
if [ ! -f "$BIGG" ]; then
    make -s "$BUILD/tests/util_genmodel" BUILD="$BUILD" >/dev/null
    echo "bench: generating $MODEL (2.2 GB, once)"
    "$BUILD/tests/util_genmodel" "$MODEL" --preset tinyllama-1.1b --dtype bf16 --force >/dev/null
    cp fixtures/stories260K/tokenizer.model "$MODEL/"
    "$BIN/qforge-convert" -q --outtype bf16 -o "$BIGG" "$MODEL"
    rm -rf "$MODEL"
fi
sizes "$BIGG" x 0
N=$(size "$BIGG")
echo
echo "Speed on $(basename "$BIGG") ($N bytes)"
for t in 1 2; do
    timed "qforge-import (zstd) -t $t" "$N" "$BIN/qforge-import" -q -f -t "$t" "$BIGG" "$DIR/big.qfm"
done
timed "qforge-import --codec raw -t 2" "$N" "$BIN/qforge-import" -q -f -t 2 --codec raw "$BIGG" "$DIR/big-raw.qfm"
for t in 1 2; do
    timed "qforge-sum --check (decode+hash) -t $t" "$N" "$BIN/qforge-sum" -q -t "$t" --check "$DIR/big.qfm"
done
timed "qforge-export (decode+write)" "$N" "$BIN/qforge-export" -f "$DIR/big.qfm" "$DIR/big.gguf"
cmp "$BIGG" "$DIR/big.gguf" && echo "  export: byte-identical to the GGUF"
timed "qforge-import --level 3 -t 2" "$N" "$BIN/qforge-import" -q -f -t 2 --level 3 "$BIGG" "$DIR/big3.qfm"
echo "  QFM --level 3: $(size "$DIR/big3.qfm") bytes ($(pct "$(size "$DIR/big3.qfm")" "$N") of the GGUF)"
if [ "${Z19_BIG:-1}" = 1 ]; then
    timed "zstd -19 -T2 (whole GGUF)" "$N" zstd -q -f -19 -T2 "$BIGG" -o "$DIR/big.gguf.zst"
    echo "  zstd -19: $(size "$DIR/big.gguf.zst") bytes ($(pct "$(size "$DIR/big.gguf.zst")" "$N") of the GGUF)"
    timed "zstd -d (whole GGUF)" "$N" zstd -q -f -d "$DIR/big.gguf.zst" -o "$DIR/big2.gguf"
fi
rm -f "$DIR/big.gguf" "$DIR/big2.gguf" "$DIR/big-raw.qfm" "$DIR/big3.qfm"
