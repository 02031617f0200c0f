#!/bin/sh
# qforge-sum: manifests equal llama-gguf-hash's, --check, flipped bytes, threads.
. "$(dirname "$0")/lib.sh"
S="$QF_BIN/qforge-sum"

for f in stories260K-Q4_K_M stories260K-f16; do
    # llama-gguf-hash was run in the file's folder: same names, same lines
    (cd "$FIX/gguf" && "$S" -t 2 "$f.gguf") > "$TMP/$f.txt" 2>"$TMP/err"
    expect_same "sum $f equals llama-gguf-hash's manifest" "$TMP/$f.txt" "$FIX/gguf/$f.gguf.sha256.txt"
    (cd "$FIX/gguf" && "$S" -t 1 "$f.gguf") > "$TMP/$f.t1.txt"
    expect_same "sum $f: one thread gives the same manifest" "$TMP/$f.txt" "$TMP/$f.t1.txt"
    (cd "$FIX/gguf" && "$S" -t 7 "$f.gguf") > "$TMP/$f.t7.txt"
    expect_same "sum $f: seven threads give the same manifest" "$TMP/$f.txt" "$TMP/$f.t7.txt"
    run "$S" --check "$FIX/gguf/$f.gguf.sha256.txt"
    expect_rc "check $f against llama-gguf-hash (file found beside the manifest)" 0
    expect_out "check prints OK per tensor" ":blk\.0\.attn_q\.weight: OK$"
done

G="$FIX/gguf/stories260K-Q4_K_M.gguf"
M="$FIX/gguf/stories260K-Q4_K_M.gguf.sha256.txt"
# flip one byte inside blk.2.attn_v.weight (Q8_0): find its data range with --json
"$QF_BIN/qforge-inspect" --json "$G" > "$TMP/t.json"
off=$(awk '/"name": "blk.2.attn_v.weight"/ {f=1} f && /"file_offset"/ {gsub(/[^0-9]/,""); print; exit}' "$TMP/t.json")
cp "$G" "$TMP/copy.gguf"
printf '\377' | dd of="$TMP/copy.gguf" bs=1 seek=$((off + 5)) conv=notrunc 2>/dev/null
run "$S" --check "$M" "$TMP/copy.gguf"
expect_rc "flipped byte: exit 1" 1
expect_out "flipped byte: the right tensor is MISMATCH" "copy\.gguf:blk\.2\.attn_v\.weight: MISMATCH$"
expect_out "flipped byte: the all-data digest too" "copy\.gguf: MISMATCH \(all tensor data\)$"
n=$(grep -c MISMATCH "$TMP/out")
[ "$n" -eq 2 ] && ok "flipped byte: nothing else mismatches" || notok "flipped byte: mismatch count" "$n"
expect_err "flipped byte: summary on stderr" "2 of 48 entries do not match"
run "$S" -q --check "$M" "$TMP/copy.gguf"
n=$(wc -l < "$TMP/out")
[ "$n" -eq 2 ] && ok "-q prints only the mismatches" || notok "-q output" "$n lines"

# a byte in the metadata is not tensor data: still all OK
cp "$G" "$TMP/meta.gguf"
run "$S" --check "$M" "$TMP/meta.gguf"
expect_rc "unchanged copy checks OK" 0

# manifest naming a tensor the file lacks, and a file tensor the manifest lacks
grep -v 'output_norm' "$M" > "$TMP/short.txt"
run "$S" --check "$TMP/short.txt" "$G"
expect_rc "tensor not in manifest: exit 1" 1
expect_out "tensor not in manifest is named" "output_norm\.weight: NOT IN MANIFEST$"
sed 's/blk\.0\.attn_q\.weight/blk.0.attn_qq.weight/' "$M" > "$TMP/extra.txt"
run "$S" --check "$TMP/extra.txt" "$G"
expect_out "manifest tensor missing from the file is named" "attn_qq\.weight: MISSING$"

printf 'not a manifest\n' > "$TMP/bad.txt"
run "$S" --check "$TMP/bad.txt" "$G"
expect_rc "manifest without sha256 lines: exit 1" 1
expect_err "manifest error is one line naming it" "bad\.txt: no sha256 lines$"

# safetensors: one line per tensor (sorted names) plus the all-data line
run "$S" "$FIX/stories260K/model.safetensors"
expect_rc "sum safetensors exits 0" 0
n=$(wc -l < "$TMP/out")
[ "$n" -eq 48 ] && ok "safetensors: 47 tensor lines + 1" || notok "safetensors line count" "$n"
cp "$TMP/out" "$TMP/st.txt"
run "$S" --check "$TMP/st.txt"
expect_rc "safetensors manifest checks" 0

run "$S" --file-hash "$G"
expect_out "--file-hash prints a sha256sum line" "^$(sha256sum "$G" | cut -d' ' -f1)  "

run "$S" --json "$G"
expect_out "--json has per-tensor digests" '"sha256": "[0-9a-f]{64}"'

run "$S" -t 0 "$G"
expect_rc "-t 0 is a usage error" 2
run "$S" -t abc "$G"
expect_rc "-t abc is a usage error" 2
run "$S"
expect_rc "no FILE is a usage error" 2
run "$S" "$TMP/missing.gguf"
expect_rc "missing file exits 1" 1
expect_err_lines "missing file: one line" 1
