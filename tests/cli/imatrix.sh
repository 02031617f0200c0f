#!/bin/sh
# qforge-imatrix on the bundled model: the file it writes (entries, sizes,
# trailer) read back by qforge-quantize --imatrix, both formats, thread-count
# independence, --force, usage and runtime errors.
. "$(dirname "$0")/lib.sh"
I="$QF_BIN/qforge-imatrix"
Q="$QF_BIN/qforge-quantize"
F16="$FIX/gguf/stories260K-f16.gguf"
HF="$FIX/stories260K"
EVAL="$FIX/verify/eval.txt"

run "$I" --help
expect_rc "--help exits 0" 0
expect_out "--help prints usage on stdout" '^Usage: qforge-imatrix -m MODEL -f TEXT -o OUT'
run "$QF_BIN/qforge" imatrix --version
expect_out "qforge imatrix dispatches" '^qforge-imatrix '
run "$QF_BIN/qforge" --help
expect_out "qforge --help lists imatrix" '^  imatrix '

# usage errors: exit 2, one line and the --help hint
run "$I" -f "$EVAL" -o "$TMP/x.dat"
expect_rc "no -m: usage error" 2
expect_err "no -m is named" "missing -m MODEL"
run "$I" -m "$F16" -o "$TMP/x.dat"
expect_rc "no -f: usage error" 2
run "$I" -m "$F16" -f "$EVAL"
expect_rc "no -o: usage error" 2
expect_err "no -o is named" "missing -o OUT"
run "$I" -m "$F16" -f "$EVAL" -o "$TMP/x.dat" --format npy
expect_rc "--format npy: usage error" 2
expect_err "--format names the choices" "expected dat or gguf"
run "$I" -m "$F16" -f "$EVAL" -o "$TMP/x.dat" -c 8
expect_rc "-c 8: usage error" 2
expect_err_lines "-c 8: message and hint, two lines" 2
run "$I" -m "$F16" -f "$EVAL" -o "$TMP/x.dat" --chunks 0
expect_rc "--chunks 0: usage error" 2
run "$I" -m "$F16" -f "$EVAL" -o "$TMP/x.dat" --numerics f64
expect_rc "--numerics f64: usage error" 2
run "$I" --frobnicate
expect_rc "unknown option: usage error" 2
expect_err "usage error points to --help" "Try 'qforge-imatrix --help'"
run "$I" -m "$F16" -f "$EVAL" -o "$TMP/x.dat" extra
expect_rc "stray argument: usage error" 2

# runtime errors: exit 1, one line naming the file, nothing written
run "$I" -m "$TMP/none.gguf" -f "$EVAL" -o "$TMP/x.dat"
expect_rc "missing model: exit 1" 1
expect_err "missing model: named" "^qforge-imatrix: .*none.gguf"
expect_err_lines "missing model: one line" 1
run "$I" -q -m "$F16" -f "$TMP/none.txt" -o "$TMP/x.dat"
expect_rc "missing text: exit 1" 1
expect_err "missing text: named" "^qforge-imatrix: .*none.txt"
run "$I" -q -m "$F16" -f "$EVAL" -o "$TMP/x.dat" -c 16384
expect_rc "text too short for -c: exit 1" 1
expect_err "text too short: says what is needed" "needs at least 32768"
expect_err_lines "text too short: one line" 1
cp "$EVAL" "$TMP/eval.txt"
run "$I" -q -m "$F16" -f "$TMP/eval.txt" -c 128 -o "$TMP/eval.txt" --force
expect_rc "-o naming the text: exit 1, even with --force" 1
expect_err "-o naming an input: says so" "eval\.txt: is an input"
expect_same "the text is left alone" "$EVAL" "$TMP/eval.txt"
if [ -e "$TMP/x.dat" ]; then notok "failed runs write nothing" "$TMP/x.dat exists"; else ok "failed runs write nothing"; fi

# a run: 4 chunks of 128 tokens; 5 blocks x 7 matrices
run "$I" -m "$F16" -f "$EVAL" -c 128 --chunks 4 -t 2 -o "$TMP/a.dat"
expect_rc "imatrix runs" 0
expect_err "summary: entries, chunks, tokens, PPL" 'wrote .*a\.dat \(dat\): 35 entries from 4 chunks \(512 tokens\) in [0-9.]+ s; PPL = [0-9]+\.[0-9]{4} \+/- [0-9.]+$'
# the file's layout: n_entries 35; per entry name, ncall 4, 64 or 172 values;
# trailer: last_chunk 4 and the dataset name as given
python3 - "$TMP/a.dat" "$EVAL" >"$TMP/layout" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
o = 0
def i32():
    global o
    v = struct.unpack_from("<i", d, o)[0]
    o += 4
    return v
