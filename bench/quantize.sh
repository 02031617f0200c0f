#!/bin/sh
# Quantization speed and memory.
#   1. the project's targets, on a generated TinyLlama-shaped 1.1B model:
#      F16 GGUF -> Q4_K_M, and BF16 folder -> Q4_K_M in one pass (THREADS=2)
#   2. the per-type table: a generated model with rows of 4096 (hidden 4096,
#      8 layers, ~1.9B parameters, 3.7 GB F16) -> each of TYPES at 1 and 2
#      threads, in GB/s of F16 input
# Best of REPEAT runs (default 1: these are long), warm page cache.
#   sh bench/quantize.sh [BUILD]   BENCH_DIR, THREADS (2), TYPES, SKIP_TABLE=1
set -e
BUILD=${1:-build}
BIN="$BUILD/bin"
DIR=${BENCH_DIR:-/tmp/qforge-bench}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-1}
TYPES=${TYPES:-"Q8_0 Q4_0 Q4_K_M Q6_K IQ4_XS"}
GEN="$BUILD/tests/util_genmodel"
[ -x /usr/bin/time ] || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 1; }
make -s "$GEN" BUILD="$BUILD" >/dev/null
mkdir -p "$DIR"

model() { # model NAME DTYPE GENARGS...: a folder with a tokenizer
    d="$DIR/$1"
    dt=$2
    shift 2
    if [ ! -f "$d/config.json" ]; then
        echo "bench: generating $d" >&2
        "$GEN" "$d" --dtype "$dt" --force "$@" >/dev/null
        cp fixtures/stories260K/tokenizer.model "$d/"
    fi
    echo "$d"
}

measure() { # measure LABEL INPUT_BYTES CMD...
    label=$1 bytes=$2
    shift 2
    best="" i=0
    while [ $i -lt "$REPEAT" ]; do
        rm -f "$DIR/q.gguf"
        /usr/bin/time -f "%e %M" -o "$DIR/time.txt" "$@" >/dev/null 2>"$DIR/err" || { cat "$DIR/err" >&2; exit 1; }
        read -r secs rss < "$DIR/time.txt"
        if [ -z "$best" ] || awk -v a="$secs" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$secs bestrss=$rss; fi
        i=$((i + 1))
    done
    printf '%-48s %8.2f s %7.2f GB/s %8.1f MiB peak RSS\n' "$label" "$best" \
        "$(awk -v s="$bytes" -v t="$best" 'BEGIN { print s / t / 1e9 }')" "$(awk -v k="$bestrss" 'BEGIN { print k / 1024 }')"
}

tl_bf16=$(model llama-1.1b-bf16-q bf16 --preset tinyllama-1.1b)
tl_f16=$(model llama-1.1b-f16 f16 --preset tinyllama-1.1b)
[ -f "$DIR/llama-1.1b-f16.gguf" ] || "$BIN/qforge-convert" -q --outtype f16 -o "$DIR/llama-1.1b-f16.gguf" "$tl_f16"
in=$(stat -c %s "$DIR/llama-1.1b-f16.gguf")
echo "== targets: TinyLlama-shaped 1.1B, $THREADS threads"
measure "F16 GGUF -> Q4_K_M (target <= 13.5 s)" "$in" \
    "$BIN/qforge-quantize" -q "$DIR/llama-1.1b-f16.gguf" "$DIR/q.gguf" Q4_K_M "$THREADS"
measure "BF16 folder -> Q4_K_M, one pass (<= 17.5 s)" "$in" \
    "$BIN/qforge-quantize" -q "$tl_bf16" "$DIR/q.gguf" Q4_K_M "$THREADS"

[ "${SKIP_TABLE:-0}" = 1 ] && exit 0
wide=$(model rows4096-f16 f16 --hidden 4096 --ffn 11008 --layers 8 --heads 32 --kv-heads 8 --vocab 32000)
[ -f "$DIR/rows4096-f16.gguf" ] || "$BIN/qforge-convert" -q --outtype f16 -o "$DIR/rows4096-f16.gguf" "$wide"
in=$(stat -c %s "$DIR/rows4096-f16.gguf")
echo "== rows of 4096: $(awk -v s="$in" 'BEGIN { printf "%.2f", s / 1e9 }') GB of F16"
for t in $TYPES; do
    for n in 1 2; do
        measure "$t, $n thread(s)" "$in" "$BIN/qforge-quantize" -q "$DIR/rows4096-f16.gguf" "$DIR/q.gguf" "$t" "$n"
    done
done
rm -f "$DIR/q.gguf"
