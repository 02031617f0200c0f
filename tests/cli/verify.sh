#!/bin/sh
# qforge-verify: perplexity and KL-divergence modes on the bundled model,
# usage errors, exit codes of --max-kld / --min-same-top.
. "$(dirname "$0")/lib.sh"
V="$QF_BIN/qforge-verify"
HF="$FIX/stories260K"
Q4="$FIX/gguf/stories260K-Q4_K_M.gguf"
F16="$FIX/gguf/stories260K-f16.gguf"
TOK="$FIX/verify/stories260K-ref-tokens.json"

run "$V" --help
expect_rc "--help exits 0" 0
expect_out "--help prints usage on stdout" '^Usage: qforge-verify'
run "$QF_BIN/qforge" verify --version
expect_out "qforge verify dispatches" '^qforge-verify '

run "$V" --tokens "$TOK"
expect_rc "no -m: usage error" 2
expect_err "no -m is named" "missing -m MODEL"
run "$V" -m "$HF"
expect_rc "no text: usage error" 2
run "$V" -m "$HF" -f x --tokens "$TOK"
expect_rc "-f and --tokens: usage error" 2
run "$V" -m "$HF" --tokens "$TOK" --max-kld 0.1
expect_rc "--max-kld without --ref: usage error" 2
run "$V" -m "$HF" --tokens "$TOK" -c 1
expect_rc "-c 1: usage error" 2
run "$V" -m "$HF" --tokens "$TOK" --min-same-top 101
expect_rc "--min-same-top over 100: usage error" 2
run "$V" -m "$HF" --tokens "$TOK" --numerics f64
expect_rc "--numerics f64: usage error" 2
run "$V" --frobnicate
expect_rc "unknown option: usage error" 2
expect_err "usage error points to --help" "Try 'qforge-verify --help'"

run "$V" -m "$TMP/none.gguf" --tokens "$TOK"
expect_rc "missing model: exit 1" 1
expect_err "missing model: one line naming the file" "^qforge-verify: .*none.gguf"
expect_err_lines "missing model: one line" 1
run "$V" -q -m "$HF" --tokens "$TOK" -c 128
expect_rc "too few tokens for -c: exit 1" 1
expect_err "too few tokens: says what is needed" "needs at least 256"
printf '[1, 2, 600]' >"$TMP/bad.json"
run "$V" -q -m "$HF" --tokens "$TMP/bad.json" -c 2
expect_rc "token id outside the vocabulary: exit 1" 1
expect_err "bad token id is named" "item 2 is not a token id"

# perplexity: 2 chunks of 64 from the 128 reference tokens
run "$V" -q -m "$HF" --tokens "$TOK" -c 64 -t 1
expect_rc "perplexity runs" 0
expect_out "chunk figures as llama-perplexity prints them" '^\[1\][0-9]+\.[0-9]{4},\[2\][0-9]+\.[0-9]{4},$'
expect_out "final estimate line" '^Final estimate: PPL = [0-9]+\.[0-9]{4} \+/- [0-9]+\.[0-9]{5}$'
cp "$TMP/out" "$TMP/ppl1"
run "$V" -q -m "$HF" --tokens "$TOK" -c 64 -t 3 -b 7
if cmp -s "$TMP/out" "$TMP/ppl1"; then ok "same figures for -t 3 -b 7"; else notok "same figures for -t 3 -b 7" "$(cat "$TMP/out")"; fi
run "$V" -q -m "$HF" --tokens "$TOK" -c 64 --chunks 1
expect_out "--chunks 1 scores one chunk" '^\[1\][0-9.]+,$'
run "$V" -q -m "$HF" --tokens "$TOK" -c 64 --json --numerics f32
expect_rc "--json runs" 0
expect_out "--json: mode" '"mode": "perplexity"'
expect_out "--json: 62 positions scored" '"scored": 62'
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ppl"]["value"] > 1' "$TMP/out" 2>/dev/null; then
    ok "--json parses"
else
    notok "--json parses" "$(head -c 300 "$TMP/out")"
fi

# text through the model's tokenizer
i=0
while [ $i -lt 12 ]; do
    echo "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends."
    i=$((i + 1))
done >"$TMP/story.txt"
run "$V" -q -m "$HF" -f "$TMP/story.txt" -c 64
expect_rc "-f TEXT: tokenized and scored" 0
expect_out "-f TEXT: final estimate" '^Final estimate: PPL = '

# KL divergence of the Q4_K_M file from the HF folder
run "$V" -q -m "$Q4" --ref "$HF" --tokens "$TOK" -c 64
expect_rc "kl-divergence runs" 0
expect_out "per-chunk table header" '^chunk +PPL +ln\(PPL\(Q\)/PPL\(base\)\) +KL Divergence'
expect_out "Mean PPL(Q) line" '^Mean PPL\(Q\) +: +[0-9.]+ ± +[0-9.]+$'
expect_out "Cor line" '^Cor\(ln\(PPL\(Q\)\), ln\(PPL\(base\)\)\): +[0-9.]+%$'
expect_out "Mean KLD line" '^Mean    KLD: +[0-9.]+ ± +[0-9.]+$'
expect_out "99.9% KLD line" '^99\.9%   KLD: +[0-9.]+$'
expect_out "RMS dp line" '^RMS Δp    : +[0-9.]+ ± [0-9.]+ %$'
expect_out "Same top p line" '^Same top p: +[0-9.]+ ± [0-9.]+ %$'
run "$V" -q -m "$Q4" --ref "$HF" --tokens "$TOK" -c 64 --max-kld 0
expect_rc "--max-kld 0 exceeded: exit 3" 3
expect_err "--max-kld: says so" "exceeds --max-kld 0"
run "$V" -q -m "$Q4" --ref "$HF" --tokens "$TOK" -c 64 --max-kld 5 --min-same-top 10 --json
expect_rc "within --max-kld 5 and --min-same-top 10: exit 0" 0
expect_out "--json: pass" '"pass": true'
run "$V" -q -m "$Q4" --ref "$HF" --tokens "$TOK" -c 64 --min-same-top 100
expect_rc "--min-same-top 100 not met: exit 3" 3
run "$V" -q -m "$HF" --ref "$HF" --tokens "$TOK" -c 64 --json --max-kld 1e-7
expect_rc "a model against itself: KLD under 1e-7" 0
expect_out "against itself: same top 1" '"value": 1,'
run "$V" -q -m "$F16" --ref "$HF" --tokens "$TOK" -c 64 --max-kld 0.001 --min-same-top 95
expect_rc "f16 is within 0.001 of F32" 0
