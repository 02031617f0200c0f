#!/bin/sh
# make bench: every benchmark in bench/, one after the other.
#   sh bench/run.sh [BUILD]     (BENCH_DIR, THREADS, REPEAT as each script says)
BUILD=${1:-build}
cd "$(dirname "$0")/.." || exit 1
for b in bench/*.sh; do
    case "$b" in */run.sh) continue ;; esac
    echo "== $b"
    sh "$b" "$BUILD" || echo "bench: $b failed"
done
