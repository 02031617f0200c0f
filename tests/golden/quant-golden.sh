#!/bin/sh
# qforge's quantizers against llama-quantize (llama.cpp b4747): for every
# quantized golden GGUF of tiny-llama-256 and stories260K that is in the tree,
# quantize each tensor of the source GGUF to the type llama-quantize chose for
# it and compare the bytes (tests/util_quant_check.c does the work).
#   source: <model>-f32.gguf, or <model>-f16.gguf for *-from-f16.gguf
#   imatrix: tiny-llama-256.imatrix for *-imatrix.gguf
# The converter's own f16/bf16/q8_0 files are checked the same way (a
# converter and llama-quantize agree on those types).
: "${QF_GOLDEN:?}" "${QF_BUILD:?}"
ROOT=${QF_ROOT:-.}
CHECK="$ROOT/$QF_BUILD/tests/util_quant_check"
case "$QF_BUILD" in /*) CHECK="$QF_BUILD/tests/util_quant_check" ;; esac
if [ ! -x "$CHECK" ]; then
    echo "not ok quant-golden: $CHECK not built"
    exit 1
fi
n=0 rc=0
for model in tiny-llama-256 stories260K; do
    dir="$QF_GOLDEN/$model"
    [ -f "$dir/$model-f32.gguf" ] || { echo "not ok $model: $model-f32.gguf missing"; rc=1; continue; }
    for gguf in $(find "$dir" -maxdepth 1 -name "$model-*.gguf" | sort); do
        base=$(basename "$gguf" .gguf)
        src="$dir/$model-f32.gguf" im=""
        case "$base" in
        "$model-f32") continue ;;
        *-from-f16) src="$dir/$model-f16.gguf" ;;
        *-imatrix) im="$dir/$model.imatrix" ;;
        esac
        n=$((n + 1))
        if [ -n "$im" ]; then
            "$CHECK" -i "$im" "$src" "$gguf" || rc=1
        else
            "$CHECK" "$src" "$gguf" || rc=1
        fi
    done
done
[ $n -gt 0 ] || { echo "not ok quant-golden: no quantized golden GGUF found"; rc=1; }

# The unit test's fixtures (fixtures/quant, see its README) are copies of
# golden files: check they still are.
edge="$QF_GOLDEN/mix-probe-12L/edge"
for f in "$ROOT"/fixtures/quant/*.bin; do
    b=$(basename "$f")
    if cmp -s "$f" "$edge/$b"; then
        echo "ok fixture $b equals golden edge/$b"
    else
        echo "not ok fixture $b differs from golden edge/$b (run fixtures/quant/make.py)"
        rc=1
    fi
done
if cmp -s "$ROOT/fixtures/quant/imatrix/tiny-llama-256.imatrix" "$QF_GOLDEN/tiny-llama-256/tiny-llama-256.imatrix"; then
    echo "ok fixture imatrix/tiny-llama-256.imatrix equals golden"
else
    echo "not ok fixture imatrix/tiny-llama-256.imatrix differs from golden"
    rc=1
fi
exit $rc
