#!/usr/bin/env bash
# bench/streaming.sh - streaming throughput: HTTP ingest with durable acknowledgements,
# NATS JetStream -> file and Kafka -> file.
#
#   bench/streaming.sh [--duration S] [--connections N] [--events-per-body K]
#                      [--records N] [--only NAMES] [--keep]
#
# Candidates (--only takes a comma-separated subset; default all):
#
#   http     wrk (bench/http_ingest.lua) POSTs NDJSON bodies of K click events (default 5,
#            about 1 KiB) over N connections (default 64) for S seconds (default 10) to an
#            http source -> file sink, twice: with `fsync: always` (a 200 means the events
#            are on disk) and `fsync: interval` (a 200 means they are written; fsynced every
#            100 ms). records/s counts acknowledged events (200 answers x K), not requests.
#            The write-ahead log lives on disk (bench/out/), the sink's output on tmpfs.
#            After wrk, SIGTERM and a --once run drain the log and the output is counted:
#            it must hold at least every acknowledged event and at most the events of the
#            requests wrk had in flight when it stopped.
#   nats     nats-server (Debian's, started here with JetStream on 127.0.0.1, as the tests
#            do: tests/integration/nats.sh) gets R click events (default 500,000) through
#            a nats sink (row "file>nats": records/s of publishing with Nats-Msg-Id),
#            then a nats source with a durable pull consumer reads them all into a file
#            sink with --once (row "nats>file"; it includes the ~0.45 s a --once run waits
#            to be sure the stream has nothing more). Output count compared exactly.
#   kafka    (when sluice has a kafka source) tools/kafka_mock serves librdkafka's mock
#            cluster, `kafka_mock produce` fills a 32-partition topic with the R events and
#            a kafka source reads them into a file sink with --once (row "kafka>file").
#
# Prints a table like bench/run.sh: records/s, MB/s (of record bytes), the sluice
# process's peak RSS and seconds; for http also the 99th percentile latency of an
# acknowledgement. Exits 1 when a candidate fails or an output count is wrong.
#
# Needs wrk, nats-server, jq and GNU time (`scripts/deps.sh --bench`). Environment:
# SLUICE (default build/sluice; build it with 'make release'), GEN_CLICKS (default
# build/gen_clicks), KAFKA_MOCK (default build/kafka_mock).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=10
CONNS=64
PER_BODY=5
RECORDS=500000
ONLY="http,nats,kafka"
KEEP=0

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}
die() {
    echo "bench: $*" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
    --duration) DURATION=${2:?}; shift 2 ;;
    --connections) CONNS=${2:?}; shift 2 ;;
    --events-per-body) PER_BODY=${2:?}; shift 2 ;;
    --records) RECORDS=${2:?}; shift 2 ;;
    --only) ONLY=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
for v in "$DURATION" "$CONNS" "$PER_BODY" "$RECORDS"; do
    case "$v" in '' | *[!0-9]* | 0) die "expected a positive integer, got '$v'" ;; esac
done
wanted() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

SLUICE=${SLUICE:-$ROOT/build/sluice}
GEN_CLICKS=${GEN_CLICKS:-$ROOT/build/gen_clicks}
KAFKA_MOCK=${KAFKA_MOCK:-$ROOT/build/kafka_mock}
TIME=/usr/bin/time
missing=""
[ -x "$TIME" ] || missing="$missing time"
command -v jq >/dev/null || missing="$missing jq"
if wanted http; then command -v wrk >/dev/null || missing="$missing wrk"; fi
if wanted nats; then command -v nats-server >/dev/null || missing="$missing nats-server"; fi
[ -z "$missing" ] || die "missing packages:$missing; run scripts/deps.sh --bench"
[ -x "$SLUICE" ] || die "no sluice binary at $SLUICE; build it with 'make release' (or set SLUICE=...)"

