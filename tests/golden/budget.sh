#!/bin/sh
# Size budgets against llama.cpp's named mixes on tiny-llama-256
# (../shared/golden): for Q3_K_M, Q4_K_M and Q5_K_M as qforge-quantize makes
# them, with and without the model's importance matrix, a budget file of at
# most the mix's size (--target-size) must have a lower mean KL divergence
# against the F32 model than the mix, measured as tests/golden/verify.py
# measures it (qforge-verify --ref F32 -f eval.txt -c 128). Two budget files
# per mix: the built-in sensitivities, and the model's own, calibrated on
# train.txt (not the eval text). bench/budget.sh prints the same table for
# more models.
: "${QF_GOLDEN:?}" "${QF_BIN:?}"
MODELS="${QF_MODELS:-$QF_GOLDEN/../models}"
Q="$QF_BIN/qforge-quantize"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
G="$QF_GOLDEN/tiny-llama-256"
SRC="$G/tiny-llama-256-f32.gguf"
IM="$G/tiny-llama-256.imatrix"
EVAL="$MODELS/tiny-llama-256/eval.txt"
TRAIN="$MODELS/tiny-llama-256/train.txt"

kld() { # mean KLD of $1 against the F32 model, or nothing
    [ -f "$1" ] || return 0
    "$QF_BIN/qforge-verify" -q --json -t 2 -m "$1" --ref "$SRC" -f "$EVAL" -c 128 |
        python3 -c 'import json,sys; print("%.6f" % json.load(sys.stdin)["kld"]["mean"])' 2>/dev/null
}

for with in no yes; do
    iopt=""
    [ $with = yes ] && iopt="--imatrix $IM"
    # shellcheck disable=SC2086
    "$Q" -q -f -t 2 $iopt --save-plan "$TMP/plan.json" "$SRC" || echo "not ok plan ($with imatrix)"
    # shellcheck disable=SC2086
    "$Q" -q -f -t 2 $iopt --plan "$TMP/plan.json" --calibrate "$TRAIN" --save-plan "$TMP/cal.json" "$SRC" ||
        echo "not ok calibration ($with imatrix)"
    for mix in Q3_K_M Q4_K_M Q5_K_M; do
        rm -f "$TMP/mix.gguf"
        # shellcheck disable=SC2086
        "$Q" -q -f -t 2 $iopt "$SRC" "$TMP/mix.gguf" "$mix" || echo "not ok $mix ($with imatrix)"
        size=$(stat -c %s "$TMP/mix.gguf")
        mk=$(kld "$TMP/mix.gguf")
        for p in plan cal; do
            rm -f "$TMP/b.gguf"
            # shellcheck disable=SC2086
            "$Q" -q -f -t 2 $iopt --plan "$TMP/$p.json" --target-size "$size" "$SRC" "$TMP/b.gguf"
            bsize=$(stat -c %s "$TMP/b.gguf" 2>/dev/null || echo 0)
            bk=$(kld "$TMP/b.gguf")
            name="budget ($p) at $mix's size, $with imatrix"
            if [ "$bsize" -gt 0 ] && [ "$bsize" -le "$size" ] && [ -n "$bk" ] && [ -n "$mk" ] &&
                python3 -c "import sys; sys.exit(0 if $bk < $mk else 1)"; then
                echo "ok $name: $bsize <= $size bytes, mean KLD $bk < $mk"
            else
                echo "not ok $name: $bsize bytes (limit $size), mean KLD $bk (mix $mk)"
            fi
        done
    done
done
