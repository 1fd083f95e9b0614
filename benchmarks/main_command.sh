#!/usr/bin/env bash
# The README's main command (`autocompress search --budget 6`) on two commits, one after the other on this machine:
# each from a fresh clone, with an empty artifact cache and a fresh working directory, its wall time taken from the
# shell. Appends to results/benchmarks/main_command.md's raw lines (the table above them is written by hand from them).
#   bash benchmarks/main_command.sh OLD_COMMIT [NEW_COMMIT]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
for commit in "$1" "${2:-HEAD}"; do
  git clone -q "$repo" "$work/$commit" && git -C "$work/$commit" checkout -q "$commit"
  mkdir -p "$work/run-$commit" "$work/cache-$commit" && cd "$work/run-$commit"
  start=$(date +%s.%N)
  AUTOCOMPRESS_CACHE="$work/cache-$commit" PYTHONPATH="$work/$commit" autocompress search --budget 6 >out.txt 2>err.txt
  end=$(date +%s.%N)
  measured=$(grep -o "^[0-9]* trials measured" out.txt)
  echo "$(date -I) $commit: $(python -c "print(round($end - $start, 1))") s, $measured, $(grep -m1 '^baseline:' err.txt)" \
    | tee -a "$repo/results/benchmarks/main_command.md"
done