# The write-ahead log must be on a real disk for fsync to mean anything; outputs go to
# tmpfs when there is one.
DISK=$ROOT/bench/out/streaming-$$
if [ -d /dev/shm ] && [ -w /dev/shm ]; then SHM=/dev/shm/sluice-streaming-$$; else SHM=$DISK/shm; fi
rm -rf "$DISK" "$SHM"
mkdir -p "$DISK" "$SHM"
PIDS=()
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    local p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ "$KEEP" -eq 0 ]; then rm -rf "$DISK" "$SHM"; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
listening() { python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$1" 2>/dev/null; }

ROWS=()
FAILED=0
# row NAME RECORDS BYTES SECONDS RSS_KB NOTE
row() {
    ROWS+=("$(awk -v n="$1" -v r="$2" -v b="$3" -v s="$4" -v rss="$5" -v note="$6" 'BEGIN {
        if (s <= 0) s = 1e-9
        printf "%-19s | %12.0f | %8.1f | %12.1f | %8.2f | %s", n, r / s, b / 1e6 / s, rss / 1024, s, note
    }')")
}
bad() {
    ROWS+=("$(printf '%-19s | FAILED: %s' "$1" "$2")")
    echo "bench: $1: $2" >&2
    FAILED=1
    KEEP=1
}
lines_in() { cat "$@" 2>/dev/null | wc -l; }

# --- http ingest -------------------------------------------------------------------------
bench_http() {
    local mode=$1 dir=$DISK/http-$1 port
    port=$(free_port)
    mkdir -p "$dir"
    cat >"$dir/p.yaml" <<YAML
pipeline: bench_http
state_dir: $dir/state
sources:
  web: {type: http, listen: "127.0.0.1:$port", fsync: $mode, wal_max_bytes: 16GiB}
sinks:
  out: {type: file, inputs: [web], path: $SHM/http-$mode/ev.ndjson, id_field: ""}
YAML
    "$SLUICE" run "$dir/p.yaml" --quiet 2>"$dir/sluice.log" &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 100); do listening "$port" && break; sleep 0.05; done
    listening "$port" || { bad "http $mode" "sluice did not listen (see $dir/sluice.log)"; return; }
    echo "bench: http fsync=$mode: wrk -c$CONNS -d${DURATION}s, $PER_BODY events per body" >&2
    EVENTS_PER_BODY=$PER_BODY wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency \
        -s "$ROOT/bench/http_ingest.lua" "http://127.0.0.1:$port/v1/ingest/web" >"$dir/wrk.out" 2>&1 ||
        { bad "http $mode" "wrk failed: $(tail -3 "$dir/wrk.out")"; kill "$pid"; return; }
    # Peak RSS of the serving process (VmHWM), read before it stops.
    local rss
    rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    kill -TERM "$pid"
    wait "$pid" || { bad "http $mode" "sluice exited with $? (see $dir/sluice.log)"; return; }
    # Drain what the log still holds (SIGTERM stops reading; --once delivers the rest).
    "$SLUICE" run "$dir/p.yaml" --once --quiet 2>>"$dir/sluice.log" ||
        { bad "http $mode" "the draining --once run failed"; return; }
    local j
    j=$(sed -n 's/^wrk-json //p' "$dir/wrk.out")
    [ -n "$j" ] || { bad "http $mode" "no summary from wrk: $(tail -3 "$dir/wrk.out")"; return; }
    local req non2xx dur bbytes p99 errs
    req=$(jq .requests <<<"$j")
    non2xx=$(jq .non2xx <<<"$j")
    dur=$(jq '.duration_us / 1e6' <<<"$j")
    bbytes=$(jq .body_bytes <<<"$j")
    p99=$(jq '.p99_us / 1000' <<<"$j")
    errs=$(jq '.connect + .read + .write + .timeout' <<<"$j")
    local acked=$(((req - non2xx) * PER_BODY)) got
    got=$(lines_in "$SHM/http-$mode"/ev*.ndjson)
    # Requests in flight when wrk stopped may be written without being counted by wrk.
    if [ "$got" -lt "$acked" ] || [ "$got" -gt $((acked + CONNS * PER_BODY)) ]; then
        bad "http $mode" "output holds $got events, $acked were acknowledged"
        return
    fi
    row "http fsync=$mode" "$acked" $(((req - non2xx) * bbytes)) "$dur" "$rss" \
        "$(printf 'acked events; %d req/s, p99 %.1f ms, %d non-2xx, %d socket errors; output %d' \
            "$(awk -v r="$req" -v d="$dur" 'BEGIN { printf "%d", r / d }')" "$p99" "$non2xx" "$errs" "$got")"
}

