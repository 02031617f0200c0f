#!/bin/sh
# The forward pass on every architecture and option qforge-convert reads,
# against an independent float64 reference (tests/cli/llama_ref.py, written
# from the transformers definitions: HF weights as stored, rotate_half RoPE):
# small generated models (hidden 64, 2 layers, GQA 4/2), sharpened so that
# attention is peaked (a wrong RoPE pairing then moves logits by ~5%), read
# as the HF folder and as qforge-convert's f32 GGUF. Limit: 1e-4 of the
# largest logit (we measure ~1e-6: float32 against float64).
. "$(dirname "$0")/lib.sh"
BUILD_DIR="$QF_ROOT/${QF_BUILD:-build}"
GEN="$BUILD_DIR/tests/util_genmodel"
LOGITS="$BUILD_DIR/tests/util_logits"
REF="$QF_ROOT/tests/cli/llama_ref.py"

if ! command -v python3 >/dev/null || [ ! -x "$GEN" ] || [ ! -x "$LOGITS" ]; then
    notok "verify_arch prerequisites" "needs python3, $GEN and $LOGITS"
    exit 0
fi
echo "[1, 17, 300, 42, 7, 511, 99, 3, 250, 64, 128, 5, 77, 400]" >"$TMP/tokens.json"

check() { # name, genmodel options...
    name=$1
    shift
    m="$TMP/$name"
    if ! "$GEN" "$m" --hidden 64 --layers 2 --ffn 96 --heads 4 --kv-heads 2 --vocab 512 \
        --dtype f32 --force "$@" >/dev/null 2>"$TMP/err"; then
        notok "$name: generate" "$(cat "$TMP/err")"
        return
    fi
    cp "$FIX/stories260K/tokenizer.model" "$m/"
    # llama3 scaling only touches wavelengths beyond original/low_freq_factor
    # positions: bring that down to 16 so that 14 tokens feel it
    sed -i 's/"original_max_position_embeddings": 8192/"original_max_position_embeddings": 16/' "$m/config.json"
    python3 "$REF" --sharpen "$m" && python3 "$REF" "$m" "$TMP/tokens.json" "$TMP/$name.f32" ||
        { notok "$name: reference" "llama_ref.py failed"; return; }
    "$QF_BIN/qforge-convert" -q --outtype f32 -o "$TMP/$name.gguf" "$m" 2>"$TMP/err" ||
        { notok "$name: convert" "$(cat "$TMP/err")"; return; }
    for src in "$m" "$TMP/$name.gguf"; do
        kind=folder
        case "$src" in *.gguf) kind=gguf ;; esac
        out=$("$LOGITS" "$src" "$TMP/tokens.json" "$TMP/$name.f32" -t 2 2>&1)
        rel=$(echo "$out" | sed -n 's/.* rel=\([^ ]*\) .*/\1/p')
        if [ -n "$rel" ] && awk -v r="$rel" 'BEGIN { exit !(r <= 1e-4) }'; then
            ok "$name ($kind): logits within 1e-4 of the reference ($out)"
        else
            notok "$name ($kind): logits within 1e-4 of the reference" "$out"
        fi
    done
}

check llama --arch llama
check llama-tied --arch llama --tie
check llama3-rope --arch llama --rope-llama3
check mistral --arch mistral
check qwen2 --arch qwen2
check qwen2-tied --arch qwen2 --tie
check qwen3 --arch qwen3
