#!/usr/bin/env bash
# Metrics figures, side by side in one run: bongsu (release) vs Prometheus 2.42 vs
# VictoriaMetrics 1.79.5, each alone on the machine in turn, fed the same generated
# node_exporter-like workload by bongsu-loadgen:
#
#   1. idle RSS of a fresh server;
#   2. ingest: HOSTS x 344 series (300 hosts = 103k active series), the last hour at a 15 s
#      interval, backfilled by remote_write as fast as each accepts (bodies encoded before
#      the clock starts); samples/s accepted, and seconds until every sample is queryable;
#   3. RSS after ingest, per active series;
#   4. bytes per sample on disk, index included, after each system's own compaction
#      (Prometheus and bongsu: a snapshot, which writes the head as a block; VictoriaMetrics:
#      force merge), and the part of it that is index;
#   5. query latency p50/p99 of the dashboard and alert query set (63 queries, instant and
#      range over the hour at a 60 s step, 3 rounds);
#   6. a 6-month, 1-hour-step query of one series over backfilled history (one host, 4
#      series, 180 days at 15 s, sent by remote_write in time order to each).
#
# Usage: bench/metrics.sh            (HOSTS=300 HISTORY_DAYS=180 ROUNDS=3 SYSTEMS="bongsu prometheus vm")
#        BUILD=0 LG=path/to/bongsu-loadgen BONGSU=path/to/bongsu bench/metrics.sh
# Ports 29400 (bongsu), 29490 (Prometheus), 29428 (VictoriaMetrics) on 127.0.0.1. Needs
# ~3 GiB free in $TMPDIR, deleted at the end; takes about 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

HOSTS="${HOSTS:-300}"
MINUTES="${MINUTES:-60}"   # length of the ingested window; 4 samples per series per minute
HISTORY_DAYS="${HISTORY_DAYS:-180}"
HISTORY_SERIES="${HISTORY_SERIES:-1}"   # node_cpu_seconds_total{cpu="0",mode="idle"} first
ROUNDS="${ROUNDS:-3}"
SYSTEMS="${SYSTEMS:-bongsu prometheus vm}"
BP=29400 PP=29490 VP=29428

for tool in prometheus victoria-metrics curl; do
    command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install prometheus victoria-metrics curl" >&2; exit 1; }
done
# BUILD=0 with LG=... BONGSU=... runs prebuilt binaries instead.
if [ "${BUILD:-1}" = 1 ]; then cargo build --release --locked -p bongsu -p bongsu-loadgen >&2; fi
LG="${LG:-./target/release/bongsu-loadgen}"
BONGSU="${BONGSU:-./target/release/bongsu}"

dir="$(mktemp -d "${TMPDIR:-/tmp}/bongsu-bench-metrics.XXXXXX")"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

# The workload's time range is fixed once so every system gets identical samples.
END="$(( $(date +%s) / 60 * 60 ))"
HIST_END="$(( END / 3600 * 3600 - 7200 ))"
TOKEN=""
HIST_SAMPLES=1

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
field() { sed -n "s/.*[[:space:]]$1=\([^ ]*\).*/\1/p"; }

wait_http() { # url, seconds
    local deadline=$(( $(date +%s) + $2 ))
    until curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$1" 2>/dev/null; do
        (( $(date +%s) < deadline )) || { echo "no answer from $1 within $2 s" >&2; return 1; }
        sleep 0.2
    done
}

# Prints the value of a PromQL instant query's first sample, or nothing.
instant() { # base, expr
    curl -fsS -H "Authorization: Bearer $TOKEN" --data-urlencode "query=$2" --data-urlencode "time=$END" \
        "$1/api/v1/query" 2>/dev/null | sed -n 's/.*"value":\[[^,]*,"\([^"]*\)"\].*/\1/p'
}

# Waits until every ingested sample is queryable; prints the seconds waited.
wait_visible() { # base, expected count, timeout
    local t0 deadline got
    t0=$(date +%s.%N); deadline=$(( $(date +%s) + $3 ))
    while :; do
        got="$(instant "$1" 'sum(count_over_time(node_time_seconds[2h]))')"
        [ "${got:-0}" = "$2" ] && break
        (( $(date +%s) < deadline )) || { echo "only ${got:-0} of $2 samples visible after $3 s" >&2; echo "n/a"; return; }
        sleep 0.5
    done
    echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}'
}