# --- shared input for the brokers ------------------------------------------------------------
INPUT=""
make_input() {
    [ -n "$INPUT" ] && return
    [ -x "$GEN_CLICKS" ] || die "no generator at $GEN_CLICKS; build it with 'make release'"
    INPUT=$SHM/clicks.ndjson
    echo "bench: generating $RECORDS click events" >&2
    "$GEN_CLICKS" --count "$RECORDS" --seed 7 --out "$INPUT"
}

# measure NAME CMD...: wall seconds into SECS, peak RSS (KiB) into RSS; 1 when CMD failed.
measure() {
    local name=$1 t0 t1
    shift
    t0=$(date +%s%N)
    if ! "$TIME" -f '%M' -o "$DISK/$name.rss" "$@" 2>"$DISK/$name.log"; then
        return 1
    fi
    t1=$(date +%s%N)
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
    RSS=$(cat "$DISK/$name.rss")
}

# --- nats --------------------------------------------------------------------------------------
bench_nats() {
    make_input
    # tests/integration/nats.sh starts and stops the server; it reports through fail() and
    # cleans up through _sl_cleanup, which here are ours.
    # shellcheck disable=SC2317 # called by nats.sh
    fail() { echo "bench: $*" >&2; exit 1; }
    # shellcheck disable=SC2317 # called by nats.sh's trap
    _sl_cleanup() { cleanup; }
    # shellcheck source=../tests/integration/nats.sh
    . "$ROOT/tests/integration/nats.sh"
    nats_start
    local dir=$DISK/nats bytes
    bytes=$(stat -c %s "$INPUT")
    mkdir -p "$dir"
    cat >"$dir/prod.yaml" <<YAML
pipeline: bench_nats_prod
state_dir: $dir/state_p
sources:
  in: {type: file, path: $INPUT}
sinks:
  bus: {type: nats, inputs: [in], url: "$NATS_URL", subject: bench.clicks, stream: BENCH}
YAML
    cat >"$dir/cons.yaml" <<YAML
pipeline: bench_nats_cons
state_dir: $dir/state_c
sources:
  bus: {type: nats, url: "$NATS_URL", stream: BENCH, subject: "bench.>", durable: bench, batch_size: 1024}
sinks:
  out: {type: file, inputs: [bus], path: $SHM/nats/ev.ndjson, id_field: ""}
YAML
    echo "bench: file -> nats ($RECORDS events)" >&2
    if measure nats_prod "$SLUICE" run "$dir/prod.yaml" --once --quiet; then
        row "file>nats" "$RECORDS" "$bytes" "$SECS" "$RSS" "publish with Nats-Msg-Id, stream on disk"
    else
        bad "file>nats" "see $DISK/nats_prod.log"
        return
    fi
    echo "bench: nats -> file" >&2
    if ! measure nats_cons "$SLUICE" run "$dir/cons.yaml" --once --quiet; then
        bad "nats>file" "see $DISK/nats_cons.log"
        return
    fi
    local got
    got=$(lines_in "$SHM/nats"/ev*.ndjson)
    if [ "$got" != "$RECORDS" ]; then
        bad "nats>file" "output holds $got records, the stream $RECORDS"
        return
    fi
    row "nats>file" "$RECORDS" "$bytes" "$SECS" "$RSS" "durable pull consumer, acks after commit; incl. ~0.45 s end-of-stream wait"
}

