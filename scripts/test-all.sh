#!/usr/bin/env bash
# The whole test suite: lint, build, every test. Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
