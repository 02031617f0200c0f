#!/bin/sh
# Smoke-run every libFuzzer target for FUZZ_SECONDS (default 60) each, seeded
# from the repository's fixtures; for CI (`make fuzz-smoke`, after `make fuzz`).
#
#   FUZZ_SECONDS=60 sh tests/fuzz/smoke.sh [build-fuzz]
#
# Prints "ok <target>: <runs> runs in <s> s" or "not ok <target>: ..." per
# target and ends with "N passed, N failed"; exits 1 if any target crashed,
# leaked, timed out or ran out of memory. The input that did it is kept as
# <dir>/crash-<target>-* (libFuzzer's artifact), to replay with
# `<dir>/<target> <file>`. Seed corpora live in a temporary folder.
DIR=${1:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
cd "$(dirname "$0")/../.." || exit 1
ls "$DIR"/fuzz_* >/dev/null 2>&1 || { echo "fuzz-smoke: no targets in $DIR (run make fuzz)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0

# seed <target> <corpus dir>: copy the fixtures that suit the target.
seed() {
    case "$1" in
    fuzz_gguf) cp fixtures/corrupt/gguf-*.gguf "$2"/ 2>/dev/null ;;
    fuzz_qfm) cp fixtures/corrupt/qfm-*.qfm fixtures/corrupt/qfm-valid.qfm.ok "$2"/ 2>/dev/null ;;
    fuzz_safetensors) cp fixtures/corrupt/st-*.safetensors "$2"/ 2>/dev/null ;;
    fuzz_pytorch)
        for f in fixtures/pytorch/*.pt fixtures/pytorch/sharded/*.bin fixtures/malicious/*.pt; do
            [ -f "$f" ] && cp "$f" "$2/$(echo "$f" | tr / _)"
        done ;;
    fuzz_archive)
        # the kind byte (0 tar, 1 tar.gz, 2 tar.zst, 3 zip) in front of each archive
        for f in fixtures/malicious/archive-*; do
            case "$f" in
            *.tar) k=0 ;; *.tar.gz) k=1 ;; *.tar.zst) k=2 ;; *.zip) k=3 ;; *) continue ;;
            esac
            { printf "\\$(printf '%03o' $k)"; cat "$f"; } > "$2/$(basename "$f")"
        done ;;
    fuzz_pickle)
        # the data.pkl members (stdlib python); the whole files otherwise
        python3 - "$2" fixtures/pytorch/*.pt fixtures/malicious/*.pt <<'PY' 2>/dev/null ||
import os, sys, zipfile
out = sys.argv[1]
for i, f in enumerate(sys.argv[2:]):
    try:
        z = zipfile.ZipFile(f)
        for m in z.infolist():
            if m.filename.endswith("data.pkl") and m.compress_type == 0:
                open(os.path.join(out, "%d-%s" % (i, os.path.basename(f))), "wb").write(z.read(m))
    except Exception:
        pass
PY
        cp fixtures/pytorch/*.pt "$2"/ ;;
    esac
    return 0
}

# run_one <binary>: fuzz it, leave "<rc> <runs>" in $TMP/<target>.rc
run_one() {
    t=$(basename "$1")
    mkdir -p "$TMP/$t"
    seed "$t" "$TMP/$t"
    "$1" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 -artifact_prefix="$DIR/crash-$t-" "$TMP/$t" >"$TMP/$t.log" 2>&1
    echo "$? $(sed -n 's/^stat::number_of_executed_units: *//p' "$TMP/$t.log")" > "$TMP/$t.rc"
}

# JOBS targets at a time (default 2: one per core here)
JOBS=${FUZZ_JOBS:-2}
running=0
for bin in "$DIR"/fuzz_*; do
    [ -x "$bin" ] || continue
    case "$bin" in *crash-*|*leak-*|*timeout-*|*oom-*|*.a) continue ;; esac
    run_one "$bin" &
    running=$((running + 1))
    if [ $running -ge "$JOBS" ]; then
        wait
        running=0
    fi
done
wait

for bin in "$DIR"/fuzz_*; do
    t=$(basename "$bin")
    [ -f "$TMP/$t.rc" ] || continue
    read -r rc runs < "$TMP/$t.rc"
    if [ "$rc" -eq 0 ]; then
        echo "ok $t: ${runs:-?} runs in $SECONDS_EACH s"
        pass=$((pass + 1))
    else
        echo "not ok $t: exit $rc: $(grep -m1 -E 'ERROR|runtime error|Sanitizer|timeout|out-of-memory' "$TMP/$t.log")"
        grep -A12 -m1 -E '==ERROR|runtime error' "$TMP/$t.log" | sed 's/^/    /'
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
