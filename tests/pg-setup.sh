#!/usr/bin/env bash
# A private PostgreSQL for the store and CDR tests, owned by the test run:
#
#   url="$(bash tests/pg-setup.sh start DIR)"   # prints the URL on stdout
#   bash tests/pg-setup.sh stop DIR
#
# `start` creates a throwaway cluster under DIR (initdb as the postgres
# user, SCRAM password authentication), starts it on 127.0.0.1 only, on a
# port of its own, with its Unix socket in DIR too, and creates role and
# database `carillon` (password `carillon`). It never touches the system's
# clusters, so it works the same inside the loopback-only network namespace
# that tests/run.sh runs the tests in (a server started outside it would
# not be reachable there). Run as root on Debian (installs postgresql if
# missing). Everything but the URL goes to stderr.
set -euo pipefail

log() { echo "pg-setup: $*" >&2; }

cmd="${1:-}"
dir="${2:-}"
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q postgresql >&2
fi
version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
pgbin="/usr/lib/postgresql/$version/bin"
as_pg() { runuser -u postgres -- "$@"; }

case "$cmd" in
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    rm -rf "$dir"
    exit 0
    ;;
start) ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac

port="${CARILLON_PG_PORT:-55432}"
rm -rf "$dir"
mkdir -p "$dir"
chown postgres:postgres "$dir"
chmod 0700 "$dir"
pw="$dir/superuser-password"
echo carillon-test-superuser >"$pw"
chown postgres "$pw"
log "initdb $dir/data (PostgreSQL $version)"
as_pg "$pgbin/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 --pwfile="$pw" >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
log "starting on 127.0.0.1:$port"
as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >&2 ||
    { cat "$dir/server.log" >&2; exit 1; }

export PGPASSWORD=carillon-test-superuser
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql_admin -c "CREATE ROLE carillon LOGIN PASSWORD 'carillon'" >&2
psql_admin -c "CREATE DATABASE carillon OWNER carillon" >&2

echo "postgres://carillon:carillon@127.0.0.1:${port}/carillon"
