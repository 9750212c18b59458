#!/usr/bin/env bash
# Builds the fuzz corpus from the zoo specs and the malformed-spec corpus. The first byte of each
# input picks the spelling (even: YAML, odd: DSL).
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus/compile
mkdir -p "$out"
i=0
for f in specs/*.yaml specs/*.cnn specs/lib/*.yaml specs/lib/*.cnn tests/bad/*.yaml tests/bad/*.cnn; do
    i=$((i + 1))
    case $f in *.cnn) printf '\x01' ;; *) printf '\x00' ;; esac > "$out/seed$i"
    cat "$f" >> "$out/seed$i"
done
echo "$i seeds in $out"
