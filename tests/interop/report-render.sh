#!/bin/sh
# The page of qforge-verify --report rendered by a real browser: chromium,
# headless, screenshots the report of the bundled stories260K Q4_K_M file
# against its f16 source; the picture must be the right size, much larger
# than a blank page's, and far from a single colour (charts and tables
# drawn). Without chromium it prints a skip line.
#   sh tests/interop/report-render.sh [BIN]
# Prints "ok ..." / "not ok ..." lines (tests/interop/run.sh counts them).
cd "$(dirname "$0")" || exit 1
ROOT=$(cd ../.. && pwd)
BIN=${1:-"$ROOT/${QF_BUILD:-build}/bin"}
FIX="$ROOT/fixtures"

CHROME=""
for c in chromium chromium-browser; do
    if command -v "$c" >/dev/null 2>&1; then CHROME=$c; break; fi
done
if [ -z "$CHROME" ]; then
    echo "skip report-render: chromium is not installed"
    exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ok() { echo "ok report-render: $1"; }
notok() { echo "not ok report-render: $1: $2"; }

# shot HTML PNG: a 1200x2000 screenshot, with a profile of its own
shot() {
    timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$TMP/profile" --screenshot="$2" --window-size=1200,2000 "file://$1" \
        >"$TMP/chrome.log" 2>&1
}

if ! "$BIN/qforge-verify" -q -m "$FIX/gguf/stories260K-Q4_K_M.gguf" --ref "$FIX/gguf/stories260K-f16.gguf" \
    --tokens "$FIX/verify/stories260K-ref-tokens.json" -c 64 --report "$TMP/report.html" >/dev/null 2>"$TMP/err"; then
    notok "qforge-verify --report" "$(head -c 300 "$TMP/err")"
    exit 0
fi
printf '<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml"><head><meta charset="utf-8"/><title>blank</title></head><body></body></html>\n' >"$TMP/blank.html"

shot "$TMP/report.html" "$TMP/report.png"
shot "$TMP/blank.html" "$TMP/blank.png"
if [ -s "$TMP/report.png" ]; then ok "screenshot written"; else notok "screenshot written" "$(tail -c 300 "$TMP/chrome.log")"; exit 0; fi

# Decode the PNG (8-bit RGB or RGBA, non-interlaced, as chromium writes
# them): size, and how many distinct colours and non-white pixels it has.
if out=$(python3 - "$TMP/report.png" "$TMP/blank.png" <<'EOF' 2>&1
import os, struct, sys, zlib

def decode(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows

w, h, bpp, rows = decode(sys.argv[1])
assert (w, h) == (1200, 2000), (w, h)
colours, dark = set(), 0
for r in rows[::4]:
    for x in range(0, w * bpp, 4 * bpp):
        px = r[x:x + 3]
        colours.add(px)
        if sum(px) < 600:
            dark += 1
sampled = (h // 4) * (w // 4)
size, blank = os.path.getsize(sys.argv[1]), os.path.getsize(sys.argv[2])
assert len(colours) >= 20, "only %d colours" % len(colours)
assert dark > sampled // 100, "only %d of %d sampled pixels are not near white" % (dark, sampled)
assert size > 10 * blank and size > 50000, (size, blank)
print("%d x %d, %d bytes (blank page %d), %d colours, %.1f%% of sampled pixels drawn"
      % (w, h, size, blank, len(colours), 100.0 * dark / sampled))
EOF
); then
    ok "page drawn ($out)"
else
    notok "page drawn" "$(echo "$out" | tail -2)"
fi
