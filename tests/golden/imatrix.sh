#!/bin/sh
# qforge-imatrix against llama-imatrix b4747 (../shared/golden/tiny-llama-256):
#
#  1. the golden command (`-m tiny-llama-256-f32.gguf -f train.txt -c 128
#     --chunks 100 -t 2`), run from inside the golden folder so the recorded
#     dataset name is the one llama-imatrix was given: the same entry names,
#     ncall, value counts, last_chunk and dataset name; every value within a
#     relative 2e-4 of llama-imatrix's, the median within 1e-5 (measured:
#     4.5e-5 and 1.0e-6: our forward pass rounds as ggml's CPU backend does,
#     but its norms and products add in another order); the perplexity it
#     prints equals the log's;
#  2. the imatrix's purpose: Q4_K_M, IQ4_XS and Q2_K quantized with our
#     imatrix and with llama-imatrix's, each measured by qforge-verify's KL
#     divergence from the f32 model over eval.txt (-c 128, as the golden
#     KLD runs): ours no worse than 1.02 x golden's (measured: within 0.2%,
#     either side);
#  3. --format gguf of the same run: read by qforge-quantize, entry count and
#     chunks as the .dat's.
: "${QF_GOLDEN:?}" "${QF_BIN:?}"
MODELS="${QF_MODELS:-$QF_GOLDEN/../models}"
G="$QF_GOLDEN/tiny-llama-256"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ok() { echo "ok $1"; }
notok() { echo "not ok $1: $2"; }

cd "$G" || exit 1
# the text as llama-imatrix was given it, when the models sit where they did
TEXT=../../models/tiny-llama-256/train.txt
[ -f "$TEXT" ] && [ "$(cd "$(dirname "$TEXT")" && pwd)" = "$(cd "$MODELS/tiny-llama-256" && pwd)" ] ||
    TEXT="$MODELS/tiny-llama-256/train.txt"
EVAL="$MODELS/tiny-llama-256/eval.txt"

if "$QF_BIN/qforge-imatrix" -m tiny-llama-256-f32.gguf -f "$TEXT" -c 128 --chunks 100 -t 2 \
    -o "$TMP/ours.imatrix" 2>"$TMP/log"; then
    ok "imatrix: the golden command runs"
else
    notok "imatrix: the golden command runs" "$(cat "$TMP/log")"
    exit 1
fi
want_ppl=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\)$/\1 +\/- \2/p' logs/tiny-llama-256-imatrix.log)
if [ -n "$want_ppl" ] && grep -q "PPL = $want_ppl\$" "$TMP/log"; then
    ok "imatrix: perplexity $want_ppl as llama-imatrix printed it"
else
    notok "imatrix: perplexity as llama-imatrix printed it" "want $want_ppl; $(cat "$TMP/log")"
fi

python3 - "$TMP/ours.imatrix" tiny-llama-256.imatrix "$TEXT" <<'EOF'
import struct, sys

def read(path):
    d = open(path, "rb").read()
    o = 0
    def i32():
        nonlocal o
        v = struct.unpack_from("<i", d, o)[0]
        o += 4
        return v
    entries = {}
    for _ in range(i32()):
        n = i32()
        name = d[o:o + n].decode()
        o += n
        ncall, nval = i32(), i32()
        entries[name] = (ncall, struct.unpack_from("<%df" % nval, d, o))
        o += 4 * nval
    last = i32()
    n = i32()
    ds = d[o:o + n].decode()
    o += n
    assert o == len(d), "%s: %d bytes left" % (path, len(d) - o)
    return entries, last, ds

def report(cond, label, detail):
    print("%s imatrix: %s%s" % ("ok" if cond else "not ok", label, ": " + detail if detail else ""))

ours, last_o, ds_o = read(sys.argv[1])
gold, last_g, ds_g = read(sys.argv[2])
report(sorted(ours) == sorted(gold), "same %d entry names as llama-imatrix" % len(gold),
       "" if sorted(ours) == sorted(gold) else "ours %s, golden %s" % (sorted(ours), sorted(gold)))
