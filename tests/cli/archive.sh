#!/bin/sh
# Model folders packed as archives. The same folder as a .tar, .tar.gz,
# .tar.zst and .zip (stored and deflated, at the root and one level down)
# converts to a GGUF byte-identical to the folder's, for a safetensors model
# and for a pytorch_model.bin model; inspect lists the members it uses, and
# says which are read in place. Every hostile archive in fixtures/malicious
# (archives.tsv) is refused by inspect, convert and quantize with one line
# naming the archive, the member and the reason, exit 1, and nothing is left
# behind: the temp folder ($TMPDIR) ends empty, the working folder too, and
# nothing appears under /tmp/qforge-pwned-*. An interrupted convert leaves
# no temp folder.
. "$(dirname "$0")/lib.sh"
rm -rf /tmp/qforge-pwned-*
M="$FIX/malicious"

have_zstd=0
tar --zstd -cf /dev/null -T /dev/null 2>/dev/null && have_zstd=1

# pack SRC_DIR NAME: NAME.tar (root), NAME.tar.gz and NAME.tar.zst (one level
# down), NAME-stored.zip (one level down), NAME-deflated.zip (root), in $W
pack() {
    src=$1 name=$2 parent=$(dirname "$1") base=$(basename "$1")
    tar -cf "$W/$name.tar" -C "$src" .
    tar -czf "$W/$name.tar.gz" -C "$parent" "$base"
    [ $have_zstd = 1 ] && tar --zstd -cf "$W/$name.tar.zst" -C "$parent" "$base"
    python3 - "$src" "$W/$name-stored.zip" "$W/$name-deflated.zip" "$base" <<'PY'
import os, sys, zipfile
src, stored, deflated, base = sys.argv[1:]
names = sorted(os.listdir(src))
with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as z:
    for n in names:
        z.write(os.path.join(src, n), base + "/" + n)
with zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as z:
    for n in names:
        z.write(os.path.join(src, n), n)
PY
}

W="$TMP/w"
mkdir -p "$W" "$TMP/t"
export TMPDIR="$TMP/t"

# --- the same tensors, byte for byte ------------------------------------------
same_as_folder() { # LABEL FOLDER ARCHIVE...: convert each, cmp with the folder's GGUF
    label=$1 folder=$2
    shift 2
    run "$QF_BIN/qforge-convert" -q --outtype f32 -o "$TMP/$label-folder.gguf" "$folder"
    expect_rc "$label: convert the folder" 0
    for ar in "$@"; do
        [ -f "$ar" ] || continue
        a=$(basename "$ar")
        run "$QF_BIN/qforge-convert" -q --outtype f32 -o "$TMP/$a.gguf" "$ar"
        expect_rc "$label: convert $a" 0
        expect_same "$label: $a gives the folder's GGUF" "$TMP/$label-folder.gguf" "$TMP/$a.gguf"
    done
}

mkdir -p "$W/src"
cp -r "$FIX/stories260K" "$W/src/stories"
pack "$W/src/stories" stories
same_as_folder stories "$W/src/stories" "$W/stories.tar" "$W/stories.tar.gz" "$W/stories.tar.zst" \
    "$W/stories-stored.zip"
# root-level deflated zip: its folder is named after the archive's stem
cp "$W/stories-deflated.zip" "$W/stories.zip"
same_as_folder stories-root "$W/src/stories" "$W/stories.zip"

