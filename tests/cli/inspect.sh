#!/bin/sh
# qforge-inspect: listings of the fixtures, JSON, usage errors.
. "$(dirname "$0")/lib.sh"
I="$QF_BIN/qforge-inspect"
G="$FIX/gguf/stories260K-Q4_K_M.gguf"

run "$I" --help
expect_rc "inspect --help exits 0" 0
expect_out "inspect --help prints usage on stdout" '^Usage: qforge-inspect'

run "$I" --version
expect_rc "inspect --version exits 0" 0
expect_out "inspect --version" '^qforge-inspect [0-9]+\.[0-9]+\.[0-9]+$'

run "$I"
expect_rc "inspect without FILE is a usage error" 2
expect_err "usage error names the problem and --help" "missing FILE"
expect_err "usage error suggests --help" "Try 'qforge-inspect --help'"

run "$I" --bogus "$G"
expect_rc "unknown option exits 2" 2
expect_err "unknown option is named" "unknown option '--bogus'"

run "$I" "$G"
expect_rc "inspect GGUF exits 0" 0
expect_out "GGUF header line" '^Format:   GGUF v3, little-endian, alignment 32$'
expect_out "GGUF key listed with type and value" 'general\.architecture +STRING +llama$'
expect_out "GGUF float key" 'llama\.attention\.layer_norm_rms_epsilon +FLOAT32 +1e-05$'
expect_out "GGUF string array abbreviated" 'tokenizer\.ggml\.tokens +\[STRING\] +512 items \["<unk>", "<s>", "</s>", .*, \.\.\.\]$'
expect_out "GGUF tensor row: name, type, shape, offset, bytes" 'blk\.0\.ffn_down\.weight +F16 +172 x 64 +[0-9]+ +22016$'
expect_out "GGUF totals" '^Total: 47 tensors, 260,032 elements'
expect_out "GGUF type tally" '^Types: F32 x11'
[ "$(grep -c 'blk\.' "$TMP/out")" -eq 45 ] && ok "GGUF lists all 45 block tensors" || notok "GGUF block tensor count" "$(grep -c 'blk\.' "$TMP/out")"

run "$I" --full "$G"
expect_out "--full prints whole arrays" '"<0xFF>"'

run "$I" --json "$G"
expect_rc "inspect --json exits 0" 0
expect_out "JSON has the format" '"format": "gguf"'
expect_out "JSON tensor has file_offset" '"file_offset": [0-9]+'
expect_out "JSON array marked truncated" '"truncated": true'

run "$I" "$FIX/stories260K"
expect_rc "inspect a model folder exits 0" 0
expect_out "folder: safetensors header" '^Format:   safetensors$'
expect_out "folder: metadata shown" '__metadata__ format = pt'
expect_out "folder: tensor row with row-major shape" 'model\.layers\.0\.mlp\.down_proj\.weight +F32 +64 x 172 '
expect_out "folder: totals" '^Total: 47 tensors, 260,032 elements, 1,040,128 bytes'

run "$I" "$FIX/stories260K/model.safetensors"
expect_rc "inspect a .safetensors file exits 0" 0

run "$I" --json "$FIX/stories260K"
expect_out "folder JSON lists files" '"header_size": [0-9]+'

run "$I" "$TMP/nope.gguf"
expect_rc "missing file exits 1" 1
expect_err_lines "missing file: one line" 1
expect_err "missing file: names it" "^qforge-inspect: $TMP/nope.gguf: No such file or directory$"

printf 'hello world, not a model' > "$TMP/junk.dat"
run "$I" "$TMP/junk.dat"
expect_rc "junk file exits 1" 1
expect_err "junk file named" "junk.dat: not a GGUF, safetensors or PyTorch file"
cp "$TMP/junk.dat" "$TMP/junk.bin"
run "$I" "$TMP/junk.bin"
expect_err "junk .bin: said what a checkpoint should be" "junk.bin: not a PyTorch checkpoint"

run "$QF_BIN/qforge" inspect "$G"
expect_rc "qforge inspect dispatches" 0
expect_out "dispatched output" '^Format:   GGUF v3'
