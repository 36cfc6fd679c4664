#!/usr/bin/env bash
# Fuzzes the project DSL parser for a short while (CI calls this; default 20 s).
#
#   fuzz/run-brief.sh [SECONDS]
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, ...). On a stable toolchain
# RUSTC_BOOTSTRAP=1 unlocks them; a nightly toolchain works without it. The corpus is
# seeded from the example projects and the golden corpus of broken files, so the fuzzer
# starts from realistic documents. A crash leaves its input in fuzz/artifacts/.
set -euo pipefail

secs="${1:-20}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

corpus="corpus/parse_project"
mkdir -p "$corpus"
for f in ../examples/projects/*/.kaged/project.yaml ../crates/kaged-dsl/tests/corpus/*.yaml; do
    cp "$f" "$corpus/seed-$(basename "$(dirname "$(dirname "$f")")")-$(basename "$f")"
done

RUSTC_BOOTSTRAP=1 cargo fuzz run parse_project "$corpus" -- \
    -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048
