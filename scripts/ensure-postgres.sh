#!/usr/bin/env bash
# Makes sure a PostgreSQL server is reachable and prints the server DSN to use
# on stdout (everything else goes to stderr).
#
#   DATABASE_URL set      -> checked and printed as is.
#   local server stopped  -> started with pg_ctlcluster.
#   no server installed   -> installed from Debian (apt-get), started, and given
#                            a local-only password for the postgres user.
set -euo pipefail

log() { echo "ensure-postgres: $*" >&2; }

default_dsn="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

ready() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }

if [ -n "${DATABASE_URL:-}" ]; then
  echo "$DATABASE_URL"
  exit 0
fi

if command -v pg_isready >/dev/null 2>&1 && ready; then
  echo "$default_dsn"
  exit 0
fi

start_cluster() {
  local ver
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  [ -n "$ver" ] || return 1
  log "starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 || pg_ctlcluster "$ver" main start >&2 || return 1
  for _ in $(seq 1 50); do ready && return 0; sleep 0.2; done
  return 1
}

if [ -d /etc/postgresql ] && start_cluster; then
  echo "$default_dsn"
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    log "PostgreSQL is not installed and this is not root: install it (apt-get install postgresql) or set DATABASE_URL"
    exit 1
  fi
  log "installing PostgreSQL from Debian"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql postgresql-client >&2
fi
start_cluster || { log "could not start PostgreSQL"; exit 1; }

# A fresh Debian cluster accepts TCP logins only with a password: give the
# postgres superuser a local development password once.
if ! psql "$default_dsn" -Atc 'select 1' >/dev/null 2>&1; then
  su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >&2
  echo "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"
  exit 0
fi
echo "$default_dsn"
