#!/bin/sh
# QFM from the command line: qforge-import / qforge-export give the GGUF back
# byte for byte; qforge-inspect, qforge-sum, qforge-quantize, qforge-verify
# and qforge-tokenize read a QFM as they read its GGUF; qforge-convert
# --format qfm; damaged tensors are named by sum --check and export, which
# then leave nothing behind.
. "$(dirname "$0")/lib.sh"
G="$FIX/gguf"
D="$FIX/corrupt"

for f in "$G"/stories260K-f16.gguf "$G"/stories260K-Q4_K_M.gguf; do
    b=$(basename "$f" .gguf)
    for codec in zstd raw; do
        run "$QF_BIN/qforge-import" -q --codec $codec -t 2 "$f" "$TMP/$b.qfm"
        expect_rc "import $codec $b" 0
        run "$QF_BIN/qforge-export" "$TMP/$b.qfm" "$TMP/$b.gguf"
        expect_rc "export $codec $b" 0
        expect_same "$codec round trip $b byte for byte" "$f" "$TMP/$b.gguf"
        rm -f "$TMP/$b.gguf"
        [ $codec = zstd ] && cp "$TMP/$b.qfm" "$TMP/$b-zstd.qfm"
        rm -f "$TMP/$b.qfm"
    done
done
Q="$TMP/stories260K-f16-zstd.qfm"

# smaller than the GGUF; the table shows the codecs
[ "$(wc -c <"$Q")" -lt "$(wc -c <"$G/stories260K-f16.gguf")" ] && ok "zstd QFM smaller than its F16 GGUF" \
    || notok "zstd QFM size" "$(wc -c <"$Q")"

# the same tensor bytes whatever the thread count and level range
"$QF_BIN/qforge-import" -q -t 1 --level 5 "$G/stories260K-f16.gguf" "$TMP/t1.qfm"
"$QF_BIN/qforge-import" -q -t 2 --level 5 "$G/stories260K-f16.gguf" "$TMP/t2.qfm"
"$QF_BIN/qforge-inspect" "$TMP/t1.qfm" | grep -E '^ +[0-9]+  ' >"$TMP/tab1"
"$QF_BIN/qforge-inspect" "$TMP/t2.qfm" | grep -E '^ +[0-9]+  ' >"$TMP/tab2"
expect_same "tensor table independent of threads" "$TMP/tab1" "$TMP/tab2"

# refuse to overwrite; usage errors
run "$QF_BIN/qforge-import" "$G/stories260K-f16.gguf" "$TMP/t1.qfm"
expect_rc "import refuses to overwrite" 1
expect_err "overwrite message" "already exists \(use --force"
run "$QF_BIN/qforge-import" --codec lz4 "$G/stories260K-f16.gguf" "$TMP/x.qfm"
expect_rc "import --codec lz4 is a usage error" 2
run "$QF_BIN/qforge-import" --level 99 "$G/stories260K-f16.gguf" "$TMP/x.qfm"
expect_rc "import --level 99 is a usage error" 2
run "$QF_BIN/qforge-import" "$FIX/corrupt/gguf-bad-magic.gguf" "$TMP/x.qfm"
expect_rc "import of a bad GGUF fails" 1
expect_err_lines "import of a bad GGUF: one line" 1
[ ! -e "$TMP/x.qfm" ] && ok "nothing left after a failed import" || notok "failed import" "output left"

# inspect
run "$QF_BIN/qforge-inspect" "$Q"
expect_rc "inspect qfm" 0
expect_out "inspect format line" "^Format: +QFM 1 \(stands for a GGUF 3, alignment 32\)"
expect_out "inspect codec column" "token_embd.weight +F16 +64 x 512 +zstd"
expect_out "inspect provenance" "\"sha256\":[[:space:]]+\"51c1240d1da1a207bbd5d2f365c5e89bba5033da0cc56468a973d1626697ae6c\""
# the metadata listed as for the GGUF: same columns, same values
"$QF_BIN/qforge-inspect" "$Q" | sed -n '/^Metadata/,/^Tensors/p' | grep -E '^ +[0-9]+  ' >"$TMP/md_q"
"$QF_BIN/qforge-inspect" "$G/stories260K-f16.gguf" | sed -n '/^Metadata/,/^Tensors/p' | grep -E '^ +[0-9]+  ' >"$TMP/md_g"
[ "$(wc -l <"$TMP/md_g")" -eq 25 ] && ok "GGUF listing: 25 metadata rows" || notok "GGUF metadata rows" "$(wc -l <"$TMP/md_g")"
expect_same "inspect qfm metadata rows = inspect gguf" "$TMP/md_g" "$TMP/md_q"
grep -qE '^ +11  llama\.rope\.freq_base +FLOAT32 +10000$' "$TMP/md_q" && ok "inspect qfm FLOAT32 as a number" \
    || notok "inspect qfm FLOAT32" "$(grep freq_base "$TMP/md_q")"
