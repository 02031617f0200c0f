#!/bin/sh
# qforge-convert: the bundled model converts to exactly llama.cpp's file;
# bad folders give one clear line, exit 1, and leave nothing behind.
. "$(dirname "$0")/lib.sh"
C="$QF_BIN/qforge-convert"
M="$FIX/stories260K"
GEN="$QF_ROOT/$QF_BUILD/tests/util_genmodel"

run "$C" --help
expect_rc "convert --help exits 0" 0
expect_out "convert --help" '^Usage: qforge-convert MODEL -o OUT.gguf'
run "$C" "$M"
expect_rc "no -o is a usage error" 2
run "$C" --outtype q4_0 -o "$TMP/x.gguf" "$M"
expect_rc "bad --outtype is a usage error" 2
expect_err "bad --outtype names the choices" "expected f32, f16, bf16, q8_0 or auto"

run "$C" -q --outtype f16 -o "$TMP/s-f16.gguf" "$M"
expect_rc "convert stories260K to f16" 0
expect_same "f16 output is byte-identical to llama.cpp's converter" "$TMP/s-f16.gguf" "$FIX/gguf/stories260K-f16.gguf"
run "$C" -q -t 1 --outtype f16 -o "$TMP/s-f16-t1.gguf" "$M"
expect_same "one thread gives the same bytes" "$TMP/s-f16-t1.gguf" "$TMP/s-f16.gguf"

run "$C" --outtype f16 -o "$TMP/s-f16.gguf" "$M"
expect_rc "existing output without --force: exit 1" 1
expect_err "existing output: says --force" "already exists \(use --force to overwrite\)"
expect_same "existing output untouched" "$TMP/s-f16.gguf" "$FIX/gguf/stories260K-f16.gguf"
run "$C" -q --force --outtype f32 -o "$TMP/s-f16.gguf" "$M"
expect_rc "--force replaces" 0

run "$C" -q --checksum --outtype f16 -o "$TMP/c.gguf" "$M"
expect_rc "--checksum exits 0" 0
sed 's/stories260K-f16\.gguf/c.gguf/' "$FIX/gguf/stories260K-f16.gguf.sha256.txt" > "$TMP/want.sha256"
expect_same "--checksum manifest equals llama-gguf-hash's" "$TMP/c.gguf.sha256" "$TMP/want.sha256"
run "$QF_BIN/qforge-sum" -q --check "$TMP/c.gguf.sha256"
expect_rc "--checksum manifest verifies with qforge-sum" 0

run "$C" --dry-run "$M"
expect_rc "--dry-run exits 0" 0
expect_out "--dry-run lists tensors with sources" 'blk\.0\.attn_q\.weight +F16 +64 x 64 +8192  model\.layers\.0\.self_attn\.q_proj\.weight'
expect_out "--dry-run totals" '47 tensors, 260,032 parameters'
run "$C" --dry-run --outtype q8_0 "$M"
expect_out "q8_0 falls back to F16 on 172 columns, visibly" 'blk\.0\.ffn_down\.weight +F16 .*fallback'
run "$C" --dry-run --json "$M"
expect_out "--dry-run --json" '"outtype": "f16"'

# bad folders
mk() { rm -rf "$TMP/$1"; mkdir -p "$TMP/$1"; cp "$M"/* "$TMP/$1/"; }
mk nokey
sed 's/"num_attention_heads": 8,//' "$M/config.json" > "$TMP/nokey/config.json"
run "$C" -o "$TMP/nokey.gguf" "$TMP/nokey"
expect_rc "missing config key: exit 1" 1
expect_err "missing config key: one line naming file and key" "^qforge-convert: $TMP/nokey/config.json: missing \"num_attention_heads\"$"
[ ! -e "$TMP/nokey.gguf" ] && ok "missing config key: no output" || notok "missing config key" "output left behind"

mk arch
sed 's/LlamaForCausalLM/GPTNeoXForCausalLM/' "$M/config.json" > "$TMP/arch/config.json"
run "$C" -o "$TMP/arch.gguf" "$TMP/arch"
expect_err "unknown architecture lists the supported ones" 'architecture "GPTNeoXForCausalLM" is not supported \(supported: LlamaForCausalLM, '

mk shape
sed 's/"hidden_size": 64/"hidden_size": 128/' "$M/config.json" > "$TMP/shape/config.json"
run "$C" -o "$TMP/shape.gguf" "$TMP/shape"
expect_rc "shape mismatch: exit 1" 1
expect_err "shape mismatch names the tensor" 'tensor "model.embed_tokens.weight": shape \[512, 64\] does not match config.json \(\[512, 128\]\)'

mk heads
sed 's/"num_key_value_heads": 4/"num_key_value_heads": 3/' "$M/config.json" > "$TMP/heads/config.json"
run "$C" -o "$TMP/heads.gguf" "$TMP/heads"
expect_err "contradictory head counts" 'is not a multiple of "num_key_value_heads"'

mk notok
rm "$TMP/notok/tokenizer.model"
run "$C" -o "$TMP/notok.gguf" "$TMP/notok"
expect_rc "no tokenizer: exit 1" 1
expect_err "no tokenizer: said" "no tokenizer"

mk noweights
rm "$TMP/noweights/model.safetensors"
run "$C" -o "$TMP/noweights.gguf" "$TMP/noweights"
expect_rc "no weights: exit 1" 1
expect_err_lines "no weights: one line" 1

# generated folders: a tensor missing, a tensor left over
"$GEN" "$TMP/g-drop" --preset small --drop model.layers.1.mlp.up_proj.weight >/dev/null 2>&1
cp "$M/tokenizer.model" "$TMP/g-drop/"
run "$C" -o "$TMP/g-drop.gguf" "$TMP/g-drop"
expect_err "missing tensor is named" 'missing tensor "model.layers.1.mlp.up_proj.weight" \(blk\.1\.ffn_up\.weight\)'
"$GEN" "$TMP/g-extra" --preset small --extra model.layers.0.mystery.weight >/dev/null 2>&1
cp "$M/tokenizer.model" "$TMP/g-extra/"
run "$C" -o "$TMP/g-extra.gguf" "$TMP/g-extra"
expect_err "left-over tensors are listed" 'has no place for: "model.layers.0.mystery.weight"'
"$GEN" "$TMP/g-ok" --preset small >/dev/null 2>&1
cp "$M/tokenizer.model" "$TMP/g-ok/"
run "$C" -q --outtype auto -o "$TMP/g-ok.gguf" "$TMP/g-ok"
expect_rc "generated BF16 folder converts" 0
run "$QF_BIN/qforge-inspect" "$TMP/g-ok.gguf"
expect_out "auto keeps BF16" 'blk\.0\.attn_q\.weight +BF16'
ls -a "$TMP" | grep -q '^\.g-.*gguf\.' && notok "no temp files left" "$(ls -a "$TMP")" || ok "no temp files left"
