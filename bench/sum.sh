#!/bin/sh
# qforge-sum and qforge-inspect: wall time and peak resident memory on a generated
# LLaMA-shaped 1.1B-parameter BF16 model (2.2 GB of safetensors).
#   sh bench/sum.sh [BUILD]    BENCH_DIR=/path (default /tmp/qforge-bench), THREADS=2
# The model is generated once and kept in BENCH_DIR. Each command runs
# REPEAT times (default 3) after one warm-up run; the best time is reported
# with its peak RSS (GNU time's %M), so the figures are for a warm page cache.
set -e
BUILD=${1:-build}
BIN="$BUILD/bin"
DIR=${BENCH_DIR:-/tmp/qforge-bench}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-3}
MODEL="$DIR/llama-1.1b-bf16"

[ -x /usr/bin/time ] || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 1; }
make -s "$BUILD/tests/util_genmodel" BUILD="$BUILD" >/dev/null
mkdir -p "$DIR"
if [ ! -f "$MODEL/model.safetensors" ]; then
    echo "bench: generating $MODEL (2.2 GB, once)"
    "$BUILD/tests/util_genmodel" "$MODEL" --preset tinyllama-1.1b --dtype bf16 --force
fi
SIZE=$(stat -c %s "$MODEL/model.safetensors")

# measure NAME CMD...: best wall time of REPEAT runs, and the peak RSS of that run
measure() {
    name=$1
    shift
    "$@" >/dev/null 2>&1 || { echo "bench: $name failed: $*" >&2; exit 1; }
    best=""
    i=0
    while [ $i -lt "$REPEAT" ]; do
        /usr/bin/time -f "%e %M" -o "$DIR/time.txt" "$@" >/dev/null 2>&1
        read -r t rss < "$DIR/time.txt"
        if [ -z "$best" ] || [ "$(echo "$t < $best" | awk '{print ($1 < $3)}')" = 1 ]; then
            best=$t
            bestrss=$rss
        fi
        i=$((i + 1))
    done
    mbps=$(awk -v s="$SIZE" -v t="$best" 'BEGIN { if (t > 0) printf "%.0f", s / t / 1048576; else print "-" }')
    printf '%-40s %8.2f s %10.1f MiB peak RSS %8s MiB/s\n' "$name" "$best" "$(awk -v k="$bestrss" 'BEGIN{print k/1024}')" "$mbps"
}

echo "bench: $MODEL/model.safetensors, $SIZE bytes, $THREADS threads, best of $REPEAT"
measure "qforge-inspect" "$BIN/qforge-inspect" "$MODEL"
measure "qforge-inspect --json" "$BIN/qforge-inspect" --json "$MODEL"
measure "qforge-sum -t $THREADS" "$BIN/qforge-sum" -t "$THREADS" "$MODEL/model.safetensors"
measure "qforge-sum -t 1" "$BIN/qforge-sum" -t 1 "$MODEL/model.safetensors"
measure "sha256sum (reference: one pass)" sha256sum "$MODEL/model.safetensors"
