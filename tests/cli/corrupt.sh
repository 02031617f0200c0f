#!/bin/sh
# Every corrupt fixture: exit 1, exactly one line on stderr, naming the file
# and the problem (fixtures/corrupt/*.tsv: file <TAB> expected substring).
. "$(dirname "$0")/lib.sh"
D="$FIX/corrupt"
n=0
for tsv in "$D"/*.tsv; do
    [ -f "$tsv" ] || continue
    while IFS="$(printf '\t')" read -r file want; do
        [ -n "$file" ] || continue
        case "$file" in \#*) continue ;; esac
        n=$((n + 1))
        for tool in qforge-inspect qforge-sum; do
            run "$QF_BIN/$tool" "$D/$file"
            line=$(head -1 "$TMP/err")
            lines=$(wc -l < "$TMP/err")
            if [ "$RC" -ne 1 ]; then
                notok "$tool $file" "exit $RC, expected 1: $line"
            elif [ "$lines" -ne 1 ]; then
                notok "$tool $file" "$lines lines on stderr"
            else
                case "$line" in
                "$tool: $D/$file: "*"$want"*) ok "$tool $file: $want" ;;
                *) notok "$tool $file" "got '$line', expected the path and '$want'" ;;
                esac
            fi
        done
    done < "$tsv"
done
[ $n -ge 30 ] && ok "at least 30 corrupt fixtures ($n)" || notok "corrupt fixture count" "$n < 30"
