#!/bin/sh
# Quality of QFM's affine types against llama.cpp's types, on tiny-llama-256
# (../shared/golden): each type made by qforge-quantize from the F32 GGUF
# (affine types into a QFM, with the raw codec so its size compares with a
# GGUF's; the zstd size beside it), then measured by qforge-verify against
# that F32 GGUF on the golden KLD table's tokens and context (llama.cpp's ids
# of eval.txt, -c 128: tests/golden/verify.py). Columns: file size, bits per
# weight over all tensor data (norms included), mean KL divergence, PPL of
# the quantized model, same top token rate, with qforge-verify's default
# numerics (ggml: as llama.cpp's CPU backend computes, which also rounds each
# product's input to the ggml weight type's partner, Q8_0 or Q8_K; QFM's
# affine tensors are run as F32 rows); and the mean KLD with --numerics f32
# (everything in F32: the cost of the weights alone, the fair comparison).
#   sh bench/qfm_quality.sh [BUILD]    GOLDEN (../shared/golden), BENCH_DIR (/tmp/qfm-quality),
#                                      TYPES (the list below), THREADS (2)
set -e
BUILD=${1:-build}
BIN="$BUILD/bin"
GOLDEN=${GOLDEN:-../shared/golden}
DIR=${BENCH_DIR:-/tmp/qfm-quality}
THREADS=${THREADS:-2}
TYPES=${TYPES:-"int4-g32 int4-g64 int4-g128 int8-g32 int8-g64 int8-g128 int8-ch Q4_0 Q4_K_M Q8_0"}
G="$GOLDEN/tiny-llama-256"
REF="$G/tiny-llama-256-f32.gguf"
TOKS="$G/tiny-llama-256-eval-llamacpp-tokens.json"
[ -f "$REF" ] && [ -f "$TOKS" ] || { echo "bench: $REF or $TOKS missing" >&2; exit 1; }
mkdir -p "$DIR"

size() { wc -c <"$1" | tr -d ' '; }

# bits per weight over every tensor's data, from qforge-inspect --json (GGUF or QFM)
bpw() {
    "$BIN/qforge-inspect" --json "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
nb = ne = 0
for t in d["tensors"]:
    n = 1
    for x in t["shape"]:
        n *= x
    nb += t.get("size", t.get("bytes", 0))
    ne += n
print("%.3f" % (8.0 * nb / ne))'
}

printf '| type | file bytes | QFM zstd bytes | bpw | mean KLD | PPL | same top %% | mean KLD, f32 numerics |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for t in $TYPES; do
    case $t in
    int*) out="$DIR/tiny-llama-256-$t.qfm"
          "$BIN/qforge-quantize" -q -f --codec raw "$REF" "$out" "$t" "$THREADS"
          "$BIN/qforge-quantize" -q -f "$REF" "$DIR/tiny-llama-256-$t-zstd.qfm" "$t" "$THREADS"
          zs=$(size "$DIR/tiny-llama-256-$t-zstd.qfm") ;;
    *)    out="$DIR/tiny-llama-256-$t.gguf"
          "$BIN/qforge-quantize" -q -f "$REF" "$out" "$t" "$THREADS"
          zs=- ;;
    esac
    "$BIN/qforge-verify" -q -m "$out" --ref "$REF" --tokens "$TOKS" -c 128 -t "$THREADS" --json \
        >"$DIR/verify-$t.json"
    "$BIN/qforge-verify" -q -m "$out" --ref "$REF" --tokens "$TOKS" -c 128 -t "$THREADS" --json \
        --numerics f32 >"$DIR/verify-f32-$t.json"
    python3 - "$DIR/verify-$t.json" "$DIR/verify-f32-$t.json" "$t" "$(size "$out")" "$zs" "$(bpw "$out")" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
f = json.load(open(sys.argv[2]))
print("| %s | %s | %s | %s | %.6f | %.4f | %.3f | %.6f |" % (sys.argv[3], format(int(sys.argv[4]), ","),
      sys.argv[5] if sys.argv[5] == "-" else format(int(sys.argv[5]), ","), sys.argv[6],
      d["kld"]["mean"], d["ppl_q"]["value"], 100 * d["same_top"]["value"], f["kld"]["mean"]))
EOF
done
