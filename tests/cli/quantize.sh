#!/bin/sh
# qforge-quantize: the bundled model quantizes to exactly llama-quantize's
# file in one pass from its HF folder; usage errors, refusals, dry runs,
# fallbacks, thread-count independence, NaN rows, imatrix keys.
. "$(dirname "$0")/lib.sh"
Q="$QF_BIN/qforge-quantize"
M="$FIX/stories260K"
F16="$FIX/gguf/stories260K-f16.gguf"
GOLD="$FIX/gguf/stories260K-Q4_K_M.gguf"
case $QF_BUILD in /*) GEN="$QF_BUILD/tests/util_genmodel" ;; *) GEN="$QF_ROOT/$QF_BUILD/tests/util_genmodel" ;; esac

# --- usage
run "$Q" --help
expect_rc "quantize --help exits 0" 0
expect_out "quantize --help" '^Usage: qforge-quantize \[options\] IN OUT TYPE \[NTHREADS\]'
expect_out "--help lists the mixes with their ftype" '^  15  or  Q4_K_M  :'
run "$Q"
expect_rc "no arguments: exit 2" 2
expect_err_lines "no arguments: one line and a hint" 2
expect_err "usage error hints at --help" "Try 'qforge-quantize --help'"
run "$Q" "$M" Q4_K_M
expect_rc "IN TYPE without OUT: exit 2" 2
expect_err "missing OUT is named" 'missing OUT'
run "$Q" "$M" "$TMP/x.gguf" Q4_K_XL
expect_rc "unknown TYPE: exit 2" 2
expect_err "unknown TYPE is named" "unknown TYPE 'Q4_K_XL'"
run "$Q" --tensor-type 'attn_(q=Q8_0' "$M" "$TMP/x.gguf" Q4_0
expect_rc "bad --tensor-type regex: exit 2" 2
expect_err "bad regex is named" 'tensor-type "attn_\(q=Q8_0": bad regex'
run "$Q" --output-tensor-type IQ2_XXS "$M" "$TMP/x.gguf" Q4_0
expect_rc "--output-tensor-type qforge cannot write: exit 2" 2
run "$Q" -t 0 "$M" "$TMP/x.gguf" Q4_0
expect_rc "-t 0: exit 2" 2
run "$Q" --frobnicate "$M" "$TMP/x.gguf" Q4_0
expect_rc "unknown option: exit 2" 2
[ ! -e "$TMP/x.gguf" ] && ok "usage errors write nothing" || notok "usage errors write nothing" "x.gguf exists"

# --- the bundled model, one pass from the HF folder == llama-quantize from the F32 GGUF
run "$Q" -q "$M" "$TMP/s.gguf" Q4_K_M 2
expect_rc "HF folder -> Q4_K_M" 0
expect_same "HF folder -> Q4_K_M is byte-identical to llama-quantize's (metadata included)" "$TMP/s.gguf" "$GOLD"
run "$Q" "$M" "$TMP/s-t1.gguf" Q4_K_M -t 1
run "$Q" -t 3 "$M" "$TMP/s-t3.gguf" q4_k_m
expect_same "1 thread gives the same bytes" "$TMP/s-t1.gguf" "$GOLD"
expect_same "3 threads, type in lower case: the same bytes" "$TMP/s-t3.gguf" "$GOLD"
run "$Q" -q "$M" "$TMP/s-15.gguf" 15 4
expect_same "TYPE as the ftype number, NTHREADS 4: the same bytes" "$TMP/s-15.gguf" "$GOLD"
run "$Q" -q "$M" "$TMP/s-alias.gguf" Q4_K
expect_same "Q4_K is Q4_K_M" "$TMP/s-alias.gguf" "$GOLD"
run "$QF_BIN/qforge" quantize -q "$M" "$TMP/s-verb.gguf" Q4_K_M
expect_same "qforge quantize dispatches" "$TMP/s-verb.gguf" "$GOLD"

# --- summary on stderr
run "$Q" "$M" "$TMP/s-sum.gguf" Q4_K_M
expect_err "summary: tensors per type" '^  tensors +47: F32 x 11, F16 x 5, Q5_0 x 28, Q8_0 x 3$'
expect_err "summary: size and bits per weight" '^  size +.* -> .* \(32\.00 -> [0-9.]+ bits per weight\)$'
expect_err "summary: fallbacks" '^  fallbacks +35 '
expect_err "summary: time and throughput" '^  time +[0-9.]+ s, .*/s of input'
expect_err "fallbacks are announced" 'warning: 35 tensors fell back to another type'
[ ! -s "$TMP/out" ] && ok "nothing on stdout without --json" || notok "stdout" "$(head -c 200 "$TMP/out")"
run "$Q" -v "$M" "$TMP/s-v.gguf" Q4_K_M
expect_err "-v lists each fallback" 'fallback: tensor "blk\.0\.ffn_down\.weight": 172 columns, Q4_K -> F16'

