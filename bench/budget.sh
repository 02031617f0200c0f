#!/bin/sh
# Size budgets against llama.cpp's named mixes: for each model and each mix
# in MIXES, the mix made by qforge-quantize and a budget file of at most the
# same size (--target-size), both scored by qforge-verify against the F32
# model (mean KL divergence over the eval text, -c 128 as tests/golden/
# verify.py). With and without the importance matrix where the model has
# one. Prints one table row per (model, imatrix, mix); the last column says
# whether the budget file is no larger and has the lower mean KLD.
#   sh bench/budget.sh [BUILD]    QF_GOLDEN (../shared/golden), MODELS,
#                                 MIXES ("Q3_K_M Q4_K_M Q5_K_M"), THREADS (2),
#                                 BENCH_DIR (/tmp/qforge-bench-budget)
set -e
BUILD=${1:-build}
BIN="$BUILD/bin"
GOLDEN=${QF_GOLDEN:-../shared/golden}
SHARED_MODELS="$GOLDEN/../models"
MODELS=${MODELS:-"tiny-llama-256 mix-probe-12L"}
MIXES=${MIXES:-"Q3_K_M Q4_K_M Q5_K_M"}
THREADS=${THREADS:-2}
DIR=${BENCH_DIR:-/tmp/qforge-bench-budget}
EVAL="$SHARED_MODELS/tiny-llama-256/eval.txt"
mkdir -p "$DIR"

kld() { # kld MODEL REF: mean KLD
    "$BIN/qforge-verify" -q --json -t "$THREADS" -m "$1" --ref "$2" -f "$EVAL" -c 128 |
        python3 -c 'import json,sys; print("%.6f" % json.load(sys.stdin)["kld"]["mean"])'
}

fails=0
printf '%-15s %-8s %-7s %10s %10s %10s %10s %8s  %s\n' model imatrix mix mix_bytes budget_bytes \
    mix_kld budget_kld kld_ratio result
for m in $MODELS; do
    src="$GOLDEN/$m/$m-f32.gguf"
    [ -f "$src" ] || src="$SHARED_MODELS/$m" # mix-probe-12L: its GGUFs are not shipped
    im="$GOLDEN/$m/$m.imatrix"
    for with in no yes; do
        iopt=""
        if [ $with = yes ]; then
            [ -f "$im" ] || continue
            iopt="--imatrix $im"
        fi
        plan="$DIR/$m-$with.plan.json"
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086
        "$BIN/qforge-quantize" -q -f -t "$THREADS" $iopt --save-plan "$plan" "$src"
        t1=$(date +%s.%N)
        echo "# $m imatrix=$with: plan measured in $(echo "$t1 - $t0" | bc) s" >&2
        for mix in $MIXES; do
            mf="$DIR/$m-$mix-$with.gguf"
            bf="$DIR/$m-$mix-$with-budget.gguf"
            # shellcheck disable=SC2086
            "$BIN/qforge-quantize" -q -f -t "$THREADS" $iopt "$src" "$mf" "$mix"
            size=$(stat -c %s "$mf")
            # shellcheck disable=SC2086
            "$BIN/qforge-quantize" -q -f -t "$THREADS" $iopt --plan "$plan" --target-size "$size" \
                "$src" "$bf"
            bsize=$(stat -c %s "$bf")
            mk=$(kld "$mf" "$src")
            bk=$(kld "$bf" "$src")
            res=$(python3 -c "print('ok' if $bsize <= $size and $bk < $mk else 'WORSE')")
            [ "$res" = ok ] || fails=$((fails + 1))
            printf '%-15s %-8s %-7s %10s %10s %10s %10s %8s  %s\n' "$m" $with "$mix" "$size" \
                "$bsize" "$mk" "$bk" "$(python3 -c "print('%.3f' % ($bk / $mk))")" "$res"
        done
    done
done
echo "budget files worse than their mix: $fails"
