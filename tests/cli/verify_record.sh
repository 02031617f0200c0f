#!/bin/sh
# qforge-verify --record: the run's summary lands in the QFM's provenance,
# the tensors (and the GGUF it stands for) do not change.
. "$(dirname "$0")/lib.sh"
G="$FIX/gguf"
EVAL="$FIX/verify/eval.txt"
J() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

"$QF_BIN/qforge-import" -q "$G/stories260K-Q4_K_M.gguf" "$TMP/q.qfm"
cp "$TMP/q.qfm" "$TMP/before.qfm"
run "$QF_BIN/qforge-verify" -q --json -m "$TMP/q.qfm" --ref "$G/stories260K-f16.gguf" -f "$EVAL" -c 128 \
    --chunks 3 --record --max-kld 1
expect_rc "verify --record" 0
cp "$TMP/out" "$TMP/run.json"
"$QF_BIN/qforge-inspect" --json "$TMP/q.qfm" >"$TMP/ins.json"
v=$(J "$TMP/ins.json" 'd["provenance"]["verify"]["kld"]["mean"]')
w=$(J "$TMP/run.json" 'd["kld"]["mean"]')
# JSON numbers keep 15 significant digits (cJSON)
python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 1e-13 * abs(b))" "$v" "$w" &&
    ok "recorded mean KLD equals the run's ($v)" || notok "recorded mean KLD" "$v vs $w"
v=$(J "$TMP/ins.json" 'd["provenance"]["verify"]["text_sha256"]')
w=$(sha256sum "$EVAL" | cut -d' ' -f1)
[ "$v" = "$w" ] && ok "recorded text hash is sha256sum's" || notok "text hash" "$v vs $w"
v=$(J "$TMP/ins.json" 'd["provenance"]["verify"]["pass"], d["provenance"]["verify"]["chunks"]')
[ "$v" = "(True, 3)" ] && ok "recorded pass and chunks" || notok "pass and chunks" "$v"
"$QF_BIN/qforge-inspect" --json "$TMP/before.qfm" >"$TMP/before.json"
v=$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["provenance"]; b=json.load(open(sys.argv[2]))["provenance"]; b.pop("verify"); print(a == b)' "$TMP/before.json" "$TMP/ins.json")
[ "$v" = True ] && ok "the rest of the provenance is kept" || notok "provenance kept" "$v"
run "$QF_BIN/qforge-sum" --check "$TMP/q.qfm"
expect_rc "the recorded file checks" 0
run "$QF_BIN/qforge-export" "$TMP/q.qfm" "$TMP/q.gguf"
expect_same "still the same GGUF" "$G/stories260K-Q4_K_M.gguf" "$TMP/q.gguf"

# a second run replaces the record; perplexity mode records too
run "$QF_BIN/qforge-verify" -q -m "$TMP/q.qfm" -f "$EVAL" -c 128 --chunks 2 --record
expect_rc "perplexity --record" 0
"$QF_BIN/qforge-inspect" --json "$TMP/q.qfm" >"$TMP/ins.json"
v=$(J "$TMP/ins.json" 'd["provenance"]["verify"]["mode"], "kld" in d["provenance"]["verify"]')
[ "$v" = "('perplexity', False)" ] && ok "a new record replaces the old" || notok "replaced" "$v"

# a threshold exceeded: exit 3, and the record says it failed
run "$QF_BIN/qforge-verify" -q -m "$TMP/q.qfm" --ref "$G/stories260K-f16.gguf" -f "$EVAL" -c 128 \
    --chunks 2 --record --max-kld 0.000001
expect_rc "exceeded threshold still exits 3" 3
"$QF_BIN/qforge-inspect" --json "$TMP/q.qfm" >"$TMP/ins.json"
v=$(J "$TMP/ins.json" 'd["provenance"]["verify"]["pass"]')
[ "$v" = False ] && ok "the record says it failed" || notok "failed record" "$v"

# not a QFM: refused before any work, the file untouched
cp "$G/stories260K-Q4_K_M.gguf" "$TMP/x.gguf"
run "$QF_BIN/qforge-verify" -m "$TMP/x.gguf" -f "$EVAL" -c 128 --record
expect_rc "--record on a GGUF refused" 1
expect_err "says why" "not one"
expect_err_lines "in one line" 1
[ ! -s "$TMP/out" ] && ok "no work done" || notok "no work done" "$(head -c 200 "$TMP/out")"
expect_same "the GGUF is untouched" "$G/stories260K-Q4_K_M.gguf" "$TMP/x.gguf"
run "$QF_BIN/qforge-verify" --tensors --record "$TMP/q.qfm" "$TMP/x.gguf"
expect_rc "--record with --tensors is a usage error" 2
