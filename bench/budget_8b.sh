#!/bin/sh
# Size budgets at Llama-3-8B's shape: generate the model (util_genmodel
# --preset llama3-8b, 16 GB of BF16; needs the disk), measure a plan with
# SAMPLE_ROWS rows per tensor (default 256, and the default 1024), then
# solve the saved plan for several budgets with --dry-run --plan: the part
# that must take seconds, not minutes.
#   sh bench/budget_8b.sh [BUILD]    BENCH_DIR (/tmp/qforge-bench-budget), THREADS (2), KEEP=1
set -e
BUILD=${1:-build}
BIN="$BUILD/bin"
DIR=${BENCH_DIR:-/tmp/qforge-bench-budget}
THREADS=${THREADS:-2}
GEN="$BUILD/tests/util_genmodel"
M="$DIR/llama3-8b"
[ -x /usr/bin/time ] || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 1; }
make -s "$GEN" BUILD="$BUILD" >/dev/null
mkdir -p "$DIR"
if [ ! -f "$M/model.safetensors" ]; then
    avail=$(df -Pk "$DIR" | awk 'NR == 2 { print $4 }')
    if [ "$avail" -lt 20000000 ]; then
        echo "bench: $DIR has less than 20 GB free: not generating the 8B model" >&2
        exit 1
    fi
    /usr/bin/time -f "generated in %e s" "$GEN" "$M" --preset llama3-8b --force >/dev/null
    cp fixtures/stories260K/tokenizer.model "$M/"
fi
for rows in ${SAMPLE_ROWS:-256 1024}; do
    /usr/bin/time -f "measure, --sample-rows $rows: %e s, %M KB max RSS" \
        "$BIN/qforge-quantize" -q -f -t "$THREADS" --sample-rows "$rows" --save-plan "$DIR/8b-$rows.plan.json" "$M"
done
for b in "--target-size 4500M" "--target-size 5G" "--target-bpw 3.5" "--max-memory 8G --ctx 8192"; do
    # shellcheck disable=SC2086
    /usr/bin/time -f "solve $b: %e s" "$BIN/qforge-quantize" --dry-run --plan "$DIR/8b-256.plan.json" $b "$M" |
        sed -n 's/^tensor data/  tensor data/p'
done
[ -n "$KEEP" ] || rm -rf "$M"