# --- never overwrite without --force
cp "$GOLD" "$TMP/exists.gguf"
run "$Q" "$M" "$TMP/exists.gguf" Q8_0
expect_rc "existing OUT without --force: exit 1" 1
expect_err "existing OUT: says --force" "exists.gguf: already exists \(use --force to overwrite\)"
expect_same "existing OUT untouched" "$TMP/exists.gguf" "$GOLD"
run "$Q" -q --force "$M" "$TMP/exists.gguf" Q6_K
expect_rc "--force replaces" 0
cmp -s "$TMP/exists.gguf" "$GOLD" && notok "--force replaced the file" "unchanged" || ok "--force replaced the file"

# --- --checksum: the manifest llama-gguf-hash would print
run "$Q" -q --checksum "$M" "$TMP/c.gguf" Q4_K_M
expect_rc "--checksum exits 0" 0
sed 's/stories260K-Q4_K_M\.gguf/c.gguf/' "$FIX/gguf/stories260K-Q4_K_M.gguf.sha256.txt" > "$TMP/want.sha256"
expect_same "--checksum manifest equals llama-gguf-hash's" "$TMP/c.gguf.sha256" "$TMP/want.sha256"
run "$QF_BIN/qforge-sum" -q --check "$TMP/c.gguf.sha256"
expect_rc "--checksum manifest verifies" 0
run "$Q" --checksum "$M" "$TMP/c2.gguf" Q4_K_M
cp "$TMP/c.gguf.sha256" "$TMP/c3.gguf.sha256"
run "$Q" --checksum "$M" "$TMP/c3.gguf" Q4_K_M
expect_rc "existing OUT.sha256 without --force: exit 1" 1
[ ! -e "$TMP/c3.gguf" ] && ok "existing manifest: no model written" || notok "existing manifest" "c3.gguf written"

# --- from the F16 GGUF: the types of the F32 route, F16 tensors copied as they are
run "$Q" -q "$F16" "$TMP/h.gguf" Q4_K_M
expect_rc "F16 GGUF -> Q4_K_M" 0
"$QF_BIN/qforge-inspect" "$TMP/h.gguf" | awk '/^ +[0-9]+  [a-z]/ { print $2, $3 }' > "$TMP/h.types"
"$QF_BIN/qforge-inspect" "$GOLD" | awk '/^ +[0-9]+  [a-z]/ { print $2, $3 }' > "$TMP/g.types"
expect_same "from F16: every tensor has the type llama-quantize gives from F32" "$TMP/h.types" "$TMP/g.types"
grep ':blk.0.ffn_down.weight$' "$F16.sha256.txt" | awk '{ print $2 }' > "$TMP/a"
"$QF_BIN/qforge-sum" "$TMP/h.gguf" | grep ':blk.0.ffn_down.weight$' | awk '{ print $2 }' > "$TMP/b"
expect_same "from F16: the F16 ffn_down (fallback) is copied byte for byte" "$TMP/a" "$TMP/b"

# --- requantizing
run "$Q" "$GOLD" "$TMP/rq.gguf" Q4_0
expect_rc "quantized input: exit 1" 1
expect_err "quantized input: refused, names tensor and option" 'tensor "blk\.0\.attn_k\.weight" is already quantized \(Q5_0\).*--allow-requantize'
[ ! -e "$TMP/rq.gguf" ] && ok "refused requantize writes nothing" || notok "refused requantize" "output exists"
run "$Q" --allow-requantize "$GOLD" "$TMP/rq.gguf" Q4_0
expect_rc "--allow-requantize: exit 0" 0
expect_err "--allow-requantize warns" 'warning: [0-9]+ tensors are already quantized: dequantized and quantized again'
run "$QF_BIN/qforge-inspect" "$TMP/rq.gguf"
expect_out "requantized to Q4_0" 'blk\.0\.attn_q\.weight +Q4_0 '
expect_out "requantized F16 ffn_down stays F16" 'blk\.0\.ffn_down\.weight +F16 '

# --- where llama.cpp stops, qforge falls back to F16 and says so
run "$Q" "$M" "$TMP/q8.gguf" Q8_0
expect_rc "Q8_0 on 172 columns: exit 0" 0
expect_err "Q8_0 on 172 columns: warning names the tensor" 'warning: tensor "blk\.0\.ffn_down\.weight": 172 columns are not a multiple of 32 \(Q8_0\): written as F16, where llama\.cpp b4747 stops'
expect_err "Q8_0 fallbacks in the summary" '^  fallbacks +5 .* 5 of them where llama\.cpp stops'
run "$QF_BIN/qforge-inspect" "$TMP/q8.gguf"
expect_out "Q8_0: ffn_down written F16" 'blk\.4\.ffn_down\.weight +F16 '
expect_out "Q8_0: the rest Q8_0" 'blk\.4\.ffn_up\.weight +Q8_0 '

