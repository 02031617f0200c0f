#!/bin/sh
# Size budgets against llama.cpp's named mixes: for each model and each mix
# in MIXES, the mix made by qforge-quantize and two budget files of at most
# the same size (--target-size): one with the built-in sensitivities
# ("table"), one with the model's own, calibrated on CALIB_TEXT (default
# tiny-llama-256's train.txt, not the eval text). All are scored by
# qforge-verify against the F32 model: mean KL divergence over the eval text,
# -c 128, as tests/golden/verify.py. With and without the importance matrix
# where the model has one (the mix then made with the same imatrix).
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
CALIB_TEXT=${CALIB_TEXT:-$SHARED_MODELS/tiny-llama-256/train.txt}
mkdir -p "$DIR"

kld() { # kld MODEL REF: mean KLD
    "$BIN/qforge-verify" -q --json -t "$THREADS" -m "$1" --ref "$2" -f "$EVAL" -c 128 |
        python3 -c 'import json,sys; print("%.6f" % json.load(sys.stdin)["kld"]["mean"])'
}
secs() { python3 -c "import sys; print('%.2f' % ($2 - $1))"; }

worse=0
printf '%-14s %-3s %-6s %9s %9s %9s %9s %9s %9s %6s %6s\n' model im mix mix_B table_B calib_B \
    mix_kld table_kld calib_kld table calib
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
        cal="$DIR/$m-$with.cal.json"
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086
        "$BIN/qforge-quantize" -q -f -t "$THREADS" $iopt --save-plan "$plan" "$src"
        t1=$(date +%s.%N)
        # shellcheck disable=SC2086
        "$BIN/qforge-quantize" -q -f -t "$THREADS" $iopt --plan "$plan" --calibrate "$CALIB_TEXT" \
            --save-plan "$cal" "$src"
        t2=$(date +%s.%N)
        echo "# $m imatrix=$with: measured in $(secs "$t0" "$t1") s, calibrated in $(secs "$t1" "$t2") s"
        for mix in $MIXES; do
            mf="$DIR/$m-$mix-$with.gguf"
            # shellcheck disable=SC2086
            "$BIN/qforge-quantize" -q -f -t "$THREADS" $iopt "$src" "$mf" "$mix"
            size=$(stat -c %s "$mf")
            mk=$(kld "$mf" "$src")
            line=""
            for p in plan cal; do
                bf="$DIR/$m-$mix-$with-$p.gguf"
                # shellcheck disable=SC2086
                "$BIN/qforge-quantize" -q -f -t "$THREADS" $iopt --plan "$DIR/$m-$with.$p.json" \
                    --target-size "$size" "$src" "$bf"
                eval "b_$p=$(stat -c %s "$bf")"
                eval "k_$p=$(kld "$bf" "$src")"
            done
            # shellcheck disable=SC2154
            r_plan=$(python3 -c "print('%.3f' % ($k_plan / $mk))")
            # shellcheck disable=SC2154
            r_cal=$(python3 -c "print('%.3f' % ($k_cal / $mk))")
            for p in plan cal; do
                eval "b=\$b_$p k=\$k_$p"
                # shellcheck disable=SC2154
                python3 -c "import sys; sys.exit(0 if $b <= $size and $k < $mk else 1)" ||
                    { worse=$((worse + 1)); line="$line $p:WORSE"; }
            done
            printf '%-14s %-3s %-6s %9s %9s %9s %9s %9s %9s %6s %6s%s\n' "$m" $with "$mix" "$size" \
                "$b_plan" "$b_cal" "$mk" "$k_plan" "$k_cal" "$r_plan" "$r_cal" "$line"
        done
    done
done
echo "# table/calib: budget file's mean KLD / the mix's (below 1: the budget file is better)"
echo "budget files not better than their mix: $worse"
