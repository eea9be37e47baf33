# tests/integration/nats.sh - a throwaway NATS JetStream server for tests (bash, sourced
# after lib.sh).
#
#   nats_start        start nats-server with JetStream on 127.0.0.1 at a free port, its
#                     storage in a temp directory; exports NATS_URL. Killed and removed at
#                     exit.
#   nats_stop         stop the server (SIGTERM, waits for it): for outage tests
#   nats_start_again  start it again on the same port and storage (streams survive)
#   nats_stream_info STREAM
#                     the stream's state as JSON ({"messages":N,"first_seq":F,
#                     "last_seq":L}) read from the server's monitoring endpoint
#
# nats-server comes from Debian (scripts/deps.sh installs it); it is ready in well under a
# second.

command -v nats-server >/dev/null || fail "nats-server not found; run scripts/deps.sh"

_NATS_DIR=
_NATS_PID=

_nats_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_nats_cleanup() {
    if [ -n "$_NATS_PID" ]; then
        kill -9 "$_NATS_PID" 2>/dev/null || true
        wait "$_NATS_PID" 2>/dev/null || true
    fi
    if [ -n "$_NATS_DIR" ] && [ -d "$_NATS_DIR" ]; then
        rm -rf "$_NATS_DIR"
    fi
}
trap 'rc=$?; _nats_cleanup; (exit $rc); _sl_cleanup' EXIT

_nats_ready() {
    python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(0.2); s.connect(("127.0.0.1", int(sys.argv[1]))); sys.exit(0 if s.recv(4) == b"INFO" else 1)' \
        "$NATS_PORT" 2>/dev/null
}

nats_start() {
    _NATS_DIR=$(mktemp -d /tmp/sluice-nats.XXXXXX)
    NATS_PORT=$(_nats_free_port)
    NATS_MON_PORT=$(_nats_free_port)
    NATS_URL="nats://127.0.0.1:$NATS_PORT"
    export NATS_URL NATS_PORT
    nats_start_again
}

nats_start_again() {
    nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON_PORT" -sd "$_NATS_DIR" \
        >>"$_NATS_DIR/server.log" 2>&1 &
    _NATS_PID=$!
    local i
    for i in $(seq 1 100); do
        _nats_ready && return 0
        kill -0 "$_NATS_PID" 2>/dev/null || break
        sleep 0.05
    done
    tail -n 20 "$_NATS_DIR/server.log" >&2
    fail "nats-server did not start"
}

nats_stop() {
    kill "$_NATS_PID" 2>/dev/null || true
    wait "$_NATS_PID" 2>/dev/null || true
    _NATS_PID=
}

nats_stream_info() {
    python3 - "$NATS_MON_PORT" "$1" <<'PY'
import json, sys, urllib.request
port, name = sys.argv[1], sys.argv[2]
j = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/jsz?streams=true", timeout=5))
for acc in j.get("account_details", []):
    for st in acc.get("stream_detail", []):
        if st["name"] == name:
            s = st["state"]
            print(json.dumps({"messages": s["messages"], "first_seq": s["first_seq"],
                              "last_seq": s["last_seq"]}))
            sys.exit(0)
sys.exit("no stream " + name)
PY
}
