#!/bin/sh
# qforge-export --format safetensors: a QFM (or a GGUF) back to a Hugging
# Face folder; converting that folder again gives the same tensors.
. "$(dirname "$0")/lib.sh"
G="$FIX/gguf"
F16="$G/stories260K-f16.gguf"

# tensor digests of a GGUF, without the file name
tensor_sums() { "$QF_BIN/qforge-sum" "$1" | awk '{ n = $3; if (sub(/^.*:/, "", n)) print $2, n; else print $2, "all" }'; }

"$QF_BIN/qforge-import" -q "$F16" "$TMP/m.qfm"
run "$QF_BIN/qforge-export" --format safetensors --dtype f32 "$TMP/m.qfm" "$TMP/hf"
expect_rc "QFM -> HF folder" 0
for f in config.json generation_config.json model.safetensors tokenizer.model; do
    [ -f "$TMP/hf/$f" ] && ok "folder has $f" || notok "folder has $f" "$(ls "$TMP/hf")"
done
run "$QF_BIN/qforge-convert" -q "$TMP/hf" --outtype f16 -o "$TMP/back.gguf"
expect_rc "the exported folder converts" 0
tensor_sums "$F16" >"$TMP/a"
tensor_sums "$TMP/back.gguf" >"$TMP/b"
[ "$(wc -l <"$TMP/a")" -gt 20 ] && expect_same "QFM -> HF -> GGUF: the same tensors as the GGUF the QFM stands for" \
    "$TMP/a" "$TMP/b" || notok "tensor list" "$(wc -l <"$TMP/a") lines"

# a quantized GGUF exports too (dequantized), in each dtype
for dt in f16 bf16 f32; do
    run "$QF_BIN/qforge-export" --format safetensors --dtype $dt "$G/stories260K-Q4_K_M.gguf" "$TMP/q-$dt"
    expect_rc "Q4_K_M GGUF -> HF folder ($dt)" 0
    run "$QF_BIN/qforge-inspect" "$TMP/q-$dt/model.safetensors"
    expect_out "exported tensors are $dt" "$(echo $dt | tr a-z A-Z)"
done

# existing folder refused; --force replaces
run "$QF_BIN/qforge-export" --format safetensors "$TMP/m.qfm" "$TMP/hf"
expect_rc "existing folder refused" 1
expect_err "names the folder" "hf"
expect_err_lines "one line" 1
run "$QF_BIN/qforge-export" --format safetensors --force "$TMP/m.qfm" "$TMP/hf"
expect_rc "--force replaces the folder" 0

# usage errors
run "$QF_BIN/qforge-export" --dtype f16 "$TMP/m.qfm" "$TMP/x.gguf"
expect_rc "--dtype without --format safetensors" 2
run "$QF_BIN/qforge-export" --format safetensors --dtype f8 "$TMP/m.qfm" "$TMP/y"
expect_rc "unknown dtype" 2
run "$QF_BIN/qforge-export" --format onnx "$TMP/m.qfm" "$TMP/y"
expect_rc "unknown format" 2
[ ! -e "$TMP/y" ] && [ ! -e "$TMP/x.gguf" ] && ok "usage errors write nothing" || notok "usage errors write nothing" "$(ls "$TMP")"

# a damaged QFM: the tensor is named, no folder appears
cp "$TMP/m.qfm" "$TMP/bad.qfm"
size=$(wc -c <"$TMP/bad.qfm")
printf 'Z' | dd of="$TMP/bad.qfm" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
run "$QF_BIN/qforge-export" --format safetensors "$TMP/bad.qfm" "$TMP/bad"
expect_rc "damaged QFM refused" 1
[ ! -e "$TMP/bad" ] && ok "nothing left for a damaged QFM" || notok "nothing left" "$(ls "$TMP/bad")"
