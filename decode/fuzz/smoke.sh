#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 30) from a corpus seeded with the UDP payloads
# of ../shared/captures and the log lines of ../shared/logs and ingest/tests/data. Used by CI as a smoke test; run longer by hand (see FUZZING.md).
set -euo pipefail
secs=${1:-30}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi
corpus=$here/corpus
mkdir -p "$corpus"
(cd "$root" && cargo run -q --release -p sluice-decode --example seed_corpus -- ../shared/captures "$corpus" ../shared/logs ingest/tests/data)
(cd "$root" && cargo run -q --release -p sluice-sink --example seed_fuzz_corpus -- ../shared/captures "$corpus")
cd "$here"
for t in $(cargo fuzz list); do
    echo "fuzz smoke: $t ${secs}s"
    mkdir -p "$corpus/$t"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "$corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | tail -n 3
done
