#!/bin/sh
# qforge-quantize writing a QFM: OUT.qfm (or --format qfm) holds exactly the
# GGUF the same command writes (qforge-export gives its bytes back), or QFM's
# affine types; every file is listed by qforge-inspect, checked by qforge-sum
# --check and measured by qforge-verify (int8 closer to the reference than
# int4); the provenance holds the recipe; refusals are clear.
. "$(dirname "$0")/lib.sh"
Q="$QF_BIN/qforge-quantize"
F16="$FIX/gguf/stories260K-f16.gguf"
EVAL="$FIX/verify/eval.txt"

# pyenv python (stdlib only): the recipe and the KLD from --json outputs
json() { python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print($2)" "$1"; }

# --- every affine type: written, listed, checked
for t in int4-g32 int4-g64 int4-g128 int8-g32 int8-g64 int8-g128 int8-ch; do
    run "$Q" -t 2 "$F16" "$TMP/$t.qfm" "$t"
    expect_rc "$t: exit 0" 0
    expect_err "$t: summary names the type" "wrote .*$t\.qfm: $t \(general\.file_type 1\)"
    run "$QF_BIN/qforge-inspect" "$TMP/$t.qfm"
    expect_rc "$t: inspect reads it" 0
    case $t in
    int4-g128 | int8-g128) # 64-column rows: every matrix falls back to int8-ch
        expect_out "$t: attention weights fall back to int8-ch" '^ +[0-9]+  blk\.0\.attn_q\.weight +int8-ch +64 x 64 ' ;;
    *)
        expect_out "$t: attention weights in $t" "^ +[0-9]+  blk\\.0\\.attn_q\\.weight +$t +64 x 64 "
        expect_out "$t: token_embd.weight in $t" "^ +[0-9]+  token_embd\\.weight +$t +64 x 512 " ;;
    esac
    expect_out "$t: norms stay F32" '^ +[0-9]+  blk\.0\.attn_norm\.weight +F32 +64 '
    [ $t = int8-ch ] || expect_out "$t: 172-column ffn_down falls back to int8-ch" \
        '^ +[0-9]+  blk\.0\.ffn_down\.weight +int8-ch +172 x 64 '
    expect_out "$t: general.file_type 1" 'general\.file_type +UINT32 +1$'
    run "$QF_BIN/qforge-sum" --check "$TMP/$t.qfm"
    expect_rc "$t: sum --check exit 0" 0
    expect_out "$t: sum --check file digest OK" ': OK \(file digest\)$'
done

# sizes: int4-g32 rows are 64 columns = 2 groups of 4 + 16 bytes
run "$QF_BIN/qforge-inspect" --json "$TMP/int4-g32.qfm"
cp "$TMP/out" "$TMP/i4.json"
sz=$(json "$TMP/i4.json" "[t['size'] for t in d['tensors'] if t['name'] == 'blk.0.attn_q.weight'][0]")
[ "$sz" = 2560 ] && ok "int4-g32: 64 x 64 tensor is 2560 bytes" || notok "int4-g32 size" "$sz"
sz=$(json "$TMP/i4.json" "[t['size'] for t in d['tensors'] if t['name'] == 'blk.0.ffn_down.weight'][0]")
[ "$sz" = $((64 * (4 + 172))) ] && ok "int8-ch fallback: 64 rows of 4 + 172 bytes" || notok "int8-ch size" "$sz"

# fallbacks reported as the mixes' are, listed with -v
run "$Q" -f "$F16" "$TMP/int4-g64.qfm" int4-g64
expect_err "fallbacks counted" 'warning: 5 tensors fell back to another type'
run "$Q" -v -f "$F16" "$TMP/int4-g64.qfm" int4-g64
expect_err "-v lists each fallback" 'fallback: tensor "blk\.0\.ffn_down\.weight": 172 columns, int4-g64 -> int8-ch'

