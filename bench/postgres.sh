#!/usr/bin/env bash
# A private PostgreSQL server for the benchmarks of the postgres queue store, so that
# `make bench` measures a server of its own, configured as below, and never touches one the
# machine may run.
#
#   bench/postgres.sh start DIR          initdb in DIR, start on a free port of 127.0.0.1;
#                                        prints the server's URL (no database in it)
#   bench/postgres.sh createdb URL NAME  creates database NAME; prints its URL
#   bench/postgres.sh stop DIR           stops the server and removes DIR
#
# The server refuses to run as root, so it runs as the `postgres` user (Debian's package
# makes it). Trust authentication on 127.0.0.1 only: a throwaway server no one else reaches.
# Durability is the default (fsync, synchronous_commit on): the store answers an enqueue after
# its commit, and the file store it is compared with fsyncs every email, so the same promise
# is measured on both sides.
set -euo pipefail

pg_bin() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$found" ]; then
        local as_root=()
        [ "$(id -u)" -eq 0 ] || as_root=(sudo)
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    echo "$found"
}

# Runs a server binary as the postgres user (as is, when that is who runs this).
as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

case "${1:-}" in
start)
    dir=$2
    bin=$(pg_bin)
    mkdir -p "$dir"
    chown postgres: "$dir" 2>/dev/null || true
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync --no-instructions >"$dir/initdb.log"
    # max_connections: mailfcgi's pool holds a connection per request thread (FCGI_THREADS, 16 by default)
    # and mailworkerd's one per worker, beside the claims benchmark's.
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o \
        "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c shared_buffers=256MB" \
        start >/dev/null
    echo "postgresql://postgres@127.0.0.1:$port"
    ;;
createdb)
    psql -X -q -v ON_ERROR_STOP=1 -d "$2/postgres" -c "CREATE DATABASE $3" >/dev/null
    echo "$2/$3"
    ;;
stop)
    dir=$2
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_postgres "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start DIR | createdb URL NAME | stop DIR" >&2
    exit 2
    ;;
esac
