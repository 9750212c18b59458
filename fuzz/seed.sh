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
# Generated shapes that stress the front end's work limits, each under libFuzzer's 8 KiB input
# length: a flat operator chain near the 256-operator limit and past it, a long list, a long line,
# modules calling the one below three times 12 levels deep, and nested repeats.
seed() { i=$((i + 1)); { printf '\x00'; cat; } > "$out/seed$i"; }
chain() { local n=$1 s="1"; for ((k = 1; k < n; k++)); do s="$s + 1"; done; printf '%s' "$s"; }
seed < <(printf 'model: m\ninput: [3, 8, 8]\nbody:\n  - conv(%s, 1)\n' "$(chain 250)")
seed < <(printf 'model: m\ninput: [3, 8, 8]\nbody:\n  - conv(%s, 1)\n' "$(chain 300)")
seed < <(printf 'model: m\ninput: [3, 8, 8]\nbody:\n  - conv(max([%s]), 1)\n' "$(seq -s ', ' 1 1500)")
seed < <(printf 'model: m\ninput: [3, 8, 8]\nbody: [%s]\n' "$(yes identity | head -n 700 | paste -sd, -)")
seed < <(
    printf 'modules:\n  m0:\n    body: [identity]\n'
    for ((k = 1; k <= 12; k++)); do printf '  m%d:\n    body: [m%d, m%d, m%d]\n' $k $((k - 1)) $((k - 1)) $((k - 1)); done
    printf 'model: m\ninput: [3, 8, 8]\nbody: [m12]\n'
)
seed < <(printf 'model: m\ninput: [3, 8, 8]\nbody:\n  - repeat: 1000\n    body:\n      - repeat: 1000\n        body:\n          - repeat: 1000\n            body: [identity]\n')
echo "$i seeds in $out"
