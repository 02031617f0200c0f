#!/bin/sh
# qf_export_hf (tests/util_export_hf) on llama.cpp's own F32 conversion of
# tiny-llama-256 and stories260K: the exported folder must hold the
# original safetensors' tensors (../shared/models) under the same names,
# with the same bytes (every tensor there is F32, so dequantizing is the
# identity and the q/k permutation must be undone exactly), and config.json
# must give the original's values for the fields a GGUF keeps.
: "${QF_GOLDEN:?}" "${QF_BIN:?}" "${QF_BUILD:?}" "${QF_ROOT:?}"
MODELS="${QF_MODELS:-$QF_GOLDEN/../models}"
case $QF_BUILD in /*) X="$QF_BUILD/tests/util_export_hf" ;; *) X="$QF_ROOT/$QF_BUILD/tests/util_export_hf" ;; esac
S="$QF_BIN/qforge-sum"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

sums() { # digest and tensor name, file names left out, sorted by name
    "$S" "$1" | sed '$d' | awk '{ n = $3; sub(/^.*:/, "", n); print n, $2 }' | sort
}

for model in tiny-llama-256 stories260K; do
    g="$QF_GOLDEN/$model/$model-f32.gguf"
    [ -f "$g" ] || { echo "not ok $model: $g missing"; continue; }
    if ! "$X" "$g" "$TMP/$model" f32 2>"$TMP/err"; then
        echo "not ok $model: export: $(cat "$TMP/err")"
        continue
    fi
    echo "ok $model: llama.cpp's F32 GGUF exports"
    sums "$MODELS/$model" >"$TMP/want"
    sums "$TMP/$model" >"$TMP/got"
    if cmp -s "$TMP/want" "$TMP/got"; then
        echo "ok $model: same tensor names and bytes as the original safetensors ($(wc -l <"$TMP/want") tensors)"
    else
        echo "not ok $model: tensors differ: $(diff "$TMP/want" "$TMP/got" | head -4 | tr '\n' ' ')"
    fi
    python3 - "$TMP/$model/config.json" "$MODELS/$model/config.json" <<'PY'
import json, sys
got, want = (json.load(open(p)) for p in sys.argv[1:])
name = sys.argv[2].split("/")[-2]
keys = ["architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "vocab_size", "max_position_embeddings",
        "rms_norm_eps", "rope_theta", "hidden_act", "tie_word_embeddings", "bos_token_id",
        "eos_token_id", "torch_dtype"]
for k in keys:
    if got.get(k) == want.get(k):
        print("ok %s: config.json %s = %r" % (name, k, want.get(k)))
    else:
        print("not ok %s: config.json %s: got %r, want %r" % (name, k, got.get(k), want.get(k)))
PY
done
