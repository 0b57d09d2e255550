#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (real RocksDB on disk,
# crash test with SIGKILL), then end-to-end tests that start the real binary on
# loopback ports and talk to it with real clients.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --all-targets
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi

target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
POSTHORN_BIN="$target/debug/posthorn" python3 -m pytest -q tests/