if [ -f "$FIX/pytorch/llama/config.json" ]; then
    mkdir -p "$W/src/llama"
    cp "$FIX/pytorch/llama/"* "$W/src/llama/"
    cp "$FIX/tokenizers/bpe-tiny/tokenizer.json" "$FIX/tokenizers/bpe-tiny/tokenizer_config.json" "$W/src/llama/"
    pack "$W/src/llama" llama
    same_as_folder llama-bin "$W/src/llama" "$W/llama.tar" "$W/llama.tar.gz" "$W/llama.tar.zst" \
        "$W/llama-stored.zip"
    # the .bin's tensors written as a .safetensors (util_pt_to_st), packed as a
    # .tar.zst (else .tar): the same GGUF as the .bin folder
    mkdir -p "$W/src/llama-st/llama"
    cp "$W/src/llama/config.json" "$W/src/llama/tokenizer.json" "$W/src/llama/tokenizer_config.json" \
        "$W/src/llama-st/llama/"
    run "$QF_ROOT/$QF_BUILD/tests/util_pt_to_st" "$W/src/llama/pytorch_model.bin" \
        "$W/src/llama-st/llama/model.safetensors"
    expect_rc "llama: the .bin's tensors as a .safetensors" 0
    if [ $have_zstd = 1 ]; then st="$W/llama-st.tar.zst"; tar --zstd -cf "$st" -C "$W/src/llama-st" llama
    else st="$W/llama-st.tar"; tar -cf "$st" -C "$W/src/llama-st" llama; fi
    same_as_folder llama-st "$W/src/llama-st/llama" "$st"
    # tensor order differs (state-dict order vs sorted names): compare the
    # set of (name, sha256) of the two GGUFs
    tensors() { "$QF_BIN/qforge-sum" "$1" | awk '$3 ~ /:/ { sub(/^[^:]*:/, "", $3); print $3, $2 }' | sort; }
    tensors "$TMP/llama-bin-folder.gguf" > "$TMP/bin.sums"
    tensors "$TMP/$(basename "$st").gguf" > "$TMP/st.sums"
    if [ -s "$TMP/bin.sums" ] && cmp -s "$TMP/bin.sums" "$TMP/st.sums"; then
        ok "llama: .bin folder and .safetensors archive give the same $(wc -l <"$TMP/bin.sums") tensors, byte for byte"
    else
        notok "llama: .bin and .safetensors tensors" "$(diff "$TMP/bin.sums" "$TMP/st.sums" | head -5)"
    fi
fi

# --- inspect lists the members and the tensors ------------------------------------
run "$QF_BIN/qforge-inspect" "$W/stories.tar"
expect_rc "inspect a .tar" 0
expect_out "inspect names the archive and its folder" '^Archive:  .*stories\.tar \(model folder at the root'
expect_out "members of a .tar are read in place" '^  model\.safetensors +1,044,992  in place at byte [0-9]+$'
expect_out "inspect lists the tensors" 'model\.embed_tokens\.weight'
expect_out "file paths are shown inside the archive" '^File 0: .*stories\.tar:model\.safetensors '
run "$QF_BIN/qforge-inspect" "$W/stories.tar.gz"
expect_out "members of a .tar.gz are extracted" '^  stories/model\.safetensors +1,044,992  extracted$'
run "$QF_BIN/qforge-inspect" "$W/stories-stored.zip"
expect_out "stored zip members are read in place" '^  stories/model\.safetensors +1,044,992  in place at byte [0-9]+$'
run "$QF_BIN/qforge-inspect" --json "$W/stories-deflated.zip"
expect_out "inspect --json lists the members" '"in_place": false'
# the bytes in place are the member's bytes
off=$("$QF_BIN/qforge-inspect" "$W/stories.tar" | awk '$1 == "model.safetensors" { print $NF }')
if [ -n "$off" ] && tail -c +$((off + 1)) "$W/stories.tar" | head -c 1044992 | cmp -s - "$FIX/stories260K/model.safetensors"; then
    ok "the in-place offset points at the member's bytes"
else
    notok "in-place offset" "offset '$off'"
fi
[ -z "$(ls -A "$TMP/t")" ] && ok "temp folder empty after the successful runs" ||
    notok "temp folder after success" "$(ls -A "$TMP/t")"

# errors inside the model name the member, not the temp path
mkdir -p "$W/bad"
cp "$FIX/stories260K/"* "$W/bad/"
printf '{"architectures": ["NoSuchForCausalLM"]}\n' > "$W/bad/config.json"
tar -czf "$W/bad.tar.gz" -C "$W" bad
run "$QF_BIN/qforge-convert" -o "$TMP/bad.gguf" "$W/bad.tar.gz"
expect_rc "a bad model in an archive fails" 1
expect_err "its message names the member in the archive" 'bad\.tar\.gz:bad/config\.json'
if grep -q "qforge-" "$TMP/err" && grep -q "$TMP/t" "$TMP/err"; then notok "no temp path in the message" "$(cat "$TMP/err")"; else ok "no temp path in the message"; fi