# the same bytes whatever the thread count
"$Q" -q -t 1 "$F16" "$TMP/t1.qfm" int4-g32
"$QF_BIN/qforge-inspect" --json "$TMP/t1.qfm" >"$TMP/t1.json"
a=$(json "$TMP/t1.json" "' '.join(t['sha256'] for t in d['tensors'])")
b=$(json "$TMP/i4.json" "' '.join(t['sha256'] for t in d['tensors'])")
[ "$a" = "$b" ] && ok "affine tensors independent of the thread count" || notok "threads" "digests differ"

# --dry-run: the plan with the affine types, no file
run "$Q" --dry-run "$F16" int8-g64
expect_rc "--dry-run int8-g64: exit 0" 0
expect_out "--dry-run: type counts" 'int8-g64: 47 tensors \(F32 x 11, int8-g64 x 31, int8-ch x 5\)'
expect_out "--dry-run: a QFM only" 'a QFM only'

# --- qforge-verify: int8 is closer to the reference than int4
kld() {
    "$QF_BIN/qforge-verify" -m "$TMP/$1.qfm" --ref "$F16" -f "$EVAL" -c 128 --chunks 12 --json \
        >"$TMP/v-$1.json" 2>"$TMP/err" || { echo "fail"; return; }
    json "$TMP/v-$1.json" "d['kld']['mean']"
}
k4_32=$(kld int4-g32)
k4_64=$(kld int4-g64)
k8_32=$(kld int8-g32)
k8_ch=$(kld int8-ch)
echo "# KLD (12 chunks of 128): int4-g32 $k4_32, int4-g64 $k4_64, int8-g32 $k8_32, int8-ch $k8_ch"
check_lt() { # NAME A B: 0 < A < B
    if awk -v a="$2" -v b="$3" 'BEGIN { exit !(a + 0 > 0 && a + 0 < b + 0) }'; then ok "$1"
    else notok "$1" "$2 vs $3"; fi
}
check_lt "verify: KLD int8-g32 < int4-g32" "$k8_32" "$k4_32"
check_lt "verify: KLD int8-g32 < int4-g64" "$k8_32" "$k4_64"
check_lt "verify: KLD int8-ch < int4-g32" "$k8_ch" "$k4_32"
check_lt "verify: KLD int4-g32 below 0.5" "$k4_32" 0.5
check_lt "verify: KLD int8-g32 below 0.002" "$k8_32" 0.002

# --- a GGUF type in a QFM: exporting gives the very GGUF
for t in Q4_K_M Q8_0; do
    codec=zstd
    [ $t = Q8_0 ] && codec=raw
    run "$Q" -t 2 --codec $codec "$F16" "$TMP/$t.qfm" $t
    expect_rc "$t -> .qfm ($codec): exit 0" 0
    "$Q" -q -t 2 "$F16" "$TMP/$t.gguf" $t
    run "$QF_BIN/qforge-export" "$TMP/$t.qfm" "$TMP/$t-x.gguf"
    expect_rc "$t: export exit 0" 0
    expect_same "$t: qforge-export OUT.qfm == qforge-quantize OUT.gguf" "$TMP/$t.gguf" "$TMP/$t-x.gguf"
done
# --format qfm names the format whatever the extension
run "$Q" -q --format qfm "$F16" "$TMP/q8.bin" Q8_0
expect_rc "--format qfm: exit 0" 0
[ "$(head -c 3 "$TMP/q8.bin")" = QFM ] && ok "--format qfm writes a QFM" || notok "--format qfm" "no QFM magic"
run "$Q" -q --format gguf "$F16" "$TMP/q8-g.qfm" Q8_0
expect_same "--format gguf writes the GGUF whatever the extension" "$TMP/Q8_0.gguf" "$TMP/q8-g.qfm"

# a size budget into a QFM: the same GGUF as the budget's GGUF
"$Q" -q "$F16" "$TMP/bud.gguf" --target-bpw 8
run "$Q" -q "$F16" "$TMP/bud.qfm" --target-bpw 8
expect_rc "size budget -> .qfm: exit 0" 0
"$QF_BIN/qforge-export" "$TMP/bud.qfm" "$TMP/bud-x.gguf"
expect_same "size budget: export == the budget's GGUF" "$TMP/bud.gguf" "$TMP/bud-x.gguf"
"$QF_BIN/qforge-inspect" --json "$TMP/bud.qfm" >"$TMP/bud.json"
v=$(json "$TMP/bud.json" "'%s %s %s' % (d['provenance']['recipe']['type'], d['provenance']['recipe']['budget']['target'], d['provenance']['recipe']['budget']['optimal'])")
[ "$v" = "size budget bpw True" ] && ok "size budget: recipe holds the budget summary" || notok "budget recipe" "$v"

