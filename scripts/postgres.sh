#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests: `scripts/postgres.sh` installs PostgreSQL (apt) if it
# is missing, starts a cluster on 127.0.0.1:$PGPORT (default 55432) under a temp directory,
# creates the database and prints its SQLAlchemy URL on stdout (everything else goes to
# stderr). Idempotent: a running cluster is reused. `scripts/postgres.sh stop` stops it.
set -euo pipefail

PGPORT=${PGPORT:-55432}
PGROOT=${PGROOT:-${TMPDIR:-/tmp}/callgate-pg-$PGPORT}
DB=callgate_test
ROLE=callgate
log() { echo "postgres.sh: $*" >&2; }

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [[ -z $(bindir) ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing postgresql (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    log "PostgreSQL is not installed: apt-get install postgresql"
    exit 1
  fi
fi
BIN=$(bindir)

# PostgreSQL refuses to run as root: run its programs as the `postgres` user instead.
as_owner() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [[ ${1:-start} == stop ]]; then
  if [[ -f $PGROOT/data/postmaster.pid ]]; then
    as_owner "$BIN/pg_ctl" -D "$PGROOT/data" -m fast -w stop >&2 || true
  fi
  exit 0
fi

if ! as_owner "$BIN/pg_ctl" -D "$PGROOT/data" status >/dev/null 2>&1; then
  if [[ ! -f $PGROOT/data/PG_VERSION ]]; then
    log "creating a cluster in $PGROOT"
    rm -rf "$PGROOT"
    mkdir -p "$PGROOT"
    [[ $(id -u) == 0 ]] && chown postgres: "$PGROOT"
    as_owner "$BIN/initdb" -D "$PGROOT/data" -U "$ROLE" --auth=trust -E UTF8 >/dev/null
  fi
  # fsync off: a test cluster trades durability for speed.
  as_owner "$BIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/log" -w \
    -o "-p $PGPORT -k $PGROOT -c listen_addresses=127.0.0.1 -F -c max_connections=200" \
    start >/dev/null
  log "started on 127.0.0.1:$PGPORT (log: $PGROOT/log)"
fi

psql_() { "$BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U "$ROLE" -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [[ -z $(psql_ -c "SELECT 1 FROM pg_database WHERE datname = '$DB'") ]]; then
  psql_ -c "CREATE DATABASE $DB" >/dev/null
fi
echo "postgresql+asyncpg://$ROLE@127.0.0.1:$PGPORT/$DB"