# --- dry run: nothing written
run "$Q" --dry-run "$M" "$TMP/dry.gguf" Q4_K_M
expect_rc "--dry-run exits 0" 0
[ ! -e "$TMP/dry.gguf" ] && ok "--dry-run writes nothing" || notok "--dry-run" "output written"
expect_out "--dry-run lists tensors with type, bytes and bpw" '^ +8  blk\.0\.ffn_down\.weight +172 x 64 +F32 +F16 +22016 +16\.00  .*fallback from Q4_K'
expect_out "--dry-run shows the mix rule" 'blk\.2\.attn_v\.weight +64 x 32 +F32 +Q8_0 .*mix rule; fallback from Q6_K'
expect_out "--dry-run totals: file size" "file 281,664 bytes"
expect_out "--dry-run totals: bpw" 'tensor data 1,040,128 -> [0-9,]+ bytes \(32\.00 -> [0-9.]+ bpw\)'
run "$Q" --dry-run "$M" Q8_0
expect_rc "--dry-run IN TYPE (no OUT)" 0
expect_out "--dry-run shows where llama.cpp stops" 'ffn_down\.weight .*F16 .*fallback from Q8_0 \(172 columns\), where llama\.cpp stops'
run "$Q" --dry-run --json "$M" Q4_K_M
expect_out "--dry-run --json: the mix" '"type": "Q4_K_M"'
expect_out "--dry-run --json: file size" '"file_size": 281664'
expect_out "--dry-run --json: fallbacks flagged" '"fallback": true'
run "$Q" --dry-run --pure --tensor-type 'attn_q=Q8_0' --output-tensor-type f16 "$M" Q5_1
expect_out "--tensor-type is applied" 'blk\.0\.attn_q\.weight +64 x 64 +F32 +Q8_0 .*--tensor-type /attn_q/'
expect_out "--pure: the base type" 'blk\.0\.attn_k\.weight +64 x 32 +F32 +Q5_1 .*--pure'
run "$Q" --dry-run --leave-output-tensor --token-embedding-type q4_0 "$M" Q4_K_M
expect_out "--token-embedding-type" 'token_embd\.weight +64 x 512 +F32 +Q4_0 '

# --- NaN in the input: an error naming the tensor and the row, nothing written
cp "$F16" "$TMP/nan.gguf"
data=$("$QF_BIN/qforge-inspect" "$F16" | sed -n 's/.*tensor data at offset \([0-9,]*\).*/\1/p' | tr -d ,)
off=$("$QF_BIN/qforge-inspect" "$F16" | awk '$2 == "blk.0.attn_q.weight" { print $(NF-1) }')
# row 5, column 3 of the 64-wide F16 rows: 0x7e00 (NaN)
printf '\000\176' | dd of="$TMP/nan.gguf" bs=1 seek=$((data + off + (5 * 64 + 3) * 2)) conv=notrunc 2>/dev/null
run "$Q" -q -t 2 "$TMP/nan.gguf" "$TMP/nan-q.gguf" Q4_K_M
expect_rc "NaN input: exit 1" 1
expect_err "NaN input: names tensor, row and column" 'tensor "blk\.0\.attn_q\.weight": row 5: NaN at column 3'
expect_err_lines "NaN input: one line" 1
[ ! -e "$TMP/nan-q.gguf" ] && ok "NaN input: no output" || notok "NaN input" "output left behind"
run "$Q" -t 1 "$TMP/nan.gguf" "$TMP/nan-q.gguf" Q8_0
expect_err "NaN input, 1 thread, F16 fallback path too: the same message" 'tensor "blk\.0\.attn_q\.weight": row 5: NaN at column 3'

# --- imatrix: keys recorded as llama-quantize records them
"$GEN" "$TMP/g" --hidden 256 --ffn 768 --layers 2 --heads 4 --kv-heads 2 --vocab 512 --dtype f32 >/dev/null 2>&1
cp "$M/tokenizer.model" "$TMP/g/"
cp "$FIX/quant/imatrix/tiny-llama-256.imatrix" "$TMP/im.dat"
(cd "$TMP" && "$Q" --imatrix im.dat g g-im.gguf Q4_K_M 2) >"$TMP/out" 2>"$TMP/err"
RC=$?
expect_rc "--imatrix: exit 0" 0
expect_err "--imatrix: summary" '^  imatrix +14 entries, 100 chunks: weights for 14 tensors'
run "$QF_BIN/qforge-inspect" "$TMP/g-im.gguf"
expect_out "quantize.imatrix.file as given" 'quantize\.imatrix\.file +STRING +im\.dat$'
expect_out "quantize.imatrix.dataset" 'quantize\.imatrix\.dataset +STRING +\.\./\.\./models/tiny-llama-256/train\.txt$'
expect_out "quantize.imatrix.entries_count" 'quantize\.imatrix\.entries_count +INT32 +14$'
expect_out "quantize.imatrix.chunks_count, the last key" 'quantize\.imatrix\.chunks_count +INT32 +100$'
run "$Q" --imatrix "$TMP/im.dat" "$M" "$TMP/s-im.gguf" Q4_K_M
expect_rc "imatrix of another shape: exit 1" 1
expect_err "imatrix of another shape: names entry and sizes" 'entry "blk\.0\.attn_k\.weight" has 256 values, the tensor needs 64'
run "$Q" --imatrix "$TMP/nope.dat" "$M" "$TMP/s-im.gguf" Q4_K_M
expect_rc "missing imatrix: exit 1" 1

ls -a "$TMP" | grep -q '^\..*gguf\.' && notok "no temp files left" "$(ls -a "$TMP")" || ok "no temp files left"
