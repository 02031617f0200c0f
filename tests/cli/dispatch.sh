#!/bin/sh
# qforge: the verb dispatcher.
. "$(dirname "$0")/lib.sh"
Q="$QF_BIN/qforge"
run "$Q" --help
expect_rc "qforge --help exits 0" 0
expect_out "lists inspect" '^  inspect +'
expect_out "lists sum" '^  sum +'
run "$Q"
expect_rc "no verb: usage error" 2
run "$Q" frobnicate
expect_rc "unknown verb: exit 2" 2
expect_err "unknown verb is named" "unknown verb 'frobnicate'"
run "$Q" sum --version
expect_out "the tool reports its own name" '^qforge-sum '
run "$Q" --version
expect_out "qforge --version" '^qforge [0-9]'
# found beside itself even when PATH does not have it
mkdir -p "$TMP/bin"
cp "$QF_BIN/qforge" "$QF_BIN/qforge-inspect" "$TMP/bin/"
PATH=/usr/bin:/bin run "$TMP/bin/qforge" inspect --version
expect_rc "dispatch finds the tool beside itself" 0