# --- provenance: sources with their SHA-256, command line, recipe
run "$QF_BIN/qforge-inspect" --json "$TMP/int4-g64.qfm"
cp "$TMP/out" "$TMP/p.json"
sha=$(sha256sum "$F16" | cut -d' ' -f1)
v=$(json "$TMP/p.json" "d['provenance']['sources'][0]['sha256']")
[ "$v" = "$sha" ] && ok "provenance: the source's SHA-256" || notok "source sha256" "$v"
v=$(json "$TMP/p.json" "d['provenance']['command_line'][-1]")
[ "$v" = int4-g64 ] && ok "provenance: the command line" || notok "command line" "$v"
v=$(json "$TMP/p.json" "d['provenance']['recipe']['type']")
[ "$v" = int4-g64 ] && ok "recipe: type" || notok "recipe type" "$v"
v=$(json "$TMP/p.json" "len(d['provenance']['recipe']['tensors'])")
[ "$v" = 47 ] && ok "recipe: every tensor" || notok "recipe tensors" "$v"
v=$(json "$TMP/p.json" "[(t['type'], t['from'], t.get('fallback_from')) for t in d['provenance']['recipe']['tensors'] if t['name'] == 'blk.3.ffn_down.weight'][0]")
[ "$v" = "('int8-ch', 'F16', 'int4-g64')" ] && ok "recipe: a fallback with its wanted type" || notok "recipe fallback" "$v"
v=$(json "$TMP/p.json" "d['provenance'].get('qforge_version') is not None and d['provenance'].get('created') is not None")
[ "$v" = True ] && ok "provenance: version and date" || notok "version/date" "$v"
run "$QF_BIN/qforge-inspect" --json "$TMP/Q4_K_M.qfm"
cp "$TMP/out" "$TMP/p.json"
v=$(json "$TMP/p.json" "(d['provenance']['recipe']['type'], d['provenance']['recipe']['ftype'])")
[ "$v" = "('Q4_K_M', 15)" ] && ok "recipe: the mix and its ftype" || notok "recipe mix" "$v"
"$QF_BIN/qforge-inspect" --json "$TMP/Q4_K_M.gguf" >"$TMP/g.json"
a=$(json "$TMP/p.json" "' '.join(t['name'] + '=' + t['type'] for t in d['provenance']['recipe']['tensors'])")
b=$(json "$TMP/g.json" "' '.join(t['name'] + '=' + t['type'] for t in d['tensors'])")
[ "$a" = "$b" ] && ok "recipe: each tensor's type, as the GGUF holds it" || notok "recipe types" "$a"

# with an imatrix: its file and SHA-256 in the recipe
"$QF_BIN/qforge-imatrix" -q -m "$F16" -f "$EVAL" -c 128 --chunks 4 -o "$TMP/s.imatrix" 2>"$TMP/err"
run "$Q" -q --imatrix "$TMP/s.imatrix" "$F16" "$TMP/im.qfm" Q4_K_M
expect_rc "--imatrix into a QFM: exit 0" 0
"$QF_BIN/qforge-inspect" --json "$TMP/im.qfm" >"$TMP/p.json"
sha=$(sha256sum "$TMP/s.imatrix" | cut -d' ' -f1)
v=$(json "$TMP/p.json" "d['provenance']['recipe']['imatrix']['sha256']")
[ "$v" = "$sha" ] && ok "recipe: the imatrix's SHA-256" || notok "imatrix sha256" "$v"
"$Q" -q --imatrix "$TMP/s.imatrix" "$F16" "$TMP/im.gguf" Q4_K_M
"$QF_BIN/qforge-export" "$TMP/im.qfm" "$TMP/im-x.gguf"
expect_same "--imatrix: export == the GGUF" "$TMP/im.gguf" "$TMP/im-x.gguf"