n = i32()
names = []
for _ in range(n):
    ln = i32(); name = d[o:o + ln].decode(); o += ln
    ncall, nval = i32(), i32()
    vals = struct.unpack_from("<%df" % nval, d, o); o += 4 * nval
    want = 172 if name.endswith("ffn_down.weight") else 64
    assert ncall == 4 and nval == want and all(v > 0 for v in vals), (name, ncall, nval)
    names.append(name)
last, ln = i32(), i32()
ds = d[o:o + ln].decode(); o += ln
kinds = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
want = ["blk.%d.%s.weight" % (b, k) for b in range(5) for k in kinds]
print("entries", n, "order", names == want, "last", last, "dataset", ds == sys.argv[2], "left", len(d) - o)
EOF
expect_same_text() { if [ "$(cat "$2")" = "$3" ]; then ok "$1"; else notok "$1" "$(cat "$2")"; fi; }
expect_same_text "file: 35 entries in forward order, ncall 4, trailer 4 and the dataset, nothing after" \
    "$TMP/layout" "entries 35 order True last 4 dataset True left 0"

run "$Q" --imatrix "$TMP/a.dat" "$F16" "$TMP/q.gguf" Q4_K_M
expect_rc "qforge-quantize --imatrix reads it" 0
expect_err "qforge-quantize: 35 entries, 4 chunks" '^  imatrix +35 entries, 4 chunks: weights for [0-9]+ tensors'

# the same bytes for any thread count
run "$I" -q -m "$F16" -f "$EVAL" -c 128 --chunks 4 -t 1 -o "$TMP/t1.dat"
expect_same "same file with -t 1" "$TMP/a.dat" "$TMP/t1.dat"
run "$I" -q -m "$F16" -f "$EVAL" -c 128 --chunks 4 -t 3 -o "$TMP/t3.dat"
expect_same "same file with -t 3" "$TMP/a.dat" "$TMP/t3.dat"

# an existing output is kept without --force, replaced with it
cp "$TMP/a.dat" "$TMP/keep.dat"
run "$I" -q -m "$F16" -f "$EVAL" -c 128 --chunks 2 -o "$TMP/a.dat"
expect_rc "existing output without --force: exit 1" 1
expect_err "existing output: says so" "a\.dat: already exists \(use --force to overwrite\)"
expect_err_lines "existing output: one line" 1
expect_same "existing output left alone" "$TMP/a.dat" "$TMP/keep.dat"
run "$I" -q -m "$F16" -f "$EVAL" -c 128 --chunks 2 -o "$TMP/a.dat" --force
expect_rc "--force replaces it" 0
if cmp -s "$TMP/a.dat" "$TMP/keep.dat"; then notok "--force wrote the new run" "file unchanged"; else ok "--force wrote the new run"; fi

# the GGUF format: sums and counts, read back as the same weights
run "$I" -q -m "$F16" -f "$EVAL" -c 128 --chunks 4 --format gguf -o "$TMP/a.imatrix.gguf"
expect_rc "--format gguf runs" 0
run "$QF_BIN/qforge-inspect" "$TMP/a.imatrix.gguf"
expect_out "gguf: general.type imatrix" 'general\.type +STRING +imatrix$'
expect_out "gguf: imatrix.chunk_count 4" 'imatrix\.chunk_count +UINT32 +4$'
expect_out "gguf: imatrix.chunk_size 128" 'imatrix\.chunk_size +UINT32 +128$'
expect_out "gguf: a sums tensor" 'blk\.0\.ffn_down\.weight\.in_sum2 +F32 +172 '
run "$Q" --imatrix "$TMP/a.imatrix.gguf" "$F16" "$TMP/qg.gguf" Q4_K_M
expect_err "gguf read by qforge-quantize: 35 entries, 4 chunks" '^  imatrix +35 entries, 4 chunks: weights for [0-9]+ tensors'

# from the Hugging Face folder; --process-output on a tied model adds nothing
run "$I" -m "$HF" -f "$EVAL" -c 64 --chunks 3 --process-output -o "$TMP/hf.dat"
expect_rc "from the HF folder" 0
expect_err "tied model: --process-output warns" "no output.weight"
expect_err "from the HF folder: 35 entries from 3 chunks" '35 entries from 3 chunks'
