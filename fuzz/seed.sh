#!/bin/sh
# Seed the fuzz corpora (fuzz/corpus/, not committed) from the committed seeds in fuzz/seeds/
# and from the shipped programmes (public demonstration data). Safe to run again: it only adds
# files. Run from anywhere: sh fuzz/seed.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
for dir in "$here"/seeds/*/; do
    target=$(basename "$dir")
    mkdir -p "$here/corpus/$target"
    cp "$dir"* "$here/corpus/$target/"
done
# Every shipped programme, reform and sets file, and the scenario files (TOML too).
mkdir -p "$here/corpus/programme_file"
for f in "$root"/programmes/*.toml "$root"/programmes/reforms/*.toml "$root"/programmes/tests/*.toml; do
    sub=$(basename "$(dirname "$f")")
    cp "$f" "$here/corpus/programme_file/$sub-$(basename "$f")"
done
for target in "$here"/corpus/*/; do
    echo "$(basename "$target"): $(ls "$target" | wc -l) files"
done
