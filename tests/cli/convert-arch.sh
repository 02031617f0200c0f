#!/bin/sh
# qforge-convert on generated folders: each architecture of the table, tied
# embeddings both ways, llama3 rope scaling, shards, a Hugging Face cache
# snapshot. Source and output tensors are compared by SHA-256 (qforge-sum
# hashes both a folder's and a GGUF's tensors).
. "$(dirname "$0")/lib.sh"
C="$QF_BIN/qforge-convert"
S="$QF_BIN/qforge-sum"
I="$QF_BIN/qforge-inspect"
GEN="$QF_ROOT/$QF_BUILD/tests/util_genmodel"

gen() { # gen NAME ARGS...: a small model folder with the fixture tokenizer
    d="$TMP/$1"
    shift
    "$GEN" "$d" --preset small --dtype f32 "$@" >/dev/null 2>&1 || notok "generate $d" "$*"
    cp "$FIX/stories260K/tokenizer.model" "$d/"
}
digest() { # digest FILE_OR_FOLDER TENSOR
    "$S" "$1" | awk -v t="$2" '{ n = $3; sub(/.*:/, "", n); if (n == t) print $2 }'
}

gen llama
run "$C" -q --outtype f32 -o "$TMP/llama.gguf" "$TMP/llama"
expect_rc "llama converts" 0
[ "$(digest "$TMP/llama" model.layers.0.self_attn.v_proj.weight)" = "$(digest "$TMP/llama.gguf" blk.0.attn_v.weight)" ] \
    && ok "llama: v rows unchanged" || notok "llama: v rows" "differ"
[ "$(digest "$TMP/llama" model.layers.0.self_attn.q_proj.weight)" != "$(digest "$TMP/llama.gguf" blk.0.attn_q.weight)" ] \
    && ok "llama: q rows permuted for interleaved RoPE" || notok "llama: q rows" "not permuted"

gen qwen2 --arch qwen2 --tie
run "$C" -q --outtype f16 -o "$TMP/qwen2.gguf" "$TMP/qwen2"
expect_rc "qwen2 converts" 0
run "$I" "$TMP/qwen2.gguf"
expect_out "qwen2: architecture" 'general\.architecture +STRING +qwen2$'
expect_out "qwen2: q bias kept F32" 'blk\.0\.attn_q\.bias +F32 +256 '
expect_out "qwen2: v bias" 'blk\.1\.attn_v\.bias +F32 +128 '
if grep -q ' output\.weight ' "$TMP/out"; then notok "qwen2 tied: no output tensor" "found one"; else ok "qwen2 tied: no output tensor"; fi
if grep -q 'vocab_size\|rope\.dimension_count' "$TMP/out"; then notok "qwen2: no llama-only keys" "found"; else ok "qwen2: no llama-only keys (as llama.cpp)"; fi
run "$C" -q --outtype f32 -o "$TMP/qwen2-f32.gguf" "$TMP/qwen2"
[ "$(digest "$TMP/qwen2" model.layers.0.self_attn.q_proj.weight)" = "$(digest "$TMP/qwen2-f32.gguf" blk.0.attn_q.weight)" ] \
    && ok "qwen2: q rows not permuted (NEOX RoPE)" || notok "qwen2: q rows" "changed"

gen qwen3 --arch qwen3
run "$C" -q -o "$TMP/qwen3.gguf" "$TMP/qwen3"
run "$I" "$TMP/qwen3.gguf"
expect_out "qwen3: architecture" 'general\.architecture +STRING +qwen3$'
expect_out "qwen3: head_dim as key_length" 'qwen3\.attention\.key_length +UINT32 +64$'
expect_out "qwen3: q norm F32" 'blk\.0\.attn_q_norm\.weight +F32 +64 '
expect_out "qwen3: k norm F32" 'blk\.1\.attn_k_norm\.weight +F32 +64 '

gen mistral --arch mistral
run "$C" -q -o "$TMP/mistral.gguf" "$TMP/mistral"
run "$I" "$TMP/mistral.gguf"
expect_out "mistral converts as llama" 'general\.architecture +STRING +llama$'

gen tied --tie
run "$C" -q --outtype f32 -o "$TMP/tied.gguf" "$TMP/tied"
run "$I" "$TMP/tied.gguf"
if grep -q ' output\.weight ' "$TMP/out"; then notok "tied: no output tensor" "found"; else ok "tied: no output tensor"; fi

gen rev --tie-reverse
run "$C" -q --outtype f32 -o "$TMP/rev.gguf" "$TMP/rev"
expect_rc "only lm_head.weight, aliased in __metadata__: converts" 0
[ "$(digest "$TMP/rev" lm_head.weight)" = "$(digest "$TMP/rev.gguf" token_embd.weight)" ] \
    && ok "reverse tie: token_embd is lm_head's data" || notok "reverse tie" "token_embd differs"
run "$I" "$TMP/rev.gguf"
if grep -q ' output\.weight ' "$TMP/out"; then notok "reverse tie: no output tensor" "found"; else ok "reverse tie: no separate output tensor"; fi

gen rope3 --rope-llama3
run "$C" -q -o "$TMP/rope3.gguf" "$TMP/rope3"
run "$I" "$TMP/rope3.gguf"
expect_out "llama3 rope scaling: rope_freqs tensor" '^ +1  rope_freqs\.weight +F32 +32 '

gen sharded --shards 3
gen single
run "$C" -q --outtype f32 -o "$TMP/sharded.gguf" "$TMP/sharded"
run "$C" -q --outtype f32 -o "$TMP/single.gguf" "$TMP/single"
"$S" "$TMP/sharded.gguf" | sed '$d' | awk '{ print $2 }' | sort > "$TMP/a"
"$S" "$TMP/single.gguf" | sed '$d' | awk '{ print $2 }' | sort > "$TMP/b"
expect_same "sharded and single-file folders give the same tensors" "$TMP/a" "$TMP/b"

# a Hugging Face cache snapshot: files are symlinks into blobs/
hub="$TMP/hub/models--acme--Tiny-Chat-7B/"
mkdir -p "$hub/blobs" "$hub/snapshots/0123abc"
for f in config.json model.safetensors tokenizer.model; do
    h=$(sha256sum "$TMP/single/$f" | cut -c1-16)
    cp "$TMP/single/$f" "$hub/blobs/$h"
    ln -s "../../blobs/$h" "$hub/snapshots/0123abc/$f"
done
run "$C" -q --outtype f32 -o "$TMP/hub.gguf" "$hub/snapshots/0123abc"
expect_rc "HF cache snapshot converts" 0
"$S" "$TMP/hub.gguf" | sed '$d' | awk '{ print $2 }' | sort > "$TMP/c"
expect_same "snapshot gives the same tensors as the plain folder" "$TMP/c" "$TMP/b"
run "$I" "$TMP/hub.gguf"
expect_out "snapshot: name from the repository, not the hash" 'general\.name +STRING +Tiny Chat 7B$'
expect_out "snapshot: organization" 'general\.organization +STRING +Acme$'
