# tests/integration/pg.sh - a throwaway PostgreSQL server for tests (bash, sourced after
# lib.sh).
#
#   pg_start          initdb a new cluster in a temp directory and start it on 127.0.0.1 at
#                     a free port (unix socket in the same directory); exports PGHOST,
#                     PGPORT, PGUSER=postgres, PGDATABASE=postgres, so libpq clients
#                     (sluice, psql) need no options; PG_DSN holds the same as a
#                     connection string. Stopped and removed at exit.
#   pg_stop           stop the server (fast shutdown): for outage tests
#   pg_start_again    start the same cluster again, same port
#   pg_kill           SIGKILL the postmaster (a crash, not a shutdown)
#   pg_sql SQL        run SQL with psql: unaligned, tuples only, fields separated by |,
#                     stops at the first error (exit status non-zero)
#   pg_wait_ready     wait until the server accepts connections
#
# PostgreSQL 15 from Debian (scripts/deps.sh installs it): its binaries are in
# /usr/lib/postgresql/15/bin, and initdb refuses to run as root, so as root the server runs
# as the postgres user (runuser). About one second from nothing to accepting connections.

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] ||
    fail "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin); run scripts/deps.sh"
command -v psql >/dev/null || fail "psql not found; run scripts/deps.sh"

_PG_DATA=
_PG_STARTED=0

_pg_as() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

_pg_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_pg_cleanup() {
    if [ -n "$_PG_DATA" ] && [ -d "$_PG_DATA" ]; then
        _pg_as "$PGBIN/pg_ctl" -D "$_PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$_PG_DATA"
    fi
}
trap 'rc=$?; _pg_cleanup; (exit $rc); _sl_cleanup' EXIT

pg_start() {
    _PG_DATA=$(mktemp -d /tmp/sluice-pg.XXXXXX)
    chmod 700 "$_PG_DATA"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$_PG_DATA"; fi
    _pg_as "$PGBIN/initdb" -D "$_PG_DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        >"$_PG_DATA.initdb.log" 2>&1 || {
        cat "$_PG_DATA.initdb.log" >&2
        fail "initdb failed"
    }
    rm -f "$_PG_DATA.initdb.log"
    PGPORT=$(_pg_free_port)
    PGHOST=127.0.0.1
    PGUSER=postgres
    PGDATABASE=postgres
    export PGHOST PGPORT PGUSER PGDATABASE
    PG_DSN="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"
    export PG_DSN
    pg_start_again
}

pg_start_again() {
    _pg_as "$PGBIN/pg_ctl" -D "$_PG_DATA" -l "$_PG_DATA/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $_PG_DATA -c fsync=on" start \
        >/dev/null || {
        tail -n 20 "$_PG_DATA/server.log" >&2
        fail "PostgreSQL did not start"
    }
    _PG_STARTED=1
}

pg_stop() {
    _pg_as "$PGBIN/pg_ctl" -D "$_PG_DATA" -m fast -w -t 30 stop >/dev/null ||
        fail "PostgreSQL did not stop"
}

pg_kill() {
    local pid
    pid=$(head -n 1 "$_PG_DATA/postmaster.pid" 2>/dev/null) || fail "no postmaster.pid"
    kill -9 "$pid"
    # The backends notice their postmaster is gone and exit; wait for the port to free.
    local i
    for i in $(seq 1 100); do
        pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null || return 0
        sleep 0.1
    done
}

pg_wait_ready() {
    local i
    for i in $(seq 1 300); do
        pg_isready -q -h "$PGHOST" -p "$PGPORT" && return 0
        sleep 0.1
    done
    fail "PostgreSQL is not accepting connections"
}

pg_sql() {
    psql -X -q -A -t -F '|' -v ON_ERROR_STOP=1 -c "$1"
}
