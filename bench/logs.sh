#!/usr/bin/env bash
# Log figures, one table, one run: generates SIZE of realistic mixed logs (bongsu-loggen) to
# disk while ingesting the same lines into a log store (library level, compaction off); then
# stored bytes / raw as ingested, compaction (timed on its own) and stored / raw after it, per
# source; the scan speed of a regex matching nothing (brute force, and with a required literal
# the substring filter can use, apart), rare-token search latency, the filters' false-positive
# rate over absent random ids, label-only query latency; ripgrep over the same raw files as the brute-force anchor; and end-to-end ingest
# through a running `bongsu server` over the Loki push API (acknowledged = durable in the
# `logs` topic) and over syslog TCP when the server has a syslog receiver.
#
# Usage: [BENCH_PREBUILT=1] bench/logs.sh [--quick] [SIZE] [REPEATS]
#   SIZE     raw bytes to generate, e.g. 10G (default), 2G; --quick means 1G
#   REPEATS  repeats per query, medians reported (default 3)
# Needs SIZE + ~20 % free in $BENCH_DIR (default: a temp dir under $TMPDIR); deletes it at the end.
# Every step is bounded in time; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

size=10G
if [[ "${1:-}" == "--quick" ]]; then
    size=1G
    shift
fi
size="${1:-$size}"
repeats="${2:-3}"

# BENCH_PREBUILT=1 reuses the release binaries already in target/ (repeated runs on a busy machine).
if [[ "${BENCH_PREBUILT:-0}" != 1 ]]; then
    cargo build --release --locked -p bongsu-loggen --example logs_bench --bin bongsu-loggen >&2
    cargo build --release --locked -p bongsu >&2 || true
fi
have_server=0
[[ -x target/release/bongsu ]] && have_server=1

dir="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/bongsu-logs-bench.XXXXXX")"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# Wall seconds of a command, median of $repeats runs; its output goes to $dir/last.
time_median() {
    local i t0 t1
    for ((i = 0; i < repeats; i++)); do
        t0=$(date +%s.%N)
        timeout 600 "$@" >"$dir/last" 2>&1 || true
        t1=$(date +%s.%N)
        echo "$t1 - $t0" | bc -l
    done | median
}

echo "# bongsu logs, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), size $size, medians of $repeats"
echo
timeout 7200 ./target/release/examples/logs_bench "$dir" "$size" "$repeats"

# shellcheck disable=SC1091
source "$dir/needles"
raw_bytes=$(du -sb "$dir/raw" | cut -f1)
raw_gb=$(echo "$raw_bytes / 1000000000" | bc -l)
rg_row() {
    local what="$1" secs hits
    shift
    secs=$(time_median "$@")
    hits=$(awk -F: '{s += $NF} END {print s + 0}' "$dir/last")
    printf '| ripgrep %s `%s` | %.2f s wall, %.2f GB/s (%s matching lines) | anchor |\n' \
        "$what" "${*: -2:1}" "$secs" "$(echo "$raw_gb / $secs" | bc -l)" "$hits"
}
rg_row "1 thread, regex matching nothing" rg -j1 -c "$SCAN_RE" "$dir/raw"
rg_row "$(nproc) threads, regex matching nothing" rg -c "$SCAN_RE" "$dir/raw"
rg_row "$(nproc) threads, rare token" rg -F -c "$PRESENT" "$dir/raw"

# End to end through the server.
if [[ "$have_server" == 1 ]]; then
    data="$dir/server"
    mkdir -p "$data"
    token=$(./target/release/bongsu token create --name bench --scope write --data-dir "$data" | tail -1)
    ./target/release/bongsu server --listen 127.0.0.1:0 --data-dir "$data" >"$dir/server.log" 2>&1 &
    server_pid=$!
    addr=""
    for _ in $(seq 1 100); do
        addr=$(sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$dir/server.log" | head -1)
        [[ -n "$addr" ]] && break
        sleep 0.1
    done
    if [[ -z "$addr" ]]; then
        echo "| end to end | server did not start: $(tail -3 "$dir/server.log" | tr '\n' ' ') | |"
    else
        # The push run is bounded by its line count and a timeout.
        out=$(BONGSU_TOKEN="$token" timeout 600 ./target/release/bongsu-loggen --lines 2000000 loki "$addr" --batch 1M 2>&1 | tail -1)
        echo "| ingest end to end, Loki push (JSON, 1 MB batches, one connection) → durable \`logs\` topic | ${out#bongsu-loggen: } | ≥ 300k lines/s |"
        echo "| ingest end to end, syslog TCP | not measured: this server has no syslog receiver yet | ≥ 300k lines/s |"
    fi
else
    echo "| ingest end to end | not measured: no release build of \`bongsu\` in target/ | ≥ 300k lines/s |"
fi
echo
echo "(raw text $(echo "$raw_bytes / 1000000" | bc) MB in $(ls "$dir/raw" | wc -l) files; peak disk $(du -sh "$dir" | cut -f1))"
