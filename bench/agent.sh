#!/usr/bin/env bash
# Agent figures, one table:
#  1. footprint: `bongsu agent` (10 s interval, default collectors, inventory) next to
#     node_exporter scraped every 10 s, both for DURATION seconds: RSS (median, max) and CPU
#     (% of one core over the run);
#  2. shipping: a MIB-MiB file of ~100-byte lines tailed from its beginning and shipped to a
#     local `bongsu server` (embedded stream): MiB/s and lines/s until the server counted every
#     line.
#
# Usage: bench/agent.sh [DURATION_SECONDS] [MIB]   (defaults 300 and 256; DURATION 0 skips the
# footprint part). BONGSU_BENCH_BATCH_BYTES sets agent.shipping.max_batch_bytes for the shipping part.
# BONGSU_BIN=path runs that binary instead of building the release one.
# Binds 127.0.0.1:19400 (bongsu) and 127.0.0.1:19101 (node_exporter). Run it several times on a
# quiet machine and quote medians.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-300}"
mib="${2:-256}"
if [ -n "${BONGSU_BIN:-}" ]; then
  bin="$(realpath "$BONGSU_BIN")"
else
  cargo build --release --locked -p bongsu >&2
  bin="$PWD/target/release/bongsu"
fi
dir="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

"$bin" server --listen 127.0.0.1:19400 --data-dir "$dir/data" >"$dir/server.out" 2>"$dir/server.err" &
pids+=($!)
for _ in $(seq 1 300); do grep -q "listening on" "$dir/server.out" 2>/dev/null && break; sleep 0.1; done
admin="$(sed -n 's/^bongsu: admin token (shown once): //p' "$dir/server.out")"
lines_at_server() {
  curl -s -H "Authorization: Bearer $admin" http://127.0.0.1:19400/metrics |
    awk '/^bongsu_agent_items_total\{unit="lines"\}/ {print int($2)}' | tail -1
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
hz="$(getconf CLK_TCK)"

# 1. Footprint.
if [ "$secs" -gt 0 ]; then
token="$("$bin" agents enroll --name bench-footprint --data-dir "$dir/data" 2>/dev/null)"
mkdir -p "$dir/fp"
cat >"$dir/fp/agent.toml" <<TOML
[agent]
interval_seconds = 10
[agent.tailer]
checkpoint_path = "$dir/fp/tail.checkpoint"
[agent.shipping]
queue_dir = "$dir/fp/queue"
TOML
BONGSU_LOG=warn "$bin" agent --server http://127.0.0.1:19400 --token "$token" --config "$dir/fp/agent.toml" 2>"$dir/fp/agent.err" &
apid=$!; pids+=($apid)
prometheus-node-exporter --web.listen-address=127.0.0.1:19101 --no-collector.systemd >/dev/null 2>&1 &
npid=$!; pids+=($npid)
sleep 2
a0="$(cpu_ticks $apid)"; n0="$(cpu_ticks $npid)"; t0="$(date +%s.%N)"
: >"$dir/a.rss"; : >"$dir/n.rss"
end=$(( $(date +%s) + secs ))
while [ "$(date +%s)" -lt "$end" ]; do
  curl -s http://127.0.0.1:19101/metrics >/dev/null
  rss_kib $apid >>"$dir/a.rss"; rss_kib $npid >>"$dir/n.rss"
  sleep 10
done
a1="$(cpu_ticks $apid)"; n1="$(cpu_ticks $npid)"; t1="$(date +%s.%N)"
el="$(echo "$t1 - $t0" | bc -l)"
acpu="$(echo "($a1 - $a0) / $hz / $el * 100" | bc -l)"
ncpu="$(echo "($n1 - $n0) / $hz / $el * 100" | bc -l)"
kill $apid $npid; wait $apid $npid 2>/dev/null || true
fi

# 2. Shipping.
token="$("$bin" agents enroll --name bench-ship --data-dir "$dir/data" 2>/dev/null)"
mkdir -p "$dir/ship"
python3 - "$dir/ship/app.log" "$mib" <<'PY'
import sys
path, mib = sys.argv[1], int(sys.argv[2])
line = "2026-11-22T03:00:00.000Z INFO request served method=GET path=/api/v1/items status=200 dur_ms=%06d\n"
with open(path, "w") as f:
    n, size, chunk = 0, 0, []
    while size < mib << 20:
        s = line % (n % 1000000); chunk.append(s); size += len(s); n += 1
        if len(chunk) == 10000: f.write("".join(chunk)); chunk = []
    f.write("".join(chunk))
print(n, file=open(path + ".count", "w"))
PY
total="$(cat "$dir/ship/app.log.count")"
bytes="$(stat -c %s "$dir/ship/app.log")"
cat >"$dir/ship/agent.toml" <<TOML
[agent]
interval_seconds = 10
[agent.inventory]
enabled = false
[agent.tailer]
checkpoint_path = "$dir/ship/tail.checkpoint"
poll_interval_ms = 20
[[agent.logs]]
paths = ["$dir/ship/app.log"]
[agent.shipping]
queue_dir = "$dir/ship/queue"
queue_max_bytes = 2147483648
queue_segment_bytes = 67108864
linger_ms = 50
${BONGSU_BENCH_BATCH_BYTES:+max_batch_bytes = $BONGSU_BENCH_BATCH_BYTES}
TOML
base="$(lines_at_server)"; base="${base:-0}"
srv0="$(cpu_ticks "${pids[0]}")"
t0="$(date +%s.%N)"
BONGSU_LOG=warn "$bin" agent --server http://127.0.0.1:19400 --token "$token" --config "$dir/ship/agent.toml" 2>"$dir/ship/agent.err" &
spid=$!; pids+=($spid)
srss=0
while :; do
  n="$(lines_at_server)"; n="${n:-0}"
  r="$(rss_kib $spid)"; [ "$r" -gt "$srss" ] && srss="$r"
  [ $(( n - base )) -ge "$total" ] && break
  sleep 0.2
done
t1="$(date +%s.%N)"
sel="$(echo "$t1 - $t0" | bc -l)"
aticks="$(cpu_ticks $spid)"
srvticks="$(( $(cpu_ticks "${pids[0]}") - srv0 ))"
scpu="$(echo "$aticks / $hz / $sel * 100" | bc -l)"
gib="$(echo "$bytes / 1073741824" | bc -l)"

echo "# bongsu agent, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), footprint ${secs} s, shipping ${mib} MiB"
printf "| %-34s | %12s | %12s |\n" "figure" "bongsu agent" "node_exporter"
printf "| %-34s | %12s | %12s |\n" "----" "----" "----"
if [ "$secs" -gt 0 ]; then
printf "| %-34s | %12.1f | %12.1f |\n" "RSS median (MiB)" "$(median <"$dir/a.rss" | awk '{print $1/1024}')" "$(median <"$dir/n.rss" | awk '{print $1/1024}')"
printf "| %-34s | %12.1f | %12.1f |\n" "RSS max (MiB)" "$(sort -n "$dir/a.rss" | tail -1 | awk '{print $1/1024}')" "$(sort -n "$dir/n.rss" | tail -1 | awk '{print $1/1024}')"
printf "| %-34s | %12.3f | %12.3f |\n" "CPU (% of one core, 10 s interval)" "$acpu" "$ncpu"
fi
printf "| %-34s | %12.1f | %12s |\n" "file -> server (MiB/s)" "$(echo "$bytes / 1048576 / $sel" | bc -l)" "-"
printf "| %-34s | %12.0f | %12s |\n" "file -> server (lines/s)" "$(echo "$total / $sel" | bc -l)" "-"
printf "| %-34s | %12.1f | %12s |\n" "agent CPU while shipping (% core)" "$scpu" "-"
printf "| %-34s | %12.1f | %12s |\n" "agent RSS max while shipping (MiB)" "$(echo "$srss / 1024" | bc -l)" "-"
printf "| %-34s | %12s | %12s |\n" "lines counted by server / in file" "$(( n - base ))/$total" "-"
printf "| %-34s | %12.1f | %12s |\n" "agent CPU s per GiB shipped" "$(echo "$aticks / $hz / $gib" | bc -l)" "-"
printf "| %-34s | %12.1f | %12s |\n" "server CPU s per GiB shipped" "$(echo "$srvticks / $hz / $gib" | bc -l)" "-"
