#!/bin/sh
# Forward-pass speed of qforge-verify: tokens per second of the batched
# reference forward pass (perplexity chunks of N_CTX tokens, one matrix
# product per chunk and weight) on a generated LLaMA-shaped model with
# hidden 2048 and 16 layers (ffn 5632, 32 heads, 4 KV heads, vocab 32000:
# TinyLlama-1.1B's shape with 16 of its 22 layers, 0.85e9 parameters, F32),
# at 1 and 2 threads; with Q4_K_M weights too when qforge-quantize is built.
# Beside it: the machine's F32 peak (vector width x 4 flops x clock, and the
# multiply/add throughput measured in registers) and the fraction reached.
# Best of REPEAT runs.
#   sh bench/verify.sh [BUILD]     BENCH_DIR (/tmp/qforge-bench), N_CTX (512), CHUNKS (2),
#                                  REPEAT (2), LAYERS (16; 22 is TinyLlama-1.1B itself)
set -e
BUILD=${1:-build}
BIN="$BUILD/bin"
DIR=${BENCH_DIR:-/tmp/qforge-bench}
N_CTX=${N_CTX:-512}
CHUNKS=${CHUNKS:-2}
REPEAT=${REPEAT:-2}
LAYERS=${LAYERS:-16}
MODEL="$DIR/llama-2048x$LAYERS-f32"
HIDDEN=2048 FFN=5632 VOCAB=32000 KV_DIM=256

make -s "$BUILD/tests/util_genmodel" "$BUILD/tests/util_gemmbench" "$BIN/qforge-verify" \
    BUILD="$BUILD" >/dev/null
mkdir -p "$DIR"
if [ ! -f "$MODEL/model.safetensors" ]; then
    echo "bench: generating $MODEL ($LAYERS layers of F32, once)"
    "$BUILD/tests/util_genmodel" "$MODEL" --hidden $HIDDEN --layers $LAYERS --ffn $FFN \
        --heads 32 --kv-heads 4 --vocab $VOCAB --dtype f32 --force
    cp fixtures/stories260K/tokenizer.model "$MODEL/"
fi
TOKENS="$DIR/tokens-$N_CTX-$CHUNKS.json"
NTOK=$((N_CTX * (CHUNKS > 2 ? CHUNKS : 2))) # perplexity wants at least 2 chunks of text
awk -v n=$NTOK 'BEGIN { srand(1); printf "[1"; for (i = 1; i < n; i++) printf ", %d", 3 + int(rand() * 509); print "]" }' >"$TOKENS"

# Flops per token: 2 per weight of the products (the output matrix for the
# scored half of each chunk only), plus attention (q.k and p.v over on
# average N_CTX/2 positions, 2 flops each, per layer).
FLOPS=$(awk -v l=$LAYERS -v d=$HIDDEN -v f=$FFN -v v=$VOCAB -v kv=$KV_DIM -v c=$N_CTX 'BEGIN {
    per_layer = 2 * (d * d + 2 * kv * d + d * d + 3 * d * f) + 2 * 2 * (c / 2) * d
    print l * per_layer + 2 * v * d * 0.5 }')

# Nominal peak: vector lanes x 4 flops per cycle (two vector pipes, each a
# multiply or an add per cycle, or one FMA) x clock.
LANES=4 ISA=sse
grep -qw avx2 /proc/cpuinfo && LANES=8 ISA=avx2
grep -qw avx512f /proc/cpuinfo && LANES=16 ISA=avx512
MHZ=$(awk -F: '/^cpu MHz/ { gsub(/ /, "", $2); print $2; exit }' /proc/cpuinfo)
MHZ=${MHZ:-0}
NOMINAL1=$(awk -v l=$LANES -v m="$MHZ" 'BEGIN { printf "%.1f", l * 4 * m / 1000 }')

