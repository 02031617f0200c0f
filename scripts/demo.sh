#!/bin/sh
# make demo: the main job on the model bundled in fixtures/.
# Lists the model, hashes it, checks the hashes, and shows that a changed byte
# is caught and named.
set -e
BUILD=${1:-build}
BIN="$BUILD/bin"
MODEL=fixtures/stories260K
GGUF=fixtures/gguf/stories260K-Q4_K_M.gguf
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "qforge inspect $MODEL   (a Hugging Face folder: config.json + safetensors)"
"$BIN/qforge" inspect "$MODEL" | sed -n '1,12p;/^Total/,$p'

step "qforge inspect $GGUF   (llama.cpp's Q4_K_M of the same model)"
"$BIN/qforge" inspect "$GGUF" | sed -n '1,4p;/^Total/,$p'

step "qforge sum $GGUF > manifest   (per-tensor SHA-256, llama-gguf-hash format)"
"$BIN/qforge" sum "$GGUF" > "$TMP/manifest.txt"
head -3 "$TMP/manifest.txt"; echo "..."; tail -1 "$TMP/manifest.txt"

step "qforge sum --check against llama.cpp's own manifest"
"$BIN/qforge" sum -q --check fixtures/gguf/stories260K-Q4_K_M.gguf.sha256.txt "$GGUF" && echo "all tensors match llama-gguf-hash"

step "one flipped byte in a copy is named"
cp "$GGUF" "$TMP/copy.gguf"
printf '\377' | dd of="$TMP/copy.gguf" bs=1 seek=200000 conv=notrunc 2>/dev/null
"$BIN/qforge" sum -q --check "$TMP/manifest.txt" "$TMP/copy.gguf" || echo "(exit status $?: mismatch reported)"
