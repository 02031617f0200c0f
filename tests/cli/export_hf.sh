#!/bin/sh
# qf_export_hf through tests/util_export_hf: HF folder -> GGUF -> HF folder
# -> GGUF must give byte-identical tensors (names, order, types, shapes,
# data: qforge-sum's per-tensor and total digests) and the same metadata
# apart from general.* naming keys, for the fixture model and for
# generated models of every architecture convert supports (tied and untied
# output, qwen2 biases, qwen3 q/k norms, llama3 rope scaling, shards), in
# F32, F16 and BF16; then sharded output, a quantized source, existing
# output folders and refusals.
. "$(dirname "$0")/lib.sh"
C="$QF_BIN/qforge-convert"
S="$QF_BIN/qforge-sum"
I="$QF_BIN/qforge-inspect"
case $QF_BUILD in /*) B="$QF_BUILD" ;; *) B="$QF_ROOT/$QF_BUILD" ;; esac
GEN="$B/tests/util_genmodel"
X="$B/tests/util_export_hf"

tensors() { # qforge-sum lines without the file name: digest and tensor
    "$S" "$1" | awk '{ n = $3; sub(/^[^:]*:/, "", n); if ($3 !~ /:/) n = "(all)"; print $2, n }'
}
meta() { # metadata lines of qforge-inspect, general.* left out
    "$I" "$1" | sed -n '/^Metadata/,/^Tensors/p' | grep -v ' general\.' | awk '{ $1 = ""; print }'
}
# roundtrip NAME FOLDER OUTTYPE: convert, export, convert again, compare
roundtrip() {
    name=$1 src=$2 ot=$3
    "$C" -q --outtype "$ot" -o "$TMP/$name-a.gguf" "$src" 2>"$TMP/err" || { notok "$name: convert" "$(cat "$TMP/err")"; return; }
    run "$X" "$TMP/$name-a.gguf" "$TMP/$name-hf" "$ot"
    expect_rc "$name: export $ot" 0
    "$C" -q --outtype "$ot" -o "$TMP/$name-b.gguf" "$TMP/$name-hf" 2>"$TMP/err" || { notok "$name: reconvert" "$(cat "$TMP/err")"; return; }
    tensors "$TMP/$name-a.gguf" >"$TMP/ta"
    tensors "$TMP/$name-b.gguf" >"$TMP/tb"
    expect_same "$name: $ot round trip gives byte-identical tensors, same order" "$TMP/ta" "$TMP/tb"
    meta "$TMP/$name-a.gguf" >"$TMP/ma"
    meta "$TMP/$name-b.gguf" >"$TMP/mb"
    expect_same "$name: same metadata apart from general.*" "$TMP/ma" "$TMP/mb"
}
gen() { # gen NAME ARGS...: a small model folder with the fixture tokenizer
    d="$TMP/$1"
    shift
    "$GEN" "$d" --preset small "$@" >/dev/null 2>&1 || notok "generate $d" "$*"
    cp "$FIX/stories260K/tokenizer.model" "$d/"
}

roundtrip stories "$FIX/stories260K" f32
python3 - "$TMP/stories-hf/config.json" "$FIX/stories260K/config.json" >"$TMP/out" 2>&1 <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
keys = ["architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "vocab_size", "max_position_embeddings",
        "rms_norm_eps", "rope_theta", "hidden_act", "tie_word_embeddings", "bos_token_id",
        "eos_token_id", "torch_dtype"]
bad = [k for k in keys if a.get(k) != b.get(k)]
print("differ:", bad) if bad else print("same")
PY
expect_out "stories: config.json fields equal the original's" '^same$'
"$S" "$FIX/stories260K" | awk '{ n = $3; sub(/^[^:]*:/, "", n); print $2, n }' | sed '$d' >"$TMP/o"
"$S" "$TMP/stories-hf" | awk '{ n = $3; sub(/^[^:]*:/, "", n); print $2, n }' | sed '$d' >"$TMP/e"
expect_same "stories: exported safetensors = the original's tensors (names, bytes; q/k unpermuted)" "$TMP/o" "$TMP/e"

for a in llama mistral qwen2 qwen3; do
    gen "$a" --arch "$a" --dtype f32
    roundtrip "$a" "$TMP/$a" f32
    gen "$a-tied" --arch "$a" --dtype f32 --tie
    roundtrip "$a-tied" "$TMP/$a-tied" f32
done
grep -q '"tie_word_embeddings":[[:space:]]*true' "$TMP/qwen2-tied-hf/config.json" && ok "qwen2 tied: config says tied" \
    || notok "qwen2 tied: config" "$(cat "$TMP/qwen2-tied-hf/config.json")"
grep -q '"tie_word_embeddings":[[:space:]]*false' "$TMP/qwen3-hf/config.json" && ok "qwen3 untied: config says untied" \
    || notok "qwen3 untied: config" "$(cat "$TMP/qwen3-hf/config.json")"
"$S" "$TMP/qwen2-tied-hf" >"$TMP/out"
if grep -q 'lm_head' "$TMP/out"; then notok "tied: no lm_head" "found"; else ok "tied: no lm_head tensor"; fi
expect_out "qwen2: q bias exported" 'model\.layers\.0\.self_attn\.q_proj\.bias$'
"$S" "$TMP/qwen3-hf" >"$TMP/out"
expect_out "qwen3: q norm exported" 'model\.layers\.1\.self_attn\.q_norm\.weight$'
expect_out "untied: lm_head exported" ':lm_head\.weight$'

gen rev --tie-reverse --dtype f32
roundtrip rev "$TMP/rev" f32
gen rope3 --rope-llama3 --dtype f32
roundtrip rope3 "$TMP/rope3" f32
grep -q '"rope_type":[[:space:]]*"llama3"' "$TMP/rope3-hf/config.json" && ok "llama3 rope scaling rebuilt from rope_freqs" \
    || notok "llama3 rope scaling" "$(cat "$TMP/rope3-hf/config.json")"
gen sharded --shards 3 --dtype f32
roundtrip sharded "$TMP/sharded" f32

for a in llama qwen2 qwen3; do
    gen "$a-16" --arch "$a" --dtype f16
    roundtrip "$a-16" "$TMP/$a-16" f16
done
gen bf --dtype bf16 --arch qwen3 --tie
roundtrip bf "$TMP/bf" bf16

# sharded output: a cap below the model's size
run "$X" "$TMP/llama-a.gguf" "$TMP/shards" f32 --shard-size 200000
expect_rc "sharded export" 0
[ -f "$TMP/shards/model.safetensors.index.json" ] && ok "sharded: index written" || notok "sharded: index" "missing"
n=$(ls "$TMP/shards" | grep -Ec '^model-[0-9]{5}-of-[0-9]{5}\.safetensors$')
[ "$n" -gt 1 ] && ok "sharded: $n model-0000N-of-0000M files" || notok "sharded: files" "$(ls "$TMP/shards")"
[ ! -f "$TMP/shards/model.safetensors" ] && ok "sharded: no model.safetensors" || notok "sharded" "model.safetensors too"
tensors "$TMP/llama-hf" | sed '$d' | sort >"$TMP/a"
tensors "$TMP/shards" | sed '$d' | sort >"$TMP/b"
expect_same "sharded: same tensors as the single file" "$TMP/a" "$TMP/b"

# a quantized source: every tensor dequantized (values checked in test_export_hf)
run "$X" "$FIX/gguf/stories260K-Q4_K_M.gguf" "$TMP/q4" f32
expect_rc "Q4_K_M GGUF exports" 0
run "$C" -q --outtype f32 -o "$TMP/q4.gguf" "$TMP/q4"
expect_rc "exported Q4_K_M folder converts" 0

# existing output, force, nothing left behind
run "$X" "$TMP/llama-a.gguf" "$TMP/llama-hf" f32
expect_rc "existing folder refused" 1
expect_err "existing folder: message" 'llama-hf: exists \(use --force to overwrite\)'
touch "$TMP/llama-hf/marker"
run "$X" "$TMP/llama-a.gguf" "$TMP/llama-hf" f16 --force
expect_rc "--force replaces" 0
[ ! -e "$TMP/llama-hf/marker" ] && grep -q float16 "$TMP/llama-hf/config.json" && ok "--force: the old folder is gone" \
    || notok "--force" "old content kept"
run "$X" "$FIX/corrupt/gguf-bad-magic.gguf" "$TMP/bad" f32
expect_rc "unreadable input" 1
n=$(ls -A "$TMP" | grep -c '^\.')
[ "$n" -eq 0 ] && [ ! -e "$TMP/bad" ] && ok "no temporary folders left behind" || notok "temporary folders" "$(ls -A "$TMP" | grep '^\.')"