# a model folder: each of its files hashed
run "$Q" -q "$FIX/stories260K" "$TMP/folder.qfm" int8-ch
expect_rc "folder -> int8-ch QFM: exit 0" 0
"$QF_BIN/qforge-inspect" --json "$TMP/folder.qfm" >"$TMP/p.json"
n=$(find "$FIX/stories260K" -maxdepth 1 -type f ! -name '.*' | wc -l | tr -d ' ')
v=$(json "$TMP/p.json" "len([s for s in d['provenance']['sources'] if len(s['sha256']) == 64])")
[ "$v" = "$n" ] && ok "folder: each of its $n files with its SHA-256" || notok "folder sources" "$v of $n"
c=$(sha256sum "$FIX/stories260K/config.json" | cut -d' ' -f1)
v=$(json "$TMP/p.json" "[s['sha256'] for s in d['provenance']['sources'] if s['file'] == 'config.json'][0]")
[ "$v" = "$c" ] && ok "folder: config.json's SHA-256" || notok "config.json sha256" "$v"

# --- refusals
run "$Q" "$F16" "$TMP/x.gguf" int4-g64
expect_rc "affine type to a GGUF: usage error" 2
expect_err "affine type to a GGUF: says why" 'x\.gguf: int4-g64 is a QFM type \(no GGUF can hold it\)'
[ ! -e "$TMP/x.gguf" ] && ok "affine type to a GGUF: no output" || notok "affine to gguf" "output written"
run "$Q" "$F16" "$TMP/x.qfm" int3-g64
expect_rc "unknown type: usage error" 2
expect_err "unknown type: named" "unknown TYPE 'int3-g64'"
run "$Q" "$F16" "$TMP/int4-g32.qfm" int4-g32
expect_rc "existing OUT refused" 1
expect_err "existing OUT: message" 'int4-g32\.qfm: already exists \(use --force'
run "$Q" --imatrix "$TMP/s.imatrix" "$F16" "$TMP/x.qfm" int4-g64
expect_rc "--imatrix with an affine type: usage error" 2
expect_err "--imatrix with an affine type: says why" 'takes no importance matrix'
run "$Q" --checksum "$F16" "$TMP/x.qfm" Q8_0
expect_rc "--checksum with a QFM: usage error" 2
run "$Q" --codec raw "$F16" "$TMP/x.gguf" Q8_0
expect_rc "--codec with a GGUF: usage error" 2
run "$QF_BIN/qforge-export" "$TMP/int4-g64.qfm" "$TMP/x.gguf"
expect_rc "export of affine types refused" 1
expect_err "export names the tensor and type" 'tensor "token_embd\.weight": type int4-g64 has no GGUF counterpart'

# NaN in the input: named, nothing left behind
cp "$F16" "$TMP/nan.gguf"
data=$("$QF_BIN/qforge-inspect" "$F16" | sed -n 's/.*tensor data at offset \([0-9,]*\).*/\1/p' | tr -d ,)
off=$("$QF_BIN/qforge-inspect" "$F16" | awk '$2 == "blk.0.attn_q.weight" { print $(NF-1) }')
printf '\000\176' | dd of="$TMP/nan.gguf" bs=1 seek=$((data + off + (5 * 64 + 3) * 2)) conv=notrunc 2>/dev/null
run "$Q" -q -t 2 "$TMP/nan.gguf" "$TMP/nan.qfm" int4-g32
expect_rc "NaN input: exit 1" 1
expect_err "NaN input: names tensor, row and column" 'tensor "blk\.0\.attn_q\.weight": row 5: NaN at column 3'
[ ! -e "$TMP/nan.qfm" ] && ok "NaN input: no output" || notok "NaN input" "output left behind"

ls -a "$TMP" | grep -q '^\..*qfm\.' && notok "no temp files left" "$(ls -a "$TMP")" || ok "no temp files left"
