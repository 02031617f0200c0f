#!/bin/sh
# qforge-convert against llama.cpp's convert_hf_to_gguf.py: every model
# folder in ../shared/models, every outtype the golden set has. The strongest
# check first: the whole file's sha256 equals the golden one (FILES.tsv has it
# even for files not shipped). When it differs, say whether the tensors
# (per-tensor manifest) or the metadata differ.
: "${QF_GOLDEN:?}" "${QF_BIN:?}"
MODELS="${QF_MODELS:-$QF_GOLDEN/../models}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

golden_sha() { # golden_sha DIR FILE
    awk -F'\t' -v f="$2" '$1 == f { print $3 }' "$QF_GOLDEN/$1/FILES.tsv" 2>/dev/null
}

for model in stories260K tiny-llama-256 tiny-llama-256-sharded tiny-llama-256-pt mix-probe-12L; do
    gdir=$model
    case $model in tiny-llama-256-*) gdir=tiny-llama-256 ;; esac
    for t in f32 f16 bf16 q8_0; do
        name="$model-$t.gguf"
        want=$(golden_sha "$gdir" "$name")
        man="$QF_GOLDEN/$gdir/manifests/$name.sha256.txt"
        [ -n "$want" ] || [ -f "$man" ] || continue
        mkdir -p "$TMP/$model"
        out="$TMP/$model/$name"
        if ! "$QF_BIN/qforge-convert" -q --outtype "$t" -t 2 --checksum -o "$out" "$MODELS/$model" 2>"$TMP/err"; then
            echo "not ok convert $name: $(cat "$TMP/err")"
            continue
        fi
        got=$(sha256sum "$out" | cut -d' ' -f1)
        if [ -z "$want" ]; then
            # only the per-tensor manifest is in the golden set: same tensors, same order
            if (cd "$TMP/$model" && "$QF_BIN/qforge-sum" "$name") | cmp -s - "$man"; then
                echo "ok convert $name: tensors byte-identical to llama.cpp's, in its order"
            else
                echo "not ok convert $name: tensors or their order differ from $man"
            fi
        elif [ "$got" = "$want" ]; then
            echo "ok convert $name: byte-identical to llama.cpp's"
        else
            man="$QF_GOLDEN/$gdir/manifests/$name.sha256.txt"
            why="file differs"
            if [ -f "$man" ]; then
                if "$QF_BIN/qforge-sum" -q --check "$man" "$out" > "$TMP/chk" 2>&1; then
                    why="tensors identical, metadata differs"
                else
                    why="tensors differ: $(head -3 "$TMP/chk" | tr '\n' ' ')"
                fi
            fi
            echo "not ok convert $name: $why"
        fi
        # the manifest written while converting checks the file it describes
        if "$QF_BIN/qforge-sum" -q --check "$out.sha256" > "$TMP/chk" 2>&1; then
            echo "ok convert $name --checksum manifest verifies"
        else
            echo "not ok convert $name --checksum: $(head -2 "$TMP/chk" | tr '\n' ' ')"
        fi
    done
done

# names llama.cpp derives for these folders (golden README)
for m in sharded pt; do
    f="$TMP/tiny-llama-256-$m/tiny-llama-256-$m-f32.gguf"
    [ -f "$f" ] || continue
    want="Tiny Llama 256 $(echo $m | sed 's/^./\U&/')"
    "$QF_BIN/qforge-inspect" --json "$f" > "$TMP/j"
    if grep -q "\"value\": \"$want\"" "$TMP/j" && ! grep -q '"general.basename"\|"general.version"' "$TMP/j"; then
        echo "ok $m: general.name '$want', no basename or version"
    else
        echo "not ok $m: naming keys differ"
    fi
done

# sharded and single-file copies: the same tensors, byte for byte
if [ -f "$TMP/tiny-llama-256/tiny-llama-256-f32.gguf" ] && [ -f "$TMP/tiny-llama-256-sharded/tiny-llama-256-sharded-f32.gguf" ]; then
    pairs() { "$QF_BIN/qforge-sum" "$1" | sed '$d' | awk '{ sub(/.*:/, "", $3); print $3, $2 }' | sort; }
    pairs "$TMP/tiny-llama-256/tiny-llama-256-f32.gguf" > "$TMP/a"
    pairs "$TMP/tiny-llama-256-sharded/tiny-llama-256-sharded-f32.gguf" > "$TMP/b"
    if [ -s "$TMP/a" ] && cmp -s "$TMP/a" "$TMP/b"; then
        echo "ok sharded and single-file conversions have the same tensors"
    else
        echo "not ok sharded vs single-file tensors differ"
    fi
fi