# limits from the environment
QFORGE_ARCHIVE_MAX_MEMBERS=3 run "$QF_BIN/qforge-inspect" "$W/stories.tar"
expect_rc "QFORGE_ARCHIVE_MAX_MEMBERS is applied" 1
expect_err "member cap message" 'more than 3 members'
QFORGE_ARCHIVE_MAX_BYTES=100K run "$QF_BIN/qforge-inspect" "$W/stories.tar.gz"
expect_err "QFORGE_ARCHIVE_MAX_BYTES is applied" 'announce more than 102400 bytes'
QFORGE_ARCHIVE_MAX_RATIO=abc run "$QF_BIN/qforge-inspect" "$W/stories.tar.gz"
expect_rc "a bad limit is an error" 1
expect_err "bad limit message" 'QFORGE_ARCHIVE_MAX_RATIO: expected'

# --- hostile archives ----------------------------------------------------------------
# each in a fresh temp folder, from an empty working folder, with each tool
n=0
while IFS="$(printf '\t')" read -r file want; do
    [ -n "$file" ] || continue
    n=$((n + 1))
    for tool in inspect convert quantize; do
        box="$TMP/box-$n-$tool"
        mkdir -p "$box/tmp" "$box/cwd"
        case $tool in
        inspect) set -- "$M/$file" ;;
        convert) set -- -o "$box/cwd/out.gguf" "$M/$file" ;;
        quantize) set -- "$M/$file" "$box/cwd/out.gguf" Q8_0 ;;
        esac
        (cd "$box/cwd" && TMPDIR="$box/tmp" "$QF_BIN/qforge-$tool" "$@") >"$TMP/out" 2>"$TMP/err"
        RC=$?
        errline=$(cat "$TMP/err")
        if [ $RC -ne 1 ]; then
            notok "$tool refuses $file" "exit $RC: $errline"
        elif [ "$(wc -l <"$TMP/err")" -ne 1 ]; then
            notok "$tool refuses $file in one line" "$errline"
        elif ! grep -qF "qforge-$tool: $M/$file: " "$TMP/err" || ! grep -qF -- "$want" "$TMP/err"; then
            notok "$tool refuses $file with its reason" "got: $errline; want: $want"
        elif [ -n "$(ls -A "$box/tmp")" ] || [ -n "$(ls -A "$box/cwd")" ]; then
            notok "$tool leaves nothing behind for $file" "$(ls -RA "$box")"
        elif [ "$(ls -A "$box")" != "$(printf 'cwd\ntmp')" ]; then
            notok "$tool writes nothing beside the temp folder for $file" "$(ls -A "$box")"
        else
            ok "$tool refuses $file: $want"
        fi
    done
done < "$M/archives.tsv"
[ $n -ge 20 ] && ok "archives.tsv lists $n hostile archives" || notok "archives.tsv" "only $n cases"
if ls -d /tmp/qforge-pwned-* >/dev/null 2>&1; then
    notok "nothing written through a hostile name" "$(ls -d /tmp/qforge-pwned-*)"
else
    ok "nothing written through a hostile name"
fi

# --- an interrupted extraction leaves no temp folder ------------------------------
# The tool must still be extracting when the signal comes: if it finished
# first (a fast or idle machine), try again with a larger member.
big="$TMP/big"
mkdir -p "$big/src/m" "$TMP/t2"
cp "$FIX/stories260K/config.json" "$big/src/m/"
caught=0 rc=0
for mb in 64 192 512; do
    rm -f "$big/m.tar.gz"
    head -c $((mb * 1000000)) /dev/zero | tr '\000' 'x' > "$big/src/m/model.safetensors"
    tar -czf "$big/m.tar.gz" -C "$big/src" m
    (TMPDIR="$TMP/t2" QFORGE_ARCHIVE_MAX_RATIO=100000 exec "$QF_BIN/qforge-inspect" "$big/m.tar.gz" >/dev/null 2>&1) &
    pid=$!
    while kill -0 $pid 2>/dev/null && [ -z "$(ls -A "$TMP/t2")" ]; do sleep 0.01; done
    if kill -TERM $pid 2>/dev/null; then
        caught=1
        wait $pid 2>/dev/null
        rc=$?
        break
    fi
    wait $pid 2>/dev/null
done
if [ $caught = 0 ]; then
    notok "SIGTERM during extraction" "the tool finished before it could be signalled, 3 times"
elif [ $rc -ne 143 ]; then
    notok "SIGTERM ends the tool" "exit $rc"
elif [ -n "$(ls -A "$TMP/t2")" ]; then
    notok "SIGTERM removes the temp folder" "$(ls -RA "$TMP/t2")"
else
    ok "SIGTERM during extraction removes the temp folder"
fi
