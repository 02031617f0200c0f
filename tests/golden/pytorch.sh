#!/bin/sh
# PyTorch checkpoints against the same weights as safetensors and against
# llama.cpp's conversion of the .bin:
#   - tiny-llama-256-pt/pytorch_model.bin holds the same 21 tensors as
#     tiny-llama-256/model.safetensors, byte for byte (names, dtypes, shapes,
#     SHA-256 of the bytes);
#   - in state-dict order, which is the order llama.cpp's converter wrote the
#     .bin's tensors in (golden manifest tiny-llama-256-pt-f32.gguf), and the
#     tensors it wrote unchanged (all but q/k, which it permutes) have our
#     bytes' SHA-256;
#   - the folder opens as the file does; every storage's CRC-32 holds; the
#     pickle references only OrderedDict, _rebuild_tensor_v2, FloatStorage;
#   - with Debian's python3-torch installed, torch.load agrees too (skipped
#     otherwise).
: "${QF_GOLDEN:?}" "${QF_BUILD:?}"
MODELS="${QF_MODELS:-$QF_GOLDEN/../models}"
DUMP="$QF_BUILD/tests/util_pt_dump"
PT="$MODELS/tiny-llama-256-pt"
ST="$MODELS/tiny-llama-256"
MAN="$QF_GOLDEN/tiny-llama-256/manifests/tiny-llama-256-pt-f32.gguf.sha256.txt"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [ ! -f "$PT/pytorch_model.bin" ] || [ ! -f "$ST/model.safetensors" ] || [ ! -x "$DUMP" ]; then
    echo "not ok pytorch: $PT/pytorch_model.bin, $ST/model.safetensors or $DUMP missing"
    exit 0
fi

if "$DUMP" --verify --globals "$PT/pytorch_model.bin" >"$TMP/all" 2>"$TMP/err"; then
    echo "ok pytorch_model.bin opens, storages' CRC-32 hold"
else
    echo "not ok pytorch_model.bin: $(cat "$TMP/err")"
    exit 0
fi
grep -v '^global' "$TMP/all" >"$TMP/pt"
grep '^global' "$TMP/all" | cut -f2 | sort >"$TMP/globals"
printf '%s\n' collections.OrderedDict torch.FloatStorage torch._utils._rebuild_tensor_v2 | sort >"$TMP/want"
if cmp -s "$TMP/globals" "$TMP/want"; then
    echo "ok pytorch_model.bin references only $(tr '\n' ' ' <"$TMP/want")"
else
    echo "not ok pytorch_model.bin GLOBALs: $(tr '\n' ' ' <"$TMP/globals")"
fi

"$DUMP" --safetensors "$ST/model.safetensors" >"$TMP/st" 2>"$TMP/err" || echo "not ok model.safetensors: $(cat "$TMP/err")"
sort "$TMP/pt" >"$TMP/pt.sorted"
sort "$TMP/st" >"$TMP/st.sorted"
n=$(wc -l <"$TMP/pt")
if [ "$n" -eq 21 ] && cmp -s "$TMP/pt.sorted" "$TMP/st.sorted"; then
    echo "ok pytorch_model.bin: the same $n tensors as model.safetensors, byte for byte"
else
    echo "not ok pytorch_model.bin vs model.safetensors ($n tensors): $(diff "$TMP/pt.sorted" "$TMP/st.sorted" | head -4 | tr '\n' ' ')"
fi

if "$DUMP" "$PT" >"$TMP/dir" 2>"$TMP/err" && cmp -s "$TMP/dir" "$TMP/pt"; then
    echo "ok the tiny-llama-256-pt folder opens as its pytorch_model.bin"
else
    echo "not ok the tiny-llama-256-pt folder: $(cat "$TMP/err")"
fi

# Order and bytes against llama.cpp's manifest of its .bin conversion.
if [ -f "$MAN" ]; then
    awk -F'\t' '
    function gguf(n,   m) {
        if (n == "model.embed_tokens.weight") return "token_embd.weight"
        if (n == "model.norm.weight") return "output_norm.weight"
        if (n == "lm_head.weight") return "output.weight"
        if (match(n, /^model\.layers\.[0-9]+\./)) {
            m = substr(n, 14, RLENGTH - 14); n = substr(n, RLENGTH + 1)
            sub(/^self_attn\.q_proj/, "attn_q", n); sub(/^self_attn\.k_proj/, "attn_k", n)
            sub(/^self_attn\.v_proj/, "attn_v", n); sub(/^self_attn\.o_proj/, "attn_output", n)
            sub(/^mlp\.gate_proj/, "ffn_gate", n); sub(/^mlp\.up_proj/, "ffn_up", n)
            sub(/^mlp\.down_proj/, "ffn_down", n); sub(/^input_layernorm/, "attn_norm", n)
            sub(/^post_attention_layernorm/, "ffn_norm", n)
            return "blk." m "." n
        }
        return "?" n
    }
    { print gguf($1) "\t" $4 }' "$TMP/pt" >"$TMP/ours"
    grep ':' "$MAN" | awk '{ n = $3; sub(/^[^:]*:/, "", n); print n "\t" $2 }' >"$TMP/theirs"
    cut -f1 "$TMP/theirs" >"$TMP/theirs.names"
    if cut -f1 "$TMP/ours" | cmp -s - "$TMP/theirs.names"; then
        echo "ok tensor order is the state-dict order llama.cpp's converter wrote"
    else
        echo "not ok tensor order: $(cut -f1 "$TMP/ours" | diff - "$TMP/theirs.names" | head -4 | tr '\n' ' ')"
    fi
    grep -v 'attn_q\.\|attn_k\.' "$TMP/ours" >"$TMP/ours.same"
    grep -v 'attn_q\.\|attn_k\.' "$TMP/theirs" >"$TMP/theirs.same"
    k=$(wc -l <"$TMP/ours.same")
    if [ "$k" -gt 10 ] && cmp -s "$TMP/ours.same" "$TMP/theirs.same"; then
        echo "ok $k unpermuted tensors have the SHA-256 llama.cpp's manifest gives"
    else
        echo "not ok unpermuted tensors' SHA-256: $(diff "$TMP/ours.same" "$TMP/theirs.same" | head -4 | tr '\n' ' ')"
    fi
else
    echo "not ok $MAN missing"
fi

# torch.load, when Debian's torch is installed.
PY=""
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import torch' >/dev/null 2>&1; then PY=$p; break; fi
done
if [ -n "$PY" ]; then
    "$PY" - "$PT/pytorch_model.bin" >"$TMP/torch" 2>"$TMP/err" <<'PY'
import hashlib, sys, torch
names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
sd = torch.load(sys.argv[1], map_location="cpu")
for k, t in sd.items():
    b = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    print("%s\t%s\t[%s]\t%s" % (k, names[t.dtype], ", ".join(str(d) for d in t.shape),
                                hashlib.sha256(b).hexdigest()))
PY
    if cmp -s "$TMP/torch" "$TMP/pt"; then
        echo "ok torch.load ($("$PY" -c 'import torch; print(torch.__version__)')) gives the same tensors in the same order"
    else
        echo "not ok torch.load disagrees: $(diff "$TMP/torch" "$TMP/pt" | head -4 | tr '\n' ' ') $(head -c 200 "$TMP/err")"
    fi
else
    echo "ok torch.load comparison # skip: no python3 with torch"
fi
