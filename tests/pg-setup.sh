#!/usr/bin/env bash
# Prepares a local PostgreSQL for carillon-store's tests, idempotently.
# Run as root on Debian 12 (CI). Installs postgresql if missing, starts the
# newest cluster, creates role carillon (password carillon) and database
# carillon, and prints the URL on stdout (everything else goes to stderr):
#
#   export CARILLON_TEST_PG_URL="$(bash tests/pg-setup.sh)"
set -euo pipefail

log() { echo "pg-setup: $*" >&2; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q postgresql >&2
fi

version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
    log "creating cluster $version/main"
    pg_createcluster "$version" main >&2
fi

port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')"
status="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $4 }')"
if [ "$status" != "online" ]; then
    log "starting cluster $version/main on port $port"
    pg_ctlcluster "$version" main start >&2
fi

for _ in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p "$port"; then break; fi
    sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$port" >&2

psql_admin() { su postgres -c "psql -X -q -v ON_ERROR_STOP=1 -p $port $*" ; }

if [ "$(psql_admin "-tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'carillon'\"")" != "1" ]; then
    log "creating role carillon"
    psql_admin "-c \"CREATE ROLE carillon LOGIN PASSWORD 'carillon'\"" >&2
fi
if [ "$(psql_admin "-tAc \"SELECT 1 FROM pg_database WHERE datname = 'carillon'\"")" != "1" ]; then
    log "creating database carillon"
    psql_admin "-c \"CREATE DATABASE carillon OWNER carillon\"" >&2
fi

echo "postgres://carillon:carillon@127.0.0.1:${port}/carillon"