start_system() { # name, data dir -> sets PID, BASE, WRITE
    local name="$1" data="$2"
    mkdir -p "$data"
    case "$name" in
    bongsu)
        # Raw samples kept a year, like the peers (-retentionPeriod=1y, retention.time=1y).
        BONGSU_TSDB_RETENTION_RAW=8760h "$BONGSU" server --listen "127.0.0.1:$BP" --data-dir "$data" >"$data.out" 2>"$data.err" &
        PID=$!; BASE="http://127.0.0.1:$BP"
        local deadline=$(( $(date +%s) + 30 ))
        until grep -q 'listening on' "$data.out" 2>/dev/null; do
            (( $(date +%s) < deadline )) || { cat "$data.err" >&2; return 1; }
            sleep 0.2
        done
        TOKEN="$(sed -n 's/^bongsu: admin token (shown once): //p' "$data.out")"
        ;;
    prometheus)
        printf 'global:\n  scrape_interval: 15s\n' >"$data.yml"
        prometheus --config.file="$data.yml" --storage.tsdb.path="$data" \
            --web.listen-address="127.0.0.1:$PP" --web.enable-remote-write-receiver \
            --web.enable-admin-api --storage.tsdb.retention.time=1y >"$data.log" 2>&1 &
        PID=$!; BASE="http://127.0.0.1:$PP"; TOKEN=""
        ;;
    vm)
        victoria-metrics -httpListenAddr="127.0.0.1:$VP" -storageDataPath="$data" -retentionPeriod=1y \
            -influxListenAddr= -graphiteListenAddr= -opentsdbListenAddr= \
            -search.latencyOffset=0s -search.disableCache >"$data.log" 2>&1 &
        PID=$!; BASE="http://127.0.0.1:$VP"; TOKEN=""
        ;;
    esac
    pids+=("$PID")
    WRITE="$BASE/api/v1/write"
    if [ "$name" = vm ]; then wait_http "$BASE/health" 60; else wait_http "$BASE/-/ready" 60; fi
}

stop_system() {
    kill "$PID" 2>/dev/null || true
    local deadline=$(( $(date +%s) + 90 ))
    while kill -0 "$PID" 2>/dev/null; do
        (( $(date +%s) < deadline )) || { kill -9 "$PID" 2>/dev/null || true; }
        sleep 0.2
    done
    wait "$PID" 2>/dev/null || true
}

# Bytes on disk of a system's store after its own compaction, then the part of them that
# is index (series, labels, postings): "total index".
disk_bytes() { # name, data dir
    local snap
    case "$1" in
    bongsu)
        # Like Prometheus: a snapshot writes the head's samples as a block (encoded as the
        # cut and the compactor encode them) beside hard links to the blocks already cut.
        # The stream is the log the samples came through, kept for stream.retention_ms and
        # reported apart.
        snap="$(curl -fsS -XPOST -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/admin/tsdb/snapshot" | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')"
        echo "$(du -sb "$2/tsdb/snapshots/$snap" | cut -f1) $(find "$2/tsdb/snapshots/$snap" -name index -print0 | du -cb --files0-from=- | tail -1 | cut -f1)"
        ;;
    prometheus)
        snap="$(curl -fsS -XPOST "$BASE/api/v1/admin/tsdb/snapshot" | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')"
        echo "$(du -sb "$2/snapshots/$snap" | cut -f1) $(find "$2/snapshots/$snap" -name index -print0 | du -cb --files0-from=- | tail -1 | cut -f1)"
        ;;
    vm)
        curl -fsS "$BASE/internal/force_flush" >/dev/null
        curl -fsS "$BASE/internal/force_merge" >/dev/null
        sleep 5
        echo "$(du -sb "$2/data" "$2/indexdb" | awk '{s += $1} END {print s}') $(du -sb "$2/indexdb" | cut -f1)"
        ;;
    esac
}