# run_verify MODEL NUMERICS THREADS: sets TPS (tokens per wall second) and
# CPS (tokens per CPU-second, all threads counted, times the thread count:
# what the run would reach with its cores to itself, on a machine other
# jobs share), each the best of REPEAT.
run_verify() {
    TPS=0 CPS=0
    i=0
    while [ $i -lt "$REPEAT" ]; do
        "$BIN/qforge-verify" -q --json -m "$1" --numerics "$2" -t "$3" --tokens "$TOKENS" \
            -c "$N_CTX" --chunks "$CHUNKS" >"$DIR/verify.json"
        read -r tps cps <<EOF
$(awk -F': ' -v n=$((N_CTX * CHUNKS)) -v t="$3" '
    /"seconds"/ { gsub(/,/, "", $2); s = $2 } /"cpu_seconds"/ { gsub(/,/, "", $2); c = $2 }
    END { printf "%.2f %.2f\n", n / s, n * t / c }' "$DIR/verify.json")
EOF
        TPS=$(awk -v a="$TPS" -v b="$tps" 'BEGIN { print (b > a ? b : a) }')
        CPS=$(awk -v a="$CPS" -v b="$cps" 'BEGIN { print (b > a ? b : a) }')
        i=$((i + 1))
    done
}

echo "bench: $MODEL: hidden $HIDDEN, $LAYERS layers, ffn $FFN, vocab $VOCAB, F32;" \
    "$CHUNKS chunks of $N_CTX tokens; $(awk -v f="$FLOPS" 'BEGIN { printf "%.2f", f / 1e9 }') GFLOP per token"
echo "machine: $ISA ($LANES F32 lanes), $MHZ MHz: nominal F32 peak $NOMINAL1 GFLOP/s per core"
for t in 1 2; do
    peak=$("$BUILD/tests/util_gemmbench" peak -t $t | sed 's/peak_gflops=\([0-9.]*\).*/\1/')
    g=$("$BUILD/tests/util_gemmbench" gemm 5632 2048 $N_CTX -t $t | sed 's/gflops=//')
    run_verify "$MODEL" f32 $t
    awk -v t=$t -v tps="$TPS" -v cps="$CPS" -v f="$FLOPS" -v nom="$NOMINAL1" -v peak="$peak" -v g="$g" -v c=$N_CTX 'BEGIN {
        gf = tps * f / 1e9; nominal = nom * t
        printf "F32 weights, %d thread%s: %7.1f tokens/s = %6.1f GFLOP/s: %3.0f%% of nominal peak %.0f, %3.0f%% of measured peak %.0f\n",
            t, (t > 1 ? "s" : " "), tps, gf, 100 * gf / nominal, nominal, 100 * gf / peak, peak
        printf "    with its cores to itself (tokens per CPU-second x threads): %.1f tokens/s (%.0f GFLOP/s); qf_gemm alone on 5632x2048x%d: %.0f GFLOP/s\n",
            cps, cps * f / 1e9, c, g }'
    eval "TPS_$t=$TPS CPS_$t=$CPS"
done
# TinyLlama-1.1B has 22 layers: the same per-layer speed gives
[ "$LAYERS" = 22 ] || awk -v tps="$TPS_2" -v cps="$CPS_2" -v l=$LAYERS -v d=$HIDDEN -v f=$FFN -v v=$VOCAB -v kv=$KV_DIM -v c=$N_CTX 'BEGIN {
    per_layer = 2 * (d * d + 2 * kv * d + d * d + 3 * d * f) + 2 * 2 * (c / 2) * d
    f16 = l * per_layer + v * d; f22 = 22 * per_layer + v * d
    printf "1.1B shape (22 layers) at 2 threads, by flops: %.1f tokens/s (%.1f with both cores to itself; target >= 80)\n",
        tps * f16 / f22, cps * f16 / f22 }'

if [ -x "$BIN/qforge-quantize" ]; then
    Q="$DIR/llama-2048x$LAYERS-Q4_K_M.gguf"
    [ -f "$Q" ] || "$BIN/qforge-quantize" -q "$MODEL" "$Q" Q4_K_M >/dev/null 2>&1 || rm -f "$Q"
    if [ -f "$Q" ]; then
        for t in 1 2; do
            run_verify "$Q" ggml $t
            printf 'Q4_K_M weights (dequantized to F32 at load, ggml numerics), %d thread%s: %7.1f tokens/s (%.1f with its cores to itself)\n' \
                $t "$([ $t -gt 1 ] && echo s || echo ' ')" "$TPS" "$CPS"
        done
    fi
fi
