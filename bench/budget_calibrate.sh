#!/bin/sh
# How strongly each kind of tensor's relative noise reaches the logits: for
# each kind, only that kind's tensors are quantized (to TYPE, default Q3_K;
# the rest stays F32), the mean KL divergence against the F32 model is
# measured, and divided by the summed relative error err/signal that the
# plan measured for those tensors in that type. The ratios are the
# sensitivities of convert/quantize_budget.c (docs/budget.md).
#   sh bench/budget_calibrate.sh [BUILD] MODEL_F32 [IMATRIX]   TYPE, THREADS, EVAL
set -e
BUILD=${1:-build}
SRC=$2
IM=$3
BIN="$BUILD/bin"
TYPE=${TYPE:-Q3_K}
THREADS=${THREADS:-2}
EVAL=${EVAL:-../shared/models/tiny-llama-256/eval.txt}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
iopt=""
[ -n "$IM" ] && iopt="--imatrix $IM"
# shellcheck disable=SC2086
"$BIN/qforge-quantize" -q -t "$THREADS" $iopt --save-plan "$DIR/plan.json" "$SRC"
printf '%-12s %12s %12s %12s\n' kind rel_err kld sensitivity
KINDS=${KINDS:-"output.weight token_embd.weight attn_q.weight attn_k.weight attn_v.weight attn_output.weight ffn_gate ffn_up ffn_down"}
for kind in $KINDS; do
    case $kind in
    output.weight | token_embd.weight) re="^$kind\$" ;; # not attn_output.weight
    *) re=$kind ;;
    esac
    # shellcheck disable=SC2086
    "$BIN/qforge-quantize" -q -t "$THREADS" $iopt --tensor-type "$re=$TYPE" "$SRC" "$DIR/k.gguf" F32
    kld=$("$BIN/qforge-verify" -q --json -t "$THREADS" -m "$DIR/k.gguf" --ref "$SRC" -f "$EVAL" -c 128 |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["kld"]["mean"])')
    rm -f "$DIR/k.gguf"
    python3 - "$DIR/plan.json" "$kind" "$TYPE" "$kld" <<'PY'
import json, sys
plan, kind, typ, kld = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
rel = 0.0
for t in json.load(open(plan))["tensors"]:
    exact = kind in ("output.weight", "token_embd.weight")
    if t["fixed"] or (t["name"] != kind if exact else kind not in t["name"]):
        continue
    for c in t["candidates"]:
        if c["type"] == typ:
            rel += c["err"] / t["signal"]
print("%-12s %12.6g %12.6g %12.4g" % (kind.replace(".weight", ""), rel, kld, kld / rel if rel else 0))
PY
done
