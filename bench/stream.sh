#!/usr/bin/env bash
# Embedded stream figures, one table: durable append throughput (100 B and 1 KiB records,
# 1 and 4 partitions, one producer), consume throughput, end-to-end latency p50/p99 at half
# the measured maximum with fsync on, and recovery time of a 1 GiB active segment.
#
# Usage: bench/stream.sh [SECONDS_PER_MEASUREMENT]   (default 3)
# Needs ~1.5 GiB free in $TMPDIR. The machine's load changes the figures: run it several
# times and quote medians.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-3}"
cargo build --release --locked -p bongsu-stream --example stream_bench >&2
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
echo "# bongsu-stream, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)"
./target/release/examples/stream_bench "$dir/run" "$secs"
