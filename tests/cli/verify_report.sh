#!/bin/sh
# qforge-verify --tensors (per-tensor error of two files of one model) and
# --report (the HTML page), on the bundled stories260K files.
. "$(dirname "$0")/lib.sh"
V="$QF_BIN/qforge-verify"
case $QF_BUILD in /*) GEN="$QF_BUILD/tests/util_genmodel" ;; *) GEN="$QF_ROOT/${QF_BUILD:-build}/tests/util_genmodel" ;; esac
HF="$FIX/stories260K"
Q4="$FIX/gguf/stories260K-Q4_K_M.gguf"
F16="$FIX/gguf/stories260K-f16.gguf"
TOK="$FIX/verify/stories260K-ref-tokens.json"

# py NAME SCRIPT ARGS...: a python3 check; ok when it exits 0
py() {
    name=$1
    shift
    if out=$(python3 -c "$@" 2>&1); then ok "$name"; else notok "$name" "$(echo "$out" | tail -3)"; fi
}

run "$V" --help
expect_out "--help documents --tensors" '--tensors A B'
expect_out "--help documents --report" '--report OUT.html'

# usage errors
run "$V" --tensors "$F16"
expect_rc "--tensors with one file: usage error" 2
expect_err "--tensors with one file: says two" "needs two files"
run "$V" --tensors -m "$F16" "$F16" "$Q4"
expect_rc "--tensors with -m: usage error" 2
run "$V" -m "$Q4" --tokens "$TOK" --report "$TMP/x.html"
expect_rc "--report without --ref: usage error" 2
expect_err "--report without --ref: said" "--report needs --ref"

# f16 against Q4_K_M: 47 tensors, worst first
run "$V" --tensors "$F16" "$Q4" -t 2
expect_rc "--tensors runs" 0
expect_out "--tensors: header" '^tensor +shape +type A +type B +RMSE +max \|err\| +rel err +SNR dB +cosine$'
expect_out "--tensors: a Q5_0 row" '^blk\.[0-9]\.attn_v\.weight +64 x 32 +F16 +Q5_0 '
expect_out "--tensors: pooled line" '^all tensors pooled '
cp "$TMP/out" "$TMP/human"
run "$V" --tensors "$F16" "$Q4" -t 2 --json
expect_rc "--tensors --json runs" 0
cp "$TMP/out" "$TMP/t.json"
py "--tensors --json: 47 tensors sorted by SNR, identical last" '
import json, sys
d = json.load(open(sys.argv[1]))
t = d["tensors"]
assert d["mode"] == "tensors" and len(t) == 47, len(t)
key = [float("inf") if x["snr_db"] is None else x["snr_db"] for x in t]
assert key == sorted(key), key
assert t[0]["snr_db"] < 30 and t[0]["type_b"] == "Q5_0", t[0]
assert all(x["identical"] == (x["snr_db"] is None) for x in t)
assert t[-1]["identical"] and t[-1]["rmse"] == 0 and t[-1]["cosine"] == 1
for x in t:
    if not x["identical"]:
        assert 0 < x["rmse"] <= x["max_abs"] and 0 < x["rel_err"] < 1 and 0.99 < x["cosine"] < 1, x
assert d["only_in_a"] == [] and d["only_in_b"] == []
' "$TMP/t.json"
py "--tensors: table rows in the order of --json" '
import json, sys
names = [x["name"] for x in json.load(open(sys.argv[1]))["tensors"]]
rows = [l.split()[0] for l in open(sys.argv[2], encoding="utf-8") if l.startswith(("blk.", "token_embd", "output"))]
assert rows == names, (rows[:5], names[:5])
' "$TMP/t.json" "$TMP/human"
run "$V" --tensors "$F16" "$Q4" -t 1 --json
expect_same "--tensors: -t 1 and -t 2 give the same output" "$TMP/out" "$TMP/t.json"

# a file against itself: SNR inf, RMSE 0, cosine 1 everywhere
run "$V" --tensors "$Q4" "$Q4"
expect_rc "identical files: exit 0" 0
expect_out "identical files: SNR inf" '^blk\.0\.attn_q\.weight .* 0\.0000e\+00 +0\.0000e\+00 +0\.0000e\+00 +inf +1\.00000000$'
if grep -E '^(blk|token_embd|output)' "$TMP/out" | grep -vEq ' inf +1\.00000000$'; then
    notok "identical files: every row inf and 1" "$(head -c 300 "$TMP/out")"
else
    ok "identical files: every row inf and 1"
fi
run "$V" --tensors "$Q4" "$Q4" --json
py "identical files: --json snr null, rmse 0, cosine 1" '
import json, sys
d = json.load(open(sys.argv[1]))
assert all(x["identical"] and x["snr_db"] is None and x["rmse"] == 0 and x["max_abs"] == 0 and x["cosine"] == 1 for x in d["tensors"])
assert d["total"]["identical"] and d["total"]["snr_db"] is None
' "$TMP/out"

# more than one block of rows per tensor (1536 x 512 = 3 blocks): same bits on 1 and 2 threads
"$GEN" "$TMP/g" --hidden 512 --ffn 1536 --layers 2 --heads 8 --kv-heads 4 --vocab 1024 --dtype f32 --seed 1 >/dev/null 2>&1
cp "$HF/tokenizer.model" "$TMP/g/"
"$QF_BIN/qforge-convert" -q --outtype f16 -o "$TMP/g-f16.gguf" "$TMP/g"
run "$V" --tensors "$TMP/g" "$TMP/g-f16.gguf" -t 1
expect_rc "folder against its f16 GGUF" 0
expect_out "folder against f16: ffn_down row" '^blk\.[01]\.ffn_down\.weight +1536 x 512 +F32 +F16 '
cp "$TMP/out" "$TMP/g1"
run "$V" --tensors "$TMP/g" "$TMP/g-f16.gguf" -t 2
expect_same "multi-block tensors: -t 1 and -t 2 give the same figures" "$TMP/out" "$TMP/g1"

# a tensor in one file only: listed
"$GEN" "$TMP/gt" --hidden 512 --ffn 1536 --layers 2 --heads 8 --kv-heads 4 --vocab 1024 --dtype f32 --seed 1 --tie >/dev/null 2>&1
cp "$HF/tokenizer.model" "$TMP/gt/"
run "$V" --tensors "$TMP/g" "$TMP/gt"
expect_rc "a tensor only in A: exit 0" 0
expect_out "a tensor only in A: listed" '^only in A \(1\): output\.weight$'
run "$V" --tensors "$TMP/gt" "$TMP/g" --json
py "a tensor only in B: in --json" '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["only_in_b"] == ["output.weight"] and d["only_in_a"] == [], d
' "$TMP/out"

# not the same model
"$GEN" "$TMP/small" --hidden 64 --ffn 128 --layers 2 --heads 8 --kv-heads 4 --vocab 512 --dtype f32 >/dev/null 2>&1
cp "$HF/tokenizer.model" "$TMP/small/"
run "$V" --tensors "$TMP/small" "$F16"
expect_rc "another model: exit 1" 1
expect_err "another model: the tensor and both shapes" 'tensor "blk\.0\.ffn_down\.weight" is 128 x 64, in .*stories260K-f16\.gguf it is 172 x 64: not the same model'
expect_err_lines "another model: one line" 1
if [ -s "$TMP/out" ]; then notok "another model: nothing on stdout" "$(head -c 200 "$TMP/out")"; else ok "another model: nothing on stdout"; fi
run "$V" --tensors "$F16" "$TMP/none.gguf"
expect_rc "missing file: exit 1" 1
expect_err "missing file: named" '^qforge-verify: .*none\.gguf'

# ---------------------------------------------------------------------
# --report with the KL-divergence mode
run "$V" -q -m "$Q4" --ref "$F16" --tokens "$TOK" -c 64 --json --report "$TMP/r.html"
expect_rc "--report runs" 0
cp "$TMP/out" "$TMP/r.json"
py "report: XHTML parses, 2 svg, summary equals --json, nothing fetched" '
import json, re, sys
import xml.etree.ElementTree as ET
H = "{http://www.w3.org/1999/xhtml}"
S = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == H + "html", root.tag
svgs = root.findall(".//" + S + "svg")
assert len(svgs) == 2, len(svgs)
assert len(svgs[0].findall(".//" + S + "rect")) > 3       # histogram bars
assert len(svgs[1].findall(".//" + S + "path")) >= 7      # one series per kind
js = json.load(open(sys.argv[2]))
def get(path):
    v = js
    for p in path.split("."):
        v = v[p]
    return v
summary = [t for t in root.iter(H + "table") if t.get("id") == "summary"][0]
cells = [c for c in summary.iter(H + "td") if c.get("data-key")]
assert len(cells) >= 40, len(cells)
for c in cells:
    k, v = c.get("data-key"), float(c.get("data-value"))
    assert v == get(k), (k, v, get(k))
km = [c for c in cells if c.get("data-key") == "kld.mean"][0]
assert km.text == "%.6f" % js["kld"]["mean"], km.text
st = [c for c in cells if c.get("data-key") == "same_top.value"][0]
assert st.text == "%.3f" % (100 * js["same_top"]["value"]), st.text
text = open(sys.argv[1], encoding="utf-8").read()
urls = set(re.findall(r"https?://[^\"\x27<> ]*", text))
assert urls == {"http://www.w3.org/1999/xhtml", "http://www.w3.org/2000/svg"}, urls
assert "<script" not in text and "@import" not in text and "url(" not in text
' "$TMP/r.html" "$TMP/r.json"
run "$V" -q -m "$Q4" --ref "$F16" --tokens "$TOK" -c 64 --report "$TMP/r.html"
expect_rc "existing report: exit 1" 1
expect_err "existing report: --force suggested" 'r\.html: exists \(use --force to overwrite\)'
if [ -s "$TMP/out" ]; then notok "existing report: refused before the work" "$(head -c 200 "$TMP/out")"; else ok "existing report: refused before the work"; fi
run "$V" -q -m "$Q4" --ref "$F16" --tokens "$TOK" -c 64 --report "$TMP/r.html" --force -t 1
expect_rc "--force replaces the report" 0
cp "$TMP/r.html" "$TMP/r1.html"
run "$V" -q -m "$Q4" --ref "$F16" --tokens "$TMP/none.json" -c 64 --report "$TMP/r2.html"
expect_rc "failed run: exit 1" 1
if [ -e "$TMP/r2.html" ]; then notok "failed run: no report" "$TMP/r2.html exists"; else ok "failed run: no report"; fi
run "$V" -q -m "$Q4" --ref "$F16" --tokens "$TOK" -c 64 --report "$TMP/r2.html" -t 2
expect_same "report: same page for -t 1 and -t 2" "$TMP/r1.html" "$TMP/r2.html"
if ls -a "$TMP" | grep -q '^\.r.*html\.'; then notok "report: no temp files left" "$(ls -a "$TMP")"; else ok "report: no temp files left"; fi

# --report with --tensors: per-layer chart and the table of --json
run "$V" --tensors "$F16" "$Q4" --report "$TMP/t.html"
expect_rc "--tensors --report runs" 0
py "tensors report: parses, 1 svg, table equals --json" '
import json, sys
import xml.etree.ElementTree as ET
H = "{http://www.w3.org/1999/xhtml}"
S = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
assert len(root.findall(".//" + S + "svg")) == 1
js = json.load(open(sys.argv[2]))
table = [t for t in root.iter(H + "table") if t.get("id") == "tensors"][0]
n = 0
for c in table.iter(H + "td"):
    k = c.get("data-key")
    if not k:
        continue
    p = k.split(".")
    if p[0] == "total":
        want = js["total"][p[1]]
    else:
        x = js["tensors"][int(p[1])]
        if p[2] == "name":
            assert "".join(c.itertext()) == x["name"], (k, x["name"])
            continue
        want = x[p[2]]
    got = float(c.get("data-value"))
    assert (want is None and got == float("inf")) or got == want, (k, got, want)
    n += 1
assert n == 48 * 5, n
kinds = [g.get("data-kind") for g in root.iter(S + "g") if g.get("data-kind")]
assert kinds[:9] == ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"], kinds
' "$TMP/t.html" "$TMP/t.json"
