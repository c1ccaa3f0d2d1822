#!/usr/bin/env bash
# Checks that a release build of `memring`, built as users build it (without the
# simulation's `sim` feature), contains none of the planted bugs' names, and that
# the simulation's binary does (so that this check can fail).
#
# Usage: scripts/no-planted-names.sh   (builds both in release mode first)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p memring --bin memring
cargo build --release --locked -p memring-sim --bin memring-sim

# The names, as `Plant::name` spells them.
names=$(sed -n '/pub fn name(self)/,/^            }/p' src/hooks.rs | grep -o '=> "[a-z-]*"' | tr -d '"' | sed 's/=> //')
count=$(echo "$names" | grep -c .)
if [ "$count" -lt 5 ]; then
    echo "could not read the planted bugs' names from src/hooks.rs (found $count)" >&2
    exit 1
fi

printable() {
    if command -v strings >/dev/null; then strings -a "$1"; else grep -a -o '[[:print:]]\{4,\}' "$1"; fi
}

found=$(printable target/release/memring | grep -F -o -e "$(echo "$names" | head -1)" $(echo "$names" | tail -n +2 | sed 's/^/-e /') || true)
if [ -n "$found" ]; then
    echo "the release build of memring contains planted-bug names:" >&2
    echo "$found" | sort -u >&2
    exit 1
fi
in_sim=$(printable target/release/memring-sim | grep -F -o -e "$(echo "$names" | head -1)" $(echo "$names" | tail -n +2 | sed 's/^/-e /') | sort -u | wc -l)
if [ "$in_sim" -ne "$count" ]; then
    echo "memring-sim should contain all $count planted-bug names; it has $in_sim" >&2
    exit 1
fi
echo "memring (release) holds none of the $count planted-bug names; memring-sim holds all of them"
