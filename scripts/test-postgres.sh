#!/usr/bin/env bash
# A private PostgreSQL server for the e2e tests (Debian's `postgresql` package): a new cluster
# in DIR, listening on 127.0.0.1 and on a unix socket in DIR/socket, superuser `mail`, trust
# authentication, no durability (fsync off: the data is thrown away with DIR). The server
# refuses to run as root: as root it runs as the package's `postgres` user (else `nobody`).
# The e2e suite's conftest.py starts and stops one for its run; a developer may keep one
# running and hand its URL to pytest in MAIL_TEST_DATABASE_URL instead.
#
# usage: scripts/test-postgres.sh start DIR [PORT]  creates DIR, starts the server, prints its base
#                                                   URL: postgresql://mail@127.0.0.1:PORT
#        scripts/test-postgres.sh url DIR           prints the base URL again
#        scripts/test-postgres.sh stop DIR          stops the server (if running), removes DIR
# PORT:  default the first free one from 54320 (PORT given: that one or fail).
# env:   PG_BIN  the server's programs (default: the newest /usr/lib/postgresql/*/bin)
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] | url DIR | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
command=$1
dir=$(realpath -m "$2")
port=${3:-}

pg_bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ ! -x "$pg_bin/pg_ctl" ]; then
    echo "$0: no PostgreSQL server found (install Debian's postgresql: scripts/install-deps.sh --test," \
        "or set PG_BIN)" >&2
    exit 1
fi

# Runs a server program as the server's user, in DIR (the caller's folder may be closed to it).
as_server() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd "$dir" && runuser -u "$user" -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}
user=postgres
id -u "$user" >/dev/null 2>&1 || user=nobody

case $command in
start)
    [ ! -e "$dir/data" ] || { echo "$0: $dir/data exists: stop it first" >&2; exit 1; }
    mkdir -p "$dir/socket"
    [ "$(id -u)" -ne 0 ] || chown -R "$user:" "$dir"
    chmod 755 "$dir"  # clients reach the socket; DIR/data itself is 0700
    as_server "$pg_bin/initdb" -D "$dir/data" -U mail --auth=trust --encoding=UTF8 --no-locale \
        --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<EOF
# scripts/test-postgres.sh: a throwaway server for tests.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/socket'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] %d '
EOF
    for candidate in ${port:-$(seq 54320 54399)}; do
        if as_server "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $candidate" -w -t 30 \
            start >/dev/null 2>&1; then
            url="postgresql://mail@127.0.0.1:$candidate"
            echo "$url" >"$dir/url"
            echo "$url"
            exit 0
        fi
    done
    echo "$0: the server did not start; its log ($dir/server.log):" >&2
    tail -n 20 "$dir/server.log" >&2 || true
    exit 1
    ;;
url)
    cat "$dir/url"
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_server "$pg_bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null
    fi
    rm -rf "$dir"
    ;;
*)
    usage
    ;;
esac
