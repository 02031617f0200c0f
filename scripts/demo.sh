#!/bin/sh
# make demo: the main job on the model bundled in fixtures/ (stories260K, a
# real trained LLaMA in Hugging Face layout): convert it, check the result
# against llama.cpp's own converter byte for byte, show the checksums that
# let anyone verify the file later, and quantize it to Q4_K_M in one pass,
# byte for byte as llama-quantize does; keep both as QFM files (compressed,
# per-tensor SHA-256, provenance) with the drift measurement recorded inside.
set -e
BUILD=${1:-build}
BIN="$BUILD/bin"
MODEL=fixtures/stories260K
OUT=${DEMO_OUT:-$(mktemp -d)}
trap '[ -n "$DEMO_OUT" ] || rm -rf "$OUT"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "qforge inspect $MODEL"
"$BIN/qforge" inspect "$MODEL" | sed -n '1,4p;/^Total/,$p'

step "qforge convert $MODEL -o stories260K-f16.gguf --checksum"
"$BIN/qforge" convert --outtype f16 --checksum -o "$OUT/stories260K-f16.gguf" "$MODEL"
"$BIN/qforge" inspect "$OUT/stories260K-f16.gguf" | sed -n '1,4p;/^Total/,$p'

step "same bytes as llama.cpp's convert_hf_to_gguf.py (fixtures/gguf/stories260K-f16.gguf)?"
if cmp -s "$OUT/stories260K-f16.gguf" fixtures/gguf/stories260K-f16.gguf; then
    echo "yes: byte-identical, $(wc -c < "$OUT/stories260K-f16.gguf") bytes"
else
    echo "NO: the files differ" >&2
    exit 1
fi

step "qforge sum --check stories260K-f16.gguf.sha256   (per-tensor SHA-256, llama-gguf-hash format)"
"$BIN/qforge" sum -q --check "$OUT/stories260K-f16.gguf.sha256" && echo "all $(wc -l < "$OUT/stories260K-f16.gguf.sha256") digests match"
"$BIN/qforge" sum -q --check fixtures/gguf/stories260K-f16.gguf.sha256.txt "$OUT/stories260K-f16.gguf" &&
    echo "and they match llama.cpp's llama-gguf-hash manifest"

step "a flipped byte is caught and named"
cp "$OUT/stories260K-f16.gguf" "$OUT/copy.gguf"
printf '\377' | dd of="$OUT/copy.gguf" bs=1 seek=300000 conv=notrunc 2>/dev/null
"$BIN/qforge" sum -q --check "$OUT/stories260K-f16.gguf.sha256" "$OUT/copy.gguf" || echo "(exit status $?: mismatch reported)"

step "qforge quantize $MODEL stories260K-Q4_K_M.gguf Q4_K_M   (one pass from the HF folder)"
"$BIN/qforge" quantize "$MODEL" "$OUT/stories260K-Q4_K_M.gguf" Q4_K_M

step "same bytes as llama.cpp's llama-quantize (fixtures/gguf/stories260K-Q4_K_M.gguf)?"
if cmp -s "$OUT/stories260K-Q4_K_M.gguf" fixtures/gguf/stories260K-Q4_K_M.gguf; then
    echo "yes: byte-identical, $(wc -c < "$OUT/stories260K-Q4_K_M.gguf") bytes"
else
    echo "NO: the files differ" >&2
    exit 1
fi

step "qforge verify: what Q4_K_M cost, against the F32 source folder (KL divergence, llama-perplexity's report)"
"$BIN/qforge" verify -m "$OUT/stories260K-Q4_K_M.gguf" --ref "$MODEL" -f fixtures/verify/eval.txt -c 128 --chunks 40 \
    --max-kld 0.2 --min-same-top 70
echo "(exit status 0: mean KLD and same-top rate within the limits given)"

step "qforge convert $MODEL -o stories260K.qfm --format qfm   (QFM: zstd per tensor, SHA-256 per tensor, provenance)"
"$BIN/qforge" convert --format qfm -o "$OUT/stories260K.qfm" "$MODEL"
"$BIN/qforge" inspect "$OUT/stories260K.qfm" | sed -n '1,5p'
"$BIN/qforge" sum -q --check "$OUT/stories260K.qfm" && echo "every tensor and the file digest check"
"$BIN/qforge" export "$OUT/stories260K.qfm" "$OUT/from-qfm.gguf"
if cmp -s "$OUT/from-qfm.gguf" "$OUT/stories260K-f16.gguf"; then
    echo "qforge export gives back the F16 GGUF byte for byte ($(wc -c < "$OUT/stories260K.qfm") bytes as QFM," \
        "$(wc -c < "$OUT/stories260K-f16.gguf") as GGUF)"
else
    echo "NO: the GGUF exported from the QFM differs" >&2
    exit 1
fi

step "the Q4_K_M file as QFM, its drift recorded in its provenance (qforge verify --record)"
"$BIN/qforge" import -q "$OUT/stories260K-Q4_K_M.gguf" "$OUT/stories260K-Q4_K_M.qfm"
"$BIN/qforge" verify -q -m "$OUT/stories260K-Q4_K_M.qfm" --ref "$MODEL" -f fixtures/verify/eval.txt \
    -c 128 --chunks 40 --max-kld 0.2 --min-same-top 70 --record >/dev/null
"$BIN/qforge" inspect --json "$OUT/stories260K-Q4_K_M.qfm" | python3 -c '
import json, sys
v = json.load(sys.stdin)["provenance"]["verify"]
print("recorded: mean KLD %.6f, same top %.2f %%, PPL %.4f (reference %.4f), pass: %s" %
      (v["kld"]["mean"], 100 * v["same_top"], v["ppl"], v["ppl_reference"], v["pass"]))'
"$BIN/qforge" sum -q --check "$OUT/stories260K-Q4_K_M.qfm" && echo "and the file still checks"
