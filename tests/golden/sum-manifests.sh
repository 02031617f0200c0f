#!/bin/sh
# qforge-sum against llama-gguf-hash: for every golden GGUF that is in the
# tree and has a manifest, our manifest must equal llama.cpp's line for line,
# llama.cpp's must pass our --check, and a copy with one flipped byte must be
# reported as a MISMATCH of exactly the tensor that holds the byte.
: "${QF_GOLDEN:?}" "${QF_BIN:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
n=0
for gguf in $(find "$QF_GOLDEN" -name '*.gguf' | sort); do
    dir=$(dirname "$gguf") base=$(basename "$gguf")
    man=""
    for cand in "$dir/manifests/$base.sha256.txt" "$dir/$base.sha256.txt" "$QF_GOLDEN/hash/$base.sha256.txt"; do
        [ -f "$cand" ] && man=$cand && break
    done
    [ -n "$man" ] || continue
    n=$((n + 1))
    if (cd "$dir" && "$QF_BIN/qforge-sum" -t 2 "$base") >"$TMP/ours" 2>"$TMP/err" && cmp -s "$TMP/ours" "$man"; then
        echo "ok sum $base equals llama-gguf-hash"
    else
        echo "not ok sum $base: $(diff "$TMP/ours" "$man" | head -3 | tr '\n' ' ') $(head -c 200 "$TMP/err")"
    fi
    if "$QF_BIN/qforge-sum" -q --check "$man" "$gguf" >"$TMP/out" 2>&1; then
        echo "ok check $base against llama-gguf-hash manifest"
    else
        echo "not ok check $base: $(head -3 "$TMP/out" | tr '\n' ' ')"
    fi
done
[ $n -gt 0 ] || echo "not ok no golden GGUF with a manifest found"

# one flipped byte, in the middle of each tensor of one file in turn
f="$QF_GOLDEN/tiny-llama-256/tiny-llama-256-Q4_K_M.gguf"
man="$QF_GOLDEN/hash/tiny-llama-256-Q4_K_M.gguf.sha256.txt"
"$QF_BIN/qforge-inspect" --json "$f" > "$TMP/t.json"
python3 - "$TMP/t.json" > "$TMP/targets" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for t in d["tensors"]:
    print(t["file_offset"] + t["bytes"] // 2, t["name"])
PY
while read -r off name; do
    cp "$f" "$TMP/x.gguf"
    python3 -c "import sys; p, o = sys.argv[1], int(sys.argv[2]); b = bytearray(open(p,'rb').read()); b[o] ^= 0xFF; open(p,'wb').write(b)" "$TMP/x.gguf" "$off"
    "$QF_BIN/qforge-sum" -q --check "$man" "$TMP/x.gguf" > "$TMP/out" 2>/dev/null
    rc=$?
    got=$(grep -c 'MISMATCH' "$TMP/out")
    if [ $rc -eq 1 ] && grep -q ":$name: MISMATCH" "$TMP/out" && [ "$got" -eq 2 ]; then
        echo "ok flipped byte in $name is named (and the all-data line)"
    else
        echo "not ok flipped byte in $name: exit $rc, $(tr '\n' ' ' < "$TMP/out")"
    fi
done < "$TMP/targets"
