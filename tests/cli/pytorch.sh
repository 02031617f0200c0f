#!/bin/sh
# PyTorch checkpoints through the tools: inspect lists tensors and every
# GLOBAL, sum hashes them, convert takes a .bin folder; every hostile file
# in fixtures/malicious is refused by each tool with one line, exit 1, and
# nothing is executed (no /tmp/qforge-pwned-* appears).
. "$(dirname "$0")/lib.sh"
P="$FIX/pytorch"
rm -f /tmp/qforge-pwned-*

run "$QF_BIN/qforge-inspect" "$P/tied.pt"
expect_rc "inspect a .pt" 0
expect_out "inspect names the GLOBALs" '^  torch\._utils\._rebuild_tensor_v2 x[0-9]+$'
expect_out "inspect shows shared storage" 'same data as '
run "$QF_BIN/qforge-inspect" --json "$P/views.pt"
expect_out "inspect --json marks strided copies" '"strided_copy": true'
run "$QF_BIN/qforge-inspect" "$P/nested.pt"
expect_out "inspect says where a nested state dict is" 'state dict is nested under "'

run "$QF_BIN/qforge-sum" "$P/llama/pytorch_model.bin"
expect_rc "sum a .bin" 0
cp "$TMP/out" "$TMP/pt.sha256"
run "$QF_BIN/qforge-sum" --check "$TMP/pt.sha256"
expect_rc "its manifest checks" 0

if [ -f "$P/llama/config.json" ]; then
    mkdir -p "$TMP/llama"
    cp "$P/llama/"* "$TMP/llama/"
    # a 16-token byte-level BPE tokenizer fits the model's 32-entry vocab
    cp "$FIX/tokenizers/bpe-tiny/tokenizer.json" "$FIX/tokenizers/bpe-tiny/tokenizer_config.json" "$TMP/llama/"
    run "$QF_BIN/qforge-convert" -q --outtype f32 -o "$TMP/llama.gguf" "$TMP/llama"
    expect_rc "convert a pytorch_model.bin folder" 0
    # f32 -> f32, unpermuted tensors keep their bytes: v_proj equals its source
    src=$("$QF_BIN/qforge-sum" "$TMP/llama" | awk '$3 ~ /:model\.layers\.0\.self_attn\.v_proj\.weight$/ { print $2 }')
    dst=$("$QF_BIN/qforge-sum" "$TMP/llama.gguf" | awk '$3 ~ /:blk\.0\.attn_v\.weight$/ { print $2 }')
    [ -n "$src" ] && [ "$src" = "$dst" ] && ok "converted .bin tensor keeps its bytes" || notok "converted .bin tensor" "$src vs $dst"
fi

n=0
while IFS="$(printf '\t')" read -r file want; do
    [ -n "$file" ] || continue
    case "$file" in \#*) continue ;; esac
    n=$((n + 1))
    for tool in qforge-inspect qforge-sum; do
        run "$QF_BIN/$tool" "$FIX/malicious/$file"
        lines=$(wc -l < "$TMP/err")
        if [ "$RC" -eq 1 ] && [ "$lines" -eq 1 ] && grep -qF -- "$want" "$TMP/err"; then
            ok "$tool refuses $file"
        else
            notok "$tool refuses $file" "exit $RC, $lines lines: $(head -c 200 "$TMP/err")"
        fi
    done
done < "$FIX/malicious/expected.tsv"
[ "$n" -ge 15 ] && ok "$n hostile checkpoints" || notok "hostile checkpoint count" "$n"
ls /tmp/qforge-pwned-* >/dev/null 2>&1 && notok "nothing executed" "$(ls /tmp/qforge-pwned-*)" || ok "nothing executed"
