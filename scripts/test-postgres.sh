#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite, on 127.0.0.1 only.
#
#   scripts/test-postgres.sh start   # prints the SQLAlchemy URL of database keyhunt_test
#   scripts/test-postgres.sh url     # the same URL, when the server is running
#   scripts/test-postgres.sh stop    # stops the server and deletes its files
#
# `start` installs Debian's `postgresql` package when no server binaries exist (CI runs as
# root on Debian 12), creates a cluster under $KEYHUNT_PG_DIR (default /tmp/keyhunt-pg-$UID)
# with trust authentication on loopback and fsync off (speed over durability: the data is
# thrown away), starts it on $KEYHUNT_PG_PORT (default 54329, or the next free port) and
# creates the database. Both commands are idempotent; `start` is instant when the server
# already runs. Only the URL goes to stdout; everything else goes to stderr.
set -euo pipefail

BASE="${KEYHUNT_PG_DIR:-/tmp/keyhunt-pg-$(id -u)}"
DATA="$BASE/data"
LOG="$BASE/postgres.log"
PORT_FILE="$BASE/port"
LOCK="${BASE}.lock"
DATABASE="keyhunt_test"
FIRST_PORT="${KEYHUNT_PG_PORT:-54329}"
DB_USER="postgres"

say() { printf 'test-postgres: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

usage() {
    echo "usage: $0 start|url|stop" >&2
    exit 2
}

find_bindir() {
    local candidate
    candidate="$(find /usr/lib/postgresql -maxdepth 3 -path '*/bin/pg_ctl' 2>/dev/null |
        sort -V | tail -n 1)"
    if [[ -n "$candidate" ]]; then
        dirname "$candidate"
    fi
}

install_server() {
    [[ "$(id -u)" -eq 0 ]] || die "no PostgreSQL server found and not root: install Debian's 'postgresql' package"
    say "installing PostgreSQL (apt-get install postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
}

# initdb and the server refuse to run as root: as root, run them as the `postgres` user.
as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then
        runuser -u "$DB_USER" -- "$@"
    else
        "$@"
    fi
}

ensure_owner_user() {
    [[ "$(id -u)" -eq 0 ]] || return 0
    if ! id -u "$DB_USER" >/dev/null 2>&1; then
        say "creating system user $DB_USER"
        local group=(--user-group)
        if getent group "$DB_USER" >/dev/null; then
            group=(--gid "$DB_USER")
        fi
        useradd --system "${group[@]}" --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin "$DB_USER"
    fi
}

port_in_use() {
    # A connection that succeeds means something listens there already.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
    local port="$FIRST_PORT"
    while port_in_use "$port"; do
        port=$((port + 1))
        [[ "$port" -lt $((FIRST_PORT + 50)) ]] || die "no free port in $FIRST_PORT..$port"
    done
    echo "$port"
}

url() {
    echo "postgresql+psycopg://$DB_USER@127.0.0.1:$(cat "$PORT_FILE")/$DATABASE"
}

server_alive() {
    [[ -f "$DATA/postmaster.pid" && -f "$PORT_FILE" ]] &&
        as_owner "$BINDIR/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

server_ready() {
    "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$(cat "$PORT_FILE")" -t "$1"
}

init_cluster() {
    rm -rf "$BASE"
    mkdir -p "$BASE"
    chmod 700 "$BASE"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown "$DB_USER:" "$BASE"
    fi
    as_owner "$BINDIR/initdb" -D "$DATA" -U "$DB_USER" --auth=trust --encoding=UTF8 \
        --no-locale --no-sync >"$BASE/initdb.log" 2>&1 ||
        { cat "$BASE/initdb.log" >&2; die "initdb failed"; }
    local port
    port="$(pick_port)"
    as_owner tee -a "$DATA/postgresql.conf" >/dev/null <<EOF
# keyhunt test server: loopback only, speed over durability
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$BASE'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    echo "$port" >"$PORT_FILE"
}

start_server() {
    local attempt
    for attempt in 1 2 3; do
        # 9>&-: the server must not inherit (and so hold forever) the lock below.
        if as_owner "$BINDIR/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 60 >/dev/null 9>&-; then
            return 0
        fi
        # A server killed a moment ago may still be exiting and holding its lock file.
        say "start attempt $attempt failed; retrying"
        sleep 1
    done
    tail -n 30 "$LOG" >&2 || true
    die "the server did not start (log: $LOG)"
}

ensure_database() {
    local psql=("$BINDIR/psql" -X -q -h 127.0.0.1 -p "$(cat "$PORT_FILE")" -U "$DB_USER")
    if [[ "$("${psql[@]}" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != "1" ]]; then
        "${psql[@]}" -d postgres -c "CREATE DATABASE $DATABASE" >/dev/null
    fi
}

cmd_start() {
    BINDIR="$(find_bindir)"
    if [[ -z "$BINDIR" ]]; then
        install_server
        BINDIR="$(find_bindir)"
        [[ -n "$BINDIR" ]] || die "apt-get installed postgresql but no pg_ctl was found"
    fi
    ensure_owner_user
    if ! server_alive; then
        if [[ ! -f "$DATA/PG_VERSION" || ! -f "$PORT_FILE" ]] || port_in_use "$(cat "$PORT_FILE")"; then
            init_cluster # new, half-made, or its port was taken meanwhile: start afresh
        fi
        start_server
    fi
    server_ready 30 || die "the server runs but does not answer (log: $LOG)"
    ensure_database
    url
}

cmd_url() {
    BINDIR="$(find_bindir)"
    if [[ -z "$BINDIR" ]] || ! server_alive || ! server_ready 5; then
        die "not running: use '$0 start'"
    fi
    url
}

cmd_stop() {
    BINDIR="$(find_bindir)"
    if [[ -n "$BINDIR" && -f "$DATA/postmaster.pid" ]]; then
        # Immediate: nothing here needs a clean shutdown, and it never waits for clients.
        as_owner "$BINDIR/pg_ctl" stop -D "$DATA" -m immediate -w -t 30 >/dev/null 2>&1 || true
    fi
    rm -rf "$BASE"
}

[[ $# -eq 1 ]] || usage
# One invocation at a time (two `make` runs starting it together must not both run initdb).
exec 9>"$LOCK"
flock -w 120 9 || die "another $0 still holds $LOCK"
case "$1" in
start) cmd_start ;;
url) cmd_url ;;
stop) cmd_stop ;;
*) usage ;;
esac