# --- kafka -------------------------------------------------------------------------------------
bench_kafka() {
    local docs
    docs=$("$SLUICE" docs config 2>/dev/null || true)
    # shellcheck disable=SC2016 # backquotes of Markdown, not of the shell
    if ! grep -q '^### source `kafka`' <<<"$docs"; then
        ROWS+=("$(printf '%-19s | %s' "kafka>file" "skipped: this sluice has no kafka source")")
        return
    fi
    [ -x "$KAFKA_MOCK" ] || { ROWS+=("$(printf '%-19s | %s' "kafka>file" "skipped: no $KAFKA_MOCK (build it)")"); return; }
    make_input
    local dir=$DISK/kafka bytes
    bytes=$(stat -c %s "$INPUT")
    mkdir -p "$dir"
    # librdkafka's mock keeps only the newest few MB of each partition (older segments are
    # dropped: the low watermark moves), so spread the events over 32 partitions.
    "$KAFKA_MOCK" serve BENCH:32 >"$dir/bootstrap" 2>"$dir/mock.log" &
    local mock=$!
    PIDS+=("$mock")
    for _ in $(seq 1 100); do [ -s "$dir/bootstrap" ] && break; sleep 0.05; done
    local boot
    boot=$(head -1 "$dir/bootstrap")
    [ -n "$boot" ] || { bad "kafka>file" "the mock cluster did not start"; return; }
    echo "bench: producing $RECORDS events to the mock cluster" >&2
    "$KAFKA_MOCK" produce "$boot" BENCH 32 <"$INPUT" || { bad "kafka>file" "kafka_mock produce failed"; return; }
    cat >"$dir/cons.yaml" <<YAML
pipeline: bench_kafka
state_dir: $dir/state
sources:
  bus: {type: kafka, brokers: "$boot", topics: [BENCH], group: bench, start: earliest, metadata_field: ""}
sinks:
  out: {type: file, inputs: [bus], path: $SHM/kafka/ev.ndjson, id_field: ""}
YAML
    echo "bench: kafka -> file" >&2
    if ! measure kafka_cons "$SLUICE" run "$dir/cons.yaml" --once --quiet; then
        bad "kafka>file" "see $DISK/kafka_cons.log"
        kill "$mock" 2>/dev/null || true
        return
    fi
    kill "$mock" 2>/dev/null || true
    local got
    got=$(lines_in "$SHM/kafka"/ev*.ndjson)
    [ "$got" = "$RECORDS" ] || { bad "kafka>file" "output holds $got records, $RECORDS produced (the mock drops the oldest MBs of a partition: fewer --records?)"; return; }
    row "kafka>file" "$RECORDS" "$bytes" "$SECS" "$RSS" "mock cluster (3 brokers, 32 partitions), consumer group; incl. ~3 s group join"
}

if wanted http; then
    bench_http always
    bench_http interval
fi
if wanted nats; then bench_nats; fi
if wanted kafka; then bench_kafka; fi

echo
printf '%s cores; http: %d connections, %d events per body, %d s each; brokers: %d events\n' \
    "$(nproc 2>/dev/null || echo '?')" "$CONNS" "$PER_BODY" "$DURATION" "$RECORDS"
printf '%-19s | %12s | %8s | %12s | %8s | %s\n' name records/s MB/s "peak RSS MiB" seconds notes
printf -- '--------------------+--------------+----------+--------------+----------+------\n'
for r in "${ROWS[@]}"; do printf '%s\n' "$r"; done
echo "fsync=interval is the ceiling of the same path without waiting for the disk; wrk runs on the"
echo "same cores as sluice. Target: >= 100,000 acknowledged events/s with fsync=always."
exit "$FAILED"