declare -A R
run_system() {
    local name="$1" data="$dir/$1"
    log "$name: start (fresh)"
    start_system "$name" "$data"
    sleep 5
    R[$name,idle]=$(( $(rss_kib "$PID") / 1024 ))

    log "$name: ingest $HOSTS hosts x $MINUTES min"
    local out
    out="$($LG --token "$TOKEN" backfill --hosts "$HOSTS" --end "$END" --duration "${MINUTES}m" \
        --hosts-per-request 4 --steps-per-request 8 --concurrency 4 --pregenerate --url "$WRITE")"
    log "$out"
    R[$name,rate]="$(echo "$out" | field samples_per_s)"
    R[$name,series]="$(echo "$out" | field series)"
    local samples; samples="$(echo "$out" | field samples)"
    R[$name,visible]="$(wait_visible "$BASE" "$(( HOSTS * MINUTES * 4 ))" 180)"
    local rss series="${R[$name,series]}"
    rss="$(rss_kib "$PID")"
    R[$name,rss]=$(( rss / 1024 ))
    R[$name,rss_series]=$(( rss * 1024 / series ))

    log "$name: queries"
    out="$($LG --token "$TOKEN" query-bench --url "$BASE" --end "$END" --duration "${MINUTES}m" --step 60s --rounds "$ROUNDS")"
    log "$out"
    R[$name,p50]="$(echo "$out" | field p50_ms)"; R[$name,p99]="$(echo "$out" | field p99_ms)"
    R[$name,qerr]="$(echo "$out" | field errors)"

    local bytes; bytes="$(disk_bytes "$name" "$data")"
    R[$name,bps]="$(awk -v b="${bytes% *}" -v s="$samples" 'BEGIN { if (b > 0) printf "%.3f", b / s; else print "n/a" }')"
    R[$name,index_bps]="$(awk -v b="${bytes#* }" -v s="$samples" 'BEGIN { if (b > 0) printf "%.3f", b / s; else print "n/a" }')"
    if [ "$name" = bongsu ]; then
        R[$name,stream_bps]="$(du -sb "$data/stream" 2>/dev/null | awk -v s="$samples" '{printf "%.3f", $1 / s}')"
    fi
    stop_system
    rm -rf "$data"

    log "$name: 6-month history"
    start_system_history "$name" "$data"
    out="$($LG --token "$TOKEN" query-bench --url "$BASE" --end "$HIST_END" --duration "${HISTORY_DAYS}d" --step 1h --rounds 5 \
        --expr 'rate(node_cpu_seconds_total{cpu="0",mode="idle"}[1h])')"
    log "$out"
    local hbytes; hbytes="$(disk_bytes "$name" "$data")"
    R[$name,hist_bps]="$(awk -v b="${hbytes% *}" -v s="$HIST_SAMPLES" 'BEGIN { if (b > 0) printf "%.3f", b / s; else print "n/a" }')"
    if [ "$(echo "$out" | field errors)" = 0 ]; then
        R[$name,hist]="$(echo "$out" | field p50_ms)"
    else
        R[$name,hist]="error"
    fi
    stop_system
    rm -rf "$data"
}

start_system_history() { # name, data dir
    # All three take the history by remote_write in time order, at most 50 minutes per
    # request (Prometheus's head refuses samples more than 1 h behind its newest).
    # promtool 2.42's create-blocks-from openmetrics re-parses the whole file for each 2-hour
    # block (2160 passes for 6 months), which does not finish in this benchmark's time.
    start_system "$1" "$2"
    local out
    out="$($LG --token "$TOKEN" backfill --hosts 1 --max-series-per-host "$HISTORY_SERIES" --end "$HIST_END" --duration "${HISTORY_DAYS}d" \
        --hosts-per-request 1 --steps-per-request 200 --concurrency 1 --url "$WRITE")"
    log "$out"
    HIST_SAMPLES="$(echo "$out" | field samples)"
    case "$1" in
    vm) curl -fsS "$BASE/internal/force_flush" >/dev/null; sleep 2 ;;
    # Let the compactors run (each ticks once a minute).
    *) sleep 65 ;;
    esac
}

echo "# metrics, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)"
echo "# workload: $HOSTS hosts x 344 series, $MINUTES min at 15 s; history: $HISTORY_SERIES series x ${HISTORY_DAYS} d at 15 s"
for s in $SYSTEMS; do run_system "$s"; done

printf '\n%-34s' "figure"; for s in $SYSTEMS; do printf '%14s' "$s"; done; printf '%14s\n' "bongsu/prom"
row() { # label, key
    printf '%-34s' "$1"
    for s in $SYSTEMS; do printf '%14s' "${R[$s,$2]:-n/a}"; done
    awk -v a="${R[bongsu,$2]:-}" -v b="${R[prometheus,$2]:-}" \
        'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%13.2fx\n", a / b; else printf "%14s\n", "-" }'
}
row "ingest samples/s (accepted)" rate
row "seconds until all queryable" visible
row "bytes/sample on disk (store)" bps
row "  of which index" index_bps
row "bytes/sample of the stream (log)" stream_bps
row "idle RSS MiB" idle
row "RSS MiB, 103k-series head" rss
row "RSS bytes per active series" rss_series
row "query p50 ms (query set)" p50
row "query p99 ms" p99
row "query errors" qerr
row "6-month 1h-step query p50 ms" hist
row "bytes/sample, 6-month history" hist_bps
