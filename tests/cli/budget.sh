#!/bin/sh
# qforge-quantize with a size budget (--target-size, --target-bpw,
# --max-memory): files under the budget and within 0.5% of it, dry runs that
# write nothing, plans that round-trip to the same bytes and are refused when
# stale, unreachable budgets, the plan's metadata keys, usage errors.
. "$(dirname "$0")/lib.sh"
Q="$QF_BIN/qforge-quantize"
M="$FIX/stories260K"
F16="$FIX/gguf/stories260K-f16.gguf"
case $QF_BUILD in /*) GEN="$QF_BUILD/tests/util_genmodel" ;; *) GEN="$QF_ROOT/$QF_BUILD/tests/util_genmodel" ;; esac
size() { stat -c %s "$1"; }
# within LIMIT SIZE: SIZE <= LIMIT and SIZE >= 99.5% of LIMIT
within() { [ "$2" -le "$1" ] && [ $(($2 * 1000)) -ge $(($1 * 995)) ]; }

# --- usage
run "$Q" --help
expect_out "--help documents --target-size" '--target-size SIZE'
expect_out "--help documents --max-memory" '--max-memory SIZE'
run "$Q" --target-size 300K "$F16" "$TMP/x.gguf" Q4_K_M
expect_rc "budget and TYPE: exit 2" 2
expect_err "budget and TYPE: says why" 'no TYPE'
run "$Q" --target-size 300K --target-bpw 5 "$F16" "$TMP/x.gguf"
expect_rc "two budgets: exit 2" 2
run "$Q" --target-size 300K --ctx 512 "$F16" "$TMP/x.gguf"
expect_rc "--ctx without --max-memory: exit 2" 2
run "$Q" --target-size 300K --pure "$F16" "$TMP/x.gguf"
expect_rc "budget and --pure: exit 2" 2
run "$Q" --target-size 300K --types Q4_K,Q9_Z "$F16" "$TMP/x.gguf"
expect_rc "--types with an unknown type: exit 2" 2
expect_err "--types names the type" "'Q9_Z'"
run "$Q" --target-bpw abc "$F16" "$TMP/x.gguf"
expect_rc "--target-bpw abc: exit 2" 2
run "$Q" --target-size 300K "$F16"
expect_rc "budget without OUT or --dry-run: exit 2" 2
[ ! -e "$TMP/x.gguf" ] && ok "usage errors write nothing" || notok "usage errors write nothing" "x.gguf exists"

# --- --target-size: under the budget, within 0.5%
for t in 300000 350000 400000 480000; do
    run "$Q" -q -t 2 --target-size $t "$F16" "$TMP/t$t.gguf"
    expect_rc "--target-size $t: exit 0" 0
    s=$(size "$TMP/t$t.gguf")
    within $t "$s" && ok "--target-size $t: $s bytes" || notok "--target-size $t" "$s bytes"
done
run "$QF_BIN/qforge-inspect" "$TMP/t400000.gguf"
expect_out "quantize.plan.target" 'quantize\.plan\.target +STRING +size$'
expect_out "quantize.plan.target_bytes" 'quantize\.plan\.target_bytes +UINT64 +400000$'
expect_out "quantize.plan.error" 'quantize\.plan\.error +FLOAT64 +[0-9]'
expect_out "tensors carry the chosen types" 'blk\.0\.attn_q\.weight +Q(4_0|4_1|5_0|5_1|8_0)'
expect_out "ffn_down (172 columns) falls to F16 or the 4-wide legacy? F16" 'blk\.0\.ffn_down\.weight +F16'

# --- the same bytes on 1 and 2 threads
run "$Q" -q -t 1 --target-size 400000 "$F16" "$TMP/t1.gguf"
expect_same "-t 1 and -t 2 give the same file" "$TMP/t1.gguf" "$TMP/t400000.gguf"

# --- --dry-run writes nothing but the plan
run "$Q" -t 2 --dry-run --target-size 400000 "$F16" "$TMP/dry.gguf"
expect_rc "--dry-run: exit 0" 0
expect_out "--dry-run lists tensors with their type and error" '^ +[0-9]+ +blk\.0\.attn_q\.weight +64 x 64 +Q'
expect_out "--dry-run prints the file size the budget file would have" "file $(size "$TMP/t400000.gguf" | sed 's/\(...\)$/,\1/') bytes"
[ ! -e "$TMP/dry.gguf" ] && ok "--dry-run writes no model" || notok "--dry-run writes no model" "dry.gguf exists"
run "$Q" -q -t 2 --dry-run --json --target-size 400000 "$F16"
expect_out "--dry-run --json" '"file_size": [0-9]+'

# --- plans: save, reuse (same bytes), stale refused
run "$Q" -q -t 2 --save-plan "$TMP/p.json" "$F16"
expect_rc "--save-plan alone measures: exit 0" 0
[ -s "$TMP/p.json" ] && ok "--save-plan writes the plan" || notok "--save-plan writes the plan" "no file"
run "$Q" -q -t 2 --plan "$TMP/p.json" --target-size 400000 "$F16" "$TMP/fromplan.gguf"
expect_rc "--plan: exit 0" 0
expect_same "--plan gives the bytes of a measuring run" "$TMP/fromplan.gguf" "$TMP/t400000.gguf"
run "$Q" -q -t 2 --dry-run --target-size 400000 --save-plan "$TMP/p2.json" "$F16"
expect_same "a dry run saves the same plan" "$TMP/p.json" "$TMP/p2.json"
run "$Q" -q --save-plan "$TMP/p.json" "$F16"
expect_rc "--save-plan onto an existing file: exit 1" 1
run "$Q" -q --plan "$TMP/p.json" --target-size 400000 "$M" "$TMP/stale.gguf"
expect_rc "stale plan (another source): exit 1" 1
expect_err "stale plan: says so" 'p\.json: measured on another model'
expect_err_lines "stale plan: one line" 1
[ ! -e "$TMP/stale.gguf" ] && ok "stale plan writes nothing" || notok "stale plan writes nothing" "output exists"
printf '{"format": "qforge-budget-plan", "version": 1}' >"$TMP/bad.json"
run "$Q" -q --plan "$TMP/bad.json" --target-size 400000 "$F16" "$TMP/bad.gguf"
expect_rc "malformed plan: exit 1" 1
expect_err "malformed plan: says what is missing" 'bad\.json: .*malformed'

# --- unreachable budgets: one line with the smallest reachable size
run "$Q" -q --target-size 100000 "$F16" "$TMP/small.gguf"
expect_rc "unreachable --target-size: exit 1" 1
expect_err "unreachable --target-size: smallest reachable size" 'below the smallest reachable 242,528 bytes'
expect_err_lines "unreachable: one line" 1
[ ! -e "$TMP/small.gguf" ] && ok "unreachable: no output" || notok "unreachable: no output" "output exists"
run "$Q" -q --target-bpw 4 "$F16" "$TMP/small.gguf"
expect_rc "unreachable --target-bpw: exit 1" 1
expect_err "unreachable --target-bpw: smallest reachable bpw" 'below the smallest reachable 7\.0135 bpw'

# --- --target-bpw: tensor data <= bpw * weights / 8 (260,032 weights)
run "$Q" -q -t 2 --target-bpw 10 --dry-run --json "$F16"
td=$(sed -n 's/^  "tensor_bytes": \([0-9]*\),*$/\1/p' "$TMP/out")
within 325040 "$td" && ok "--target-bpw 10: $td bytes of tensor data" || notok "--target-bpw 10" "tensor data '$td'"

# --- --max-memory: weights + KV cache + compute, the split printed
run "$Q" -t 2 --max-memory 4M --ctx 256 --dry-run "$F16"
expect_rc "--max-memory: exit 0" 0
expect_err "--max-memory prints the split" 'weights \(file\) [0-9,]+ \+ KV cache 163,840 \(256 tokens, F16\) \+ compute 3,104,768$'

# --- --calibrate: the model's own sensitivities, kept in the plan
EVAL="$FIX/verify/eval.txt"
run "$Q" -t 2 --calibrate "$EVAL" --calibrate-chunks 2 --save-plan "$TMP/pc.json" "$F16"
expect_rc "--calibrate: exit 0" 0
expect_err "--calibrate reports each kind" 'calibration: attn_v\.weight +5 tensors, err/signal [0-9.e-]+, KLD [0-9.e-]+: sensitivity'
grep -q '"sensitivity":' "$TMP/pc.json" && ok "--calibrate keeps the sensitivities in the plan" ||
    notok "--calibrate keeps the sensitivities in the plan" "no \"sensitivity\" in the plan"
run "$Q" -q -t 2 --plan "$TMP/pc.json" --target-size 400000 "$F16" "$TMP/c1.gguf"
run "$Q" -q -t 2 --calibrate "$EVAL" --calibrate-chunks 2 --target-size 400000 "$F16" "$TMP/c2.gguf"
expect_same "a calibrated plan round trip gives the same bytes" "$TMP/c1.gguf" "$TMP/c2.gguf"
within 400000 "$(size "$TMP/c1.gguf")" && ok "calibrated budget file within 0.5%" || notok "calibrated budget file" "$(size "$TMP/c1.gguf")"
run "$Q" -q --calibrate "$EVAL" --calibrate-ctx 100000 --target-size 400000 "$F16" "$TMP/c3.gguf"
expect_rc "--calibrate on too short a text: exit 1" 1
expect_err "--calibrate on too short a text: says so" 'eval\.txt: [0-9]+ tokens, fewer than one chunk of 100000'

# --- importance matrix: a plan measured with one is refused without it
"$GEN" "$TMP/g" --hidden 256 --ffn 768 --layers 2 --heads 4 --kv-heads 2 --vocab 512 --dtype f32 >/dev/null 2>&1
cp "$M/tokenizer.model" "$TMP/g/"
IM="$FIX/quant/imatrix/tiny-llama-256.imatrix"
run "$Q" -q -t 2 --imatrix "$IM" --save-plan "$TMP/gi.json" --target-size 1100000 "$TMP/g" "$TMP/gi.gguf"
expect_rc "--imatrix with a budget: exit 0" 0
within 1100000 "$(size "$TMP/gi.gguf")" && ok "--imatrix budget file within 0.5%" || notok "--imatrix budget file" "$(size "$TMP/gi.gguf")"
run "$Q" -q --plan "$TMP/gi.json" --target-size 1100000 "$TMP/g" "$TMP/gn.gguf"
expect_rc "imatrix plan without --imatrix: exit 1" 1
expect_err "imatrix plan without --imatrix: says so" 'measured with an importance matrix, but none is given'
run "$Q" -q --imatrix "$IM" --plan "$TMP/gi.json" --target-size 1100000 "$TMP/g" "$TMP/gi2.gguf"
expect_same "imatrix plan round trip" "$TMP/gi.gguf" "$TMP/gi2.gguf"
run "$Q" -q --imatrix "$IM" --plan "$TMP/gi.json" --types Q4_K,Q6_K --target-size 1100000 --dry-run --json "$TMP/g"
if grep -E '"type": "(Q2_K|Q3_K|Q5_K|Q8_0|IQ4_XS)"' "$TMP/out" >/dev/null; then
    notok "--types restricts a saved plan" "$(grep '"type"' "$TMP/out" | sort | uniq -c | tr '\n' ' ')"
else
    ok "--types restricts a saved plan"
fi

ls -a "$TMP" | grep -q '^\..*\(gguf\|json\)\.' && notok "no temp files left" "$(ls -a "$TMP")" || ok "no temp files left"