run "$QF_BIN/qforge-inspect" --json "$Q"
expect_rc "inspect --json" 0
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["format"]=="qfm" and len(d["tensors"])==47 and d["tensors"][0]["ratio"]>1 and d["metadata"][0]["key"]=="general.architecture"' "$TMP/out"; then
    ok "inspect --json parses, 47 tensors"
else
    notok "inspect --json" "$(head -c 200 "$TMP/out")"
fi

# sum: the manifest equals the GGUF's (but for the label); --check
"$QF_BIN/qforge-sum" "$Q" | sed 's/  [^ ]*\.qfm/  X/' >"$TMP/m1"
"$QF_BIN/qforge-sum" "$G/stories260K-f16.gguf" | sed 's/  [^ ]*\.gguf/  X/' >"$TMP/m2"
expect_same "qfm manifest equals the gguf manifest" "$TMP/m1" "$TMP/m2"
run "$QF_BIN/qforge-sum" --check "$Q"
expect_rc "sum --check qfm" 0
expect_out "sum --check per tensor" ":blk.0.attn_q.weight: OK$"
expect_out "sum --check digest" ": OK \(file digest\)$"

# damaged tensors: named, exit 1, one line, nothing written
while IFS="$(printf '\t')" read -r file want; do
    case "$file" in \#*|"") continue ;; esac
    run "$QF_BIN/qforge-sum" --check "$D/$file"
    expect_rc "sum --check $file" 1
    expect_out "sum --check $file: MISMATCH line" ": MISMATCH$"
    expect_err "sum --check $file: $want" "^qforge-sum: $D/$file: .*$(printf '%s' "$want" | sed 's/[][\.*^$()]/\\&/g')"
    expect_err_lines "sum --check $file: one line" 1
    run "$QF_BIN/qforge-export" "$D/$file" "$TMP/bad.gguf"
    expect_rc "export $file" 1
    expect_err_lines "export $file: one line" 1
    expect_err "export $file: names the tensor" "$(printf '%s' "$want" | sed 's/[][\.*^$()]/\\&/g')"
    [ ! -e "$TMP/bad.gguf" ] && ok "export $file: nothing left" || notok "export $file" "output left"
done <"$D/qfm-data.expect"

# other tools read a QFM as its GGUF
run "$QF_BIN/qforge-quantize" -q "$Q" "$TMP/a.gguf" Q4_K_M
expect_rc "quantize from qfm" 0
"$QF_BIN/qforge-quantize" -q "$G/stories260K-f16.gguf" "$TMP/b.gguf" Q4_K_M
expect_same "quantize from qfm = from gguf" "$TMP/a.gguf" "$TMP/b.gguf"
run "$QF_BIN/qforge-tokenize" -m "$Q" -p "Once upon a time" --ids
cp "$TMP/out" "$TMP/tok1"
run "$QF_BIN/qforge-tokenize" -m "$G/stories260K-f16.gguf" -p "Once upon a time" --ids
expect_same "tokenize from qfm = from gguf" "$TMP/tok1" "$TMP/out"
run "$QF_BIN/qforge-verify" -m "$Q" -f "$FIX/verify/eval.txt" -c 64 --chunks 2
grep 'PPL' "$TMP/out" "$TMP/err" | sed 's/.*PPL/PPL/' >"$TMP/p1"
run "$QF_BIN/qforge-verify" -m "$G/stories260K-f16.gguf" -f "$FIX/verify/eval.txt" -c 64 --chunks 2
grep 'PPL' "$TMP/out" "$TMP/err" | sed 's/.*PPL/PPL/' >"$TMP/p2"
[ -s "$TMP/p1" ] && expect_same "verify from qfm = from gguf" "$TMP/p1" "$TMP/p2" || notok "verify from qfm" "no PPL"

# convert straight to QFM: export gives the GGUF convert writes
run "$QF_BIN/qforge-convert" -q "$FIX/stories260K" -o "$TMP/c.qfm" --format qfm -t 2
expect_rc "convert --format qfm" 0
"$QF_BIN/qforge-convert" -q "$FIX/stories260K" -o "$TMP/c.gguf"
"$QF_BIN/qforge-export" "$TMP/c.qfm" "$TMP/c2.gguf"
expect_same "convert --format qfm, exported = convert to gguf" "$TMP/c.gguf" "$TMP/c2.gguf"
run "$QF_BIN/qforge-inspect" "$TMP/c.qfm"
expect_out "convert provenance: the folder's files" "\"file\":[[:space:]]+\"model.safetensors\""
expect_out "convert provenance: the command line" "\"command_line\":[[:space:]]+\\[.*qforge-convert"
run "$QF_BIN/qforge-convert" "$FIX/stories260K" -o "$TMP/d.qfm" --format qfm --checksum
expect_rc "convert --format qfm --checksum is a usage error" 2

# dispatcher
run "$QF_BIN/qforge" --help
expect_out "qforge lists import" "^  import "
expect_out "qforge lists export" "^  export "
