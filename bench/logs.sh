#!/usr/bin/env bash
# Log figures, one table, one run: generates SIZE of realistic mixed logs (bongsu-loggen) to
# disk while ingesting the same lines into a log store (library level, compaction off); then
# stored bytes / raw as ingested, compaction (timed on its own) and stored / raw after it, per
# source; the scan speed of a regex matching nothing (brute force, and with a required literal
# the substring filter can use, apart), rare-token search latency, the filters' false-positive
# rate over absent random ids, label-only query latency; ripgrep over the same raw files as the
# brute-force anchor; and end-to-end ingest through a running `bongsu server` (`bongsu-loggen`
# as the sender) over the Loki push API and over syslog TCP, until the logs consumer has
# applied every line to the log store.
#
# Usage: [BENCH_PREBUILT=1] bench/logs.sh [--quick] [SIZE] [REPEATS]
#   SIZE     raw bytes to generate, e.g. 10G (default), 2G; --quick means 1G
#   REPEATS  repeats per query, medians reported (default 3)
#   E2E_LINES lines per end-to-end run (default 1000000)
#   E2E_CONNECTIONS senders at once in the end-to-end rows, besides one (default 4)
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

# End to end through the server: one sender on one connection, the lines counted once the
# logs consumer has applied them to the log store (bongsu_logs_entries_applied_total); server
# CPU (user + system from /proc/PID/stat) per million lines alongside, steadier than wall time
# on a shared machine.
e2e_lines="${E2E_LINES:-1000000}"
e2e_conns="${E2E_CONNECTIONS:-4}"
if [[ "$have_server" == 1 ]]; then
    data="$dir/server"
    mkdir -p "$data"
    token=$(./target/release/bongsu token create --name bench --scope write --data-dir "$data" | tail -1)
    reader=$(./target/release/bongsu token create --name bench-read --scope read --data-dir "$data" | tail -1)
    BONGSU_SYSLOG_TCP_LISTEN=127.0.0.1:0 ./target/release/bongsu server --listen 127.0.0.1:0 --data-dir "$data" >"$dir/server.log" 2>&1 &
    server_pid=$!
    addr=""
    syslog_addr=""
    for _ in $(seq 1 100); do
        addr=$(sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$dir/server.log" | head -1)
        syslog_addr=$(sed -n 's|.*syslog: listening on tcp \([0-9.:]*\).*|\1|p' "$dir/server.log" | head -1)
        [[ -n "$addr" && -n "$syslog_addr" ]] && break
        sleep 0.1
    done
    server_cpu() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
    applied() {
        curl -s -H "Authorization: Bearer $reader" "http://$addr/metrics" |
            awk '/^bongsu_logs_entries_applied_total/ {printf "%d", $2}'
    }
    # Runs a sender, waits (at most 600 s) until the store has applied `e2e_lines` more lines,
    # prints "<lines/s wall>|<server CPU s per M lines>|<sender summary>".
    e2e() {
        local before c0 t0 t1 c1 now out
        before=$(applied)
        c0=$(server_cpu)
        t0=$(date +%s.%N)
        out=$(timeout 600 "$@" 2>&1 | tail -1) || true
        while now=$(applied); [[ $(( ${now:-0} - ${before:-0} )) -lt $e2e_lines ]]; do
            [[ $(echo "$(date +%s.%N) - $t0 > 600" | bc) == 1 ]] && break
            sleep 0.05
        done
        t1=$(date +%s.%N)
        c1=$(server_cpu)
        printf '%.0fk|%.2f|%s\n' "$(echo "$e2e_lines / ($t1 - $t0) / 1000" | bc -l)" \
            "$(echo "($c1 - $c0) / $(getconf CLK_TCK) / ($e2e_lines / 1000000)" | bc -l)" "${out#bongsu-loggen: }"
    }
    if [[ -z "$addr" || -z "$syslog_addr" ]]; then
        echo "| end to end | server did not start: $(tail -3 "$dir/server.log" | tr '\n' ' ') | |"
    else
        for conns in 1 "$e2e_conns"; do
            what="one connection"
            [[ "$conns" != 1 ]] && what="$conns connections"
            IFS='|' read -r rate cpu sent < <(e2e env BONGSU_TOKEN="$token" ./target/release/bongsu-loggen --connections "$conns" --lines "$e2e_lines" loki "$addr" --batch 1M)
            echo "| ingest end to end, Loki push (JSON, 1 MB batches, $what, $e2e_lines lines) → applied in the log store | $rate lines/s wall, server $cpu CPU s per M lines (sender: $sent) | ≥ 300k lines/s |"
            IFS='|' read -r rate cpu sent < <(e2e env BONGSU_TOKEN="$token" ./target/release/bongsu-loggen --connections "$conns" --seed 3 --lines "$e2e_lines" loki "$addr" --protobuf --batch 1M)
            echo "| ingest end to end, Loki push (protobuf + snappy, 1 MB batches, $what, $e2e_lines lines) → applied in the log store | $rate lines/s wall, server $cpu CPU s per M lines (sender: $sent) | ≥ 300k lines/s |"
            IFS='|' read -r rate cpu sent < <(e2e ./target/release/bongsu-loggen --connections "$conns" --seed 2 --lines "$e2e_lines" syslog "$syslog_addr")
            echo "| ingest end to end, syslog TCP (RFC 5424, octet counting, $what, $e2e_lines lines) → applied in the log store | $rate lines/s wall, server $cpu CPU s per M lines (sender: $sent) | ≥ 300k lines/s |"
        done
    fi
else
    echo "| ingest end to end | not measured: no release build of \`bongsu\` in target/ | ≥ 300k lines/s |"
fi
echo
echo "(raw text $(echo "$raw_bytes / 1000000" | bc) MB in $(ls "$dir/raw" | wc -l) files; peak disk $(du -sh "$dir" | cut -f1))"
