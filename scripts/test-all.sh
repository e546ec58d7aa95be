#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then lints, builds and runs every test.
# Exits non-zero as soon as any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

# Debian packages the tests need (peers for end-to-end tests are added here as they arrive).
APT_PACKAGES=(
    prometheus-node-exporter # node_exporter 1.5: the agent's collectors are compared with it
    python3-venv             # a virtualenv for the PyPI peers below
)

# PyPI packages the tests need, installed into a virtualenv under target/peers (the tests look
# there): python-logging-loki is a real Loki push client (crates/bongsu/tests/it/logs_api.rs).
PYLOKI_VENV=target/peers/pyloki

# Tests that use a peer fail (instead of skipping) when the peer is missing.
export BONGSU_REQUIRE_PEERS=1

# Installs APT_PACKAGES that are missing; a no-op (no apt call) when all are installed.
install_deps() {
    command -v cargo >/dev/null || { echo "cargo not found: install the Rust toolchain" >&2; exit 1; }
    local missing=()
    local p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# Creates the PyPI peers' virtualenv when the package is missing from it.
install_py_peers() {
    if ! "$PYLOKI_VENV/bin/python" -c 'import logging_loki' 2>/dev/null; then
        log "installing python-logging-loki into $PYLOKI_VENV"
        python3 -m venv "$PYLOKI_VENV"
        "$PYLOKI_VENV/bin/pip" install -q python-logging-loki
    fi
}

main() {
    install_deps
    install_py_peers

    log "format"
    cargo fmt --all -- --check

    log "clippy"
    cargo clippy --workspace --all-targets --locked -- -D warnings

    log "build (benches included, in the dev profile)"
    cargo build --workspace --all-targets --locked

    log "tests"
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --locked
    else
        cargo test --workspace --locked
    fi

    log "doc tests"
    cargo test --doc --workspace --locked

    log "all passed"
}

main "$@"