report(last_o == last_g, "last_chunk %d" % last_g, "ours %d" % last_o)
if sys.argv[3].startswith("../"):
    report(ds_o == ds_g, "dataset name \"%s\"" % ds_g, "ours \"%s\"" % ds_o)
rels = []
worst = (0.0, "")
bad = []
for name in sorted(set(ours) & set(gold)):
    (nc_o, v_o), (nc_g, v_g) = ours[name], gold[name]
    if nc_o != nc_g or len(v_o) != len(v_g):
        bad.append("%s: ncall %d/%d, values %d/%d" % (name, nc_o, nc_g, len(v_o), len(v_g)))
        continue
    for j, (a, b) in enumerate(zip(v_o, v_g)):
        r = abs(a - b) / abs(b) if b else abs(a)
        rels.append(r)
        if r > worst[0]:
            worst = (r, "%s[%d] %.9g vs %.9g" % (name, j, a, b))
report(not bad, "same ncall and value count in every entry", "; ".join(bad))
rels.sort()
med = rels[len(rels) // 2] if rels else 1.0
mx = rels[-1] if rels else 1.0
detail = "%d values, max relative difference %.3g (%s), median %.3g" % (len(rels), mx, worst[1], med)
report(mx <= 2e-4, "values within 2e-4 of llama-imatrix's", detail)
report(med <= 1e-5, "median difference within 1e-5", detail)
EOF

# 2. quantized with each imatrix, KL divergence from the f32 model
for T in Q4_K_M IQ4_XS Q2_K; do
    for w in ours golden; do
        im="$TMP/ours.imatrix"
        [ $w = golden ] && im=tiny-llama-256.imatrix
        if ! "$QF_BIN/qforge-quantize" -q --imatrix "$im" tiny-llama-256-f32.gguf "$TMP/$T-$w.gguf" "$T" 2 \
            2>"$TMP/qlog"; then
            notok "imatrix: quantize $T with $w imatrix" "$(cat "$TMP/qlog")"
            continue 2
        fi
        "$QF_BIN/qforge-verify" -q -m "$TMP/$T-$w.gguf" --ref tiny-llama-256-f32.gguf -f "$EVAL" \
            -c 128 -t 2 --json >"$TMP/$T-$w.json" 2>"$TMP/vlog" ||
            { notok "imatrix: KLD of $T with $w imatrix" "$(cat "$TMP/vlog")"; continue 2; }
    done
    python3 - "$T" "$TMP/$T-ours.json" "$TMP/$T-golden.json" <<'EOF'
import json, sys
t, a, b = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
ko, kg = a["kld"]["mean"], b["kld"]["mean"]
detail = "mean KLD %.6f (ours) vs %.6f (llama-imatrix's), %+.2f%%; same top %.3f vs %.3f %%" % (
    ko, kg, 100 * (ko / kg - 1), 100 * a["same_top"]["value"], 100 * b["same_top"]["value"])
print("%s imatrix: %s with our imatrix no worse than 1.02 x golden's: %s" % (
    "ok" if ko <= 1.02 * kg else "not ok", t, detail))
EOF
done

# 3. the GGUF format of the same run
if "$QF_BIN/qforge-imatrix" -q -m tiny-llama-256-f32.gguf -f "$TEXT" -c 128 --chunks 100 -t 2 \
    --format gguf -o "$TMP/ours.gguf" &&
    "$QF_BIN/qforge-quantize" --imatrix "$TMP/ours.gguf" tiny-llama-256-f32.gguf "$TMP/g.gguf" Q4_K_M 2 \
        2>"$TMP/glog" && grep -q "imatrix    14 entries, 100 chunks: weights for 14 tensors" "$TMP/glog"; then
    ok "imatrix: --format gguf read back by qforge-quantize (14 entries, 100 chunks)"
else
    notok "imatrix: --format gguf read back by qforge-quantize" "$(cat "$TMP/glog" 2>/dev/null)"
fi
