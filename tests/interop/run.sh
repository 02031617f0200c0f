#!/bin/sh
# make check-interop: qforge's output read by independent implementations.
#   - @huggingface/gguf (npm) parses the GGUF files qforge writes: the
#     fixture model converted to every outtype (and quantized, when
#     qforge-quantize is there), and every golden GGUF rewritten by qforge.
#   - chromium renders the page of qforge-verify --report (report-render.sh;
#     skipped when chromium is not installed).
# Prints "ok ..." / "not ok ..." lines and ends with "N passed, N failed".
cd "$(dirname "$0")" || exit 1
ROOT=$(cd ../.. && pwd)
BIN="$ROOT/${QF_BUILD:-build}/bin"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ ! -d node_modules/@huggingface/gguf ]; then
    npm ci --no-audit --no-fund >/dev/null 2>&1 || npm install --no-audit --no-fund >/dev/null 2>&1 || {
        echo "not ok interop: npm could not install @huggingface/gguf"; echo "0 passed, 1 failed"; exit 1; }
fi
files=""
for t in f32 f16 bf16 q8_0; do
    "$BIN/qforge-convert" -q --outtype $t -o "$TMP/stories260K-$t.gguf" "$ROOT/fixtures/stories260K" && files="$files $TMP/stories260K-$t.gguf"
done
if [ -x "$BIN/qforge-quantize" ]; then
    for t in Q4_K_M Q6_K IQ4_XS Q5_0; do
        "$BIN/qforge-quantize" -q "$ROOT/fixtures/stories260K" "$TMP/stories260K-$t.gguf" $t 2 >/dev/null 2>&1 &&
            files="$files $TMP/stories260K-$t.gguf"
    done
fi
files="$files $ROOT/fixtures/gguf/stories260K-Q4_K_M.gguf"
node gguf-parse.mjs "$BIN" $files > "$TMP/log" 2>&1
sh report-render.sh "$BIN" >> "$TMP/log" 2>&1
cat "$TMP/log"
pass=$(grep -c '^ok ' "$TMP/log")
fail=$(grep -c '^not ok ' "$TMP/log")
if [ "$pass" -eq 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
