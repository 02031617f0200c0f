#!/bin/sh
# Convert speed and memory: a generated LLaMA-shaped 1.1B-parameter BF16 model
# (TinyLlama's shape, 2.2 GB in 4 safetensors shards with an index, config.json
# and a tokenizer), converted to f16 and to bf16 at THREADS threads, against a
# plain single-threaded mmap-convert-write of the same bytes
# (tests/util_plainconvert.c). Best of REPEAT runs, warm page cache.
#   sh bench/convert.sh [BUILD]     BENCH_DIR (/tmp/qforge-bench), THREADS (2), REPEAT (3)
set -e
BUILD=${1:-build}
BIN="$BUILD/bin"
DIR=${BENCH_DIR:-/tmp/qforge-bench}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-3}
MODEL="$DIR/llama-1.1b-bf16-sharded"
OUT="$DIR/out"

[ -x /usr/bin/time ] || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 1; }
make -s "$BUILD/tests/util_genmodel" "$BUILD/tests/util_plainconvert" BUILD="$BUILD" >/dev/null
mkdir -p "$DIR" "$OUT"
if [ ! -f "$MODEL/model.safetensors.index.json" ]; then
    echo "bench: generating $MODEL (2.2 GB, once)"
    "$BUILD/tests/util_genmodel" "$MODEL" --preset tinyllama-1.1b --dtype bf16 --shards 4 --force
    cp fixtures/stories260K/tokenizer.model "$MODEL/"
    # the fixture tokenizer has 512 pieces; the model's vocab is 32000: pad like llama.cpp
fi
SIZE=$(cat "$MODEL"/*.safetensors | wc -c)

measure() {
    name=$1
    shift
    rm -f "$OUT"/*
    "$@" >/dev/null 2>&1 || { echo "bench: $name failed: $*" >&2; "$@"; exit 1; }
    best=""
    i=0
    while [ $i -lt "$REPEAT" ]; do
        rm -f "$OUT"/*
        sync
        /usr/bin/time -f "%e %M" -o "$DIR/time.txt" "$@" >/dev/null 2>&1
        read -r t rss < "$DIR/time.txt"
        if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$t
            bestrss=$rss
        fi
        i=$((i + 1))
    done
    printf '%-44s %7.2f s %8.2f GB/s %9.1f MiB peak RSS\n' "$name" "$best" \
        "$(awk -v s="$SIZE" -v t="$best" 'BEGIN { print (t > 0 ? s / t / 1e9 : 0) }')" \
        "$(awk -v k="$bestrss" 'BEGIN { print k / 1024 }')"
    eval "T_$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_')=$best"
}

echo "bench: $MODEL, $SIZE bytes of BF16, $THREADS threads, best of $REPEAT"
measure "plain mmap-convert-write (1 thread)" "$BUILD/tests/util_plainconvert" "$MODEL" "$OUT/plain.bin"
plain=$best
measure "qforge-convert --outtype f16 -t $THREADS" "$BIN/qforge-convert" -q --outtype f16 -t "$THREADS" -o "$OUT/f16.gguf" "$MODEL"
f16=$best
measure "qforge-convert --outtype bf16 -t $THREADS" "$BIN/qforge-convert" -q --outtype bf16 -t "$THREADS" -o "$OUT/bf16.gguf" "$MODEL"
measure "qforge-convert --outtype f16 -t 1" "$BIN/qforge-convert" -q --outtype f16 -t 1 -o "$OUT/f16.gguf" "$MODEL"
awk -v a="$f16" -v b="$plain" -v n="$THREADS" 'BEGIN { printf "f16 at %s threads / plain: %.2fx (target <= 1.25x)\n", n, a / b }'
rm -rf "$OUT"
