#!/bin/sh
# qforge-tokenize: output formats, modes, model kinds, usage and runtime errors.
. "$(dirname "$0")/lib.sh"
T="$QF_BIN/qforge-tokenize"
G="$FIX/gguf/stories260K-f16.gguf"
C="$FIX/tokenizers/llama-tokenize/corpus.txt"

run "$T" --help
expect_rc "tokenize --help exits 0" 0
expect_out "tokenize --help prints usage on stdout" '^Usage: qforge-tokenize'

run "$T" --version
expect_rc "tokenize --version exits 0" 0
expect_out "tokenize --version" '^qforge-tokenize [0-9]+\.[0-9]+\.[0-9]+$'

run "$T" -p "x"
expect_rc "no model is a usage error" 2
expect_err "usage error names the problem" "missing -m MODEL"
expect_err "usage error suggests --help" "Try 'qforge-tokenize --help'"

run "$T" -m "$G"
expect_rc "no text is a usage error" 2
expect_err "missing text named" "missing -p TEXT or -f FILE"

run "$T" -m "$G" -p a -f "$C"
expect_rc "-p and -f together is a usage error" 2

run "$T" -m "$G" -p a --bogus
expect_rc "unknown option exits 2" 2
expect_err "unknown option is named" "unknown option '--bogus'"

run "$T" -m "$G" -p a extra
expect_rc "stray argument exits 2" 2

run "$T" -m "$G" -p "Hello world"
expect_rc "tokenize exits 0" 0
expect_out "BOS first, llama-tokenize's format" "^     1 -> '<s>'$"
expect_out "pieces with their spaces" "^   346 -> ' He'$"
[ "$(wc -l <"$TMP/out")" -eq 7 ] && ok "one line per token" || notok "one line per token" "$(cat "$TMP/out")"

run "$T" -m "$G" -p "Hello world" --ids
expect_out "--ids prints a list" '^\[1, 346, 306, 414, 263, 304, 341\]$'

run "$T" -m "$G" -p "Hello world" --ids --no-bos
expect_out "--no-bos" '^\[346, 306, 414, 263, 304, 341\]$'

run "$T" -m "$G" -p "<s>" --ids
expect_out "special text parsed by default" '^\[1, 1\]$'
run "$T" -m "$G" -p "<s>" --ids --no-parse-special
expect_out "--no-parse-special keeps it text" '^\[1, 410, 504, 419, 505\]$'
if grep -q '^\[1, 1\]$' "$TMP/out"; then notok "--no-parse-special differs" "$(cat "$TMP/out")"; else ok "--no-parse-special differs"; fi

run "$T" -m "$G" -p "$(printf 'tab\there')"
expect_out "control bytes escaped in pieces" "'\\\\t'|\\\\t"

# --lines against llama-tokenize's ids (the fixture copies)
run "$T" -m "$G" -f "$C" --lines --ids
expect_rc "--lines exits 0" 0
[ "$(wc -l <"$TMP/out")" -eq 61 ] && ok "--lines: 61 lines for 61 corpus lines" || notok "--lines count" "$(wc -l <"$TMP/out")"
if python3 - "$TMP/out" "$FIX/tokenizers/llama-tokenize/stories260K.llama-tokenize.bos.ids.json" <<'EOF'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if got == json.load(open(sys.argv[2])) else 1)
EOF
then ok "--lines --ids equals llama-tokenize on every line"; else notok "--lines --ids equals llama-tokenize" "differs"; fi

run "$T" -m "$G" -f "$C" --ids
if python3 - "$TMP/out" "$FIX/tokenizers/llama-tokenize/stories260K.llama-tokenize.whole.bos.ids.json" <<'EOF'
import json, sys
sys.exit(0 if json.loads(open(sys.argv[1]).read()) == json.load(open(sys.argv[2])) else 1)
EOF
then ok "whole file equals llama-tokenize"; else notok "whole file equals llama-tokenize" "differs"; fi

printf 'a\nb' >"$TMP/two.txt"
run "$T" -m "$G" -f "$TMP/two.txt" --lines
expect_out "--lines headers" '^# line 2$'
run "$T" -m "$G" -f - --lines --ids <"$TMP/two.txt"
[ "$(wc -l <"$TMP/out")" -eq 2 ] && ok "-f - reads stdin, last line without LF" || notok "stdin lines" "$(cat "$TMP/out")"

run "$T" -m "$G" -p "Hi" --json
expect_out "--json: ids and pieces" '^\{"ids":\[1,[0-9, ]+\],"pieces":\["<s>",'
run "$T" -m "$G" -f "$TMP/two.txt" --json --lines
expect_out "--json --lines: an array" '^\[\{"ids":'

: >"$TMP/empty.txt"
run "$T" -m "$G" -f "$TMP/empty.txt" --ids
expect_out "empty text: BOS only" '^\[1\]$'

# model kinds: the HF folder gives the same ids as its GGUF
run "$T" -m "$FIX/stories260K" -p "Hello world" --ids
expect_rc "HF folder exits 0" 0
expect_out "HF folder: same ids" '^\[1, 346, 306, 414, 263, 304, 341\]$'

# a folder with tokenizer files only (a byte-level BPE fixture)
run "$T" -m "$FIX/tokenizers/bpe-tiny" -p "ab" --ids -v
expect_rc "tokenizer-only folder exits 0" 0
expect_err "-v says the folder was read as tokenizer files" "reading its tokenizer files"

run "$T" -m "$TMP/nope.gguf" -p x
expect_rc "missing model exits 1" 1
expect_err_lines "missing model: one line" 1
expect_err "missing model: named" "^qforge-tokenize: $TMP/nope.gguf: "

run "$T" -m "$G" -f "$TMP/nope.txt"
expect_rc "missing text file exits 1" 1
expect_err "missing text file: named" "^qforge-tokenize: $TMP/nope.txt: No such file or directory$"

run "$T" -m "$FIX/gguf/stories260K-f16.gguf.sha256.txt" -p x
expect_rc "not a model exits 1" 1

mkdir -p "$TMP/emptydir"
run "$T" -m "$TMP/emptydir" -p x
expect_rc "folder without a model or tokenizer exits 1" 1
expect_err_lines "folder without a model: one line" 1

run "$QF_BIN/qforge" tokenize -m "$G" -p "Hello" --ids
expect_out "qforge tokenize dispatches" '^\[1, [0-9, ]+\]$'
