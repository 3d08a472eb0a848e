#!/usr/bin/env bash
# Start (or reuse) a private PostgreSQL cluster for development and tests.
#   localpg.sh [start]   prints its DATABASE_URL on stdout (everything else on stderr)
#   localpg.sh crash     stops it in immediate mode (as a crash would) and starts it again
#   localpg.sh stop      stops it
# The cluster lives in .pgdata/ (git-ignored). As root, the server runs as the
# 'postgres' user, because PostgreSQL refuses to run as root.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.pgdata"
DBNAME="${PGBULK_DBNAME:-pgbulk}"

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) ; do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return; }
  cat >&2 <<'MSG'
PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found.
Install them, e.g. on Debian/Ubuntu:  apt-get install postgresql   (or postgresql-15)
or point DATABASE_URL at an existing PostgreSQL (>= 13) server.
MSG
  exit 1
}
BIN="$(find_bindir)"

# Who runs the server: ourselves, or a system user when we are root.
if [ "$(id -u)" = 0 ]; then
  SERVER_USER=postgres
  id -u "$SERVER_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$SERVER_USER"
  as_server() { runuser -u "$SERVER_USER" -- "$@"; }
else
  as_server() { "$@"; }
fi

# The data folder must be reachable by the server user; as root in a folder
# that user cannot traverse (e.g. under /root), keep it under /var/tmp instead.
DATA="$STATE/data"
mkdir -p "$STATE"
if [ "$(id -u)" = 0 ]; then
  chown "$SERVER_USER" "$STATE"
  if ! as_server test -w "$STATE"; then
    alt="/var/tmp/pgbulk-$(printf '%s' "$ROOT" | md5sum | cut -c1-10)"
    mkdir -p "$alt"; chown "$SERVER_USER" "$alt"
    DATA="$alt/data"
  fi
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port_free() {
  python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$1))==0)"
}

if [ ! -f "$DATA/PG_VERSION" ]; then
  echo "creating PostgreSQL cluster in $DATA" >&2
  as_server mkdir -p "$DATA"
  as_server "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi

case "${1:-start}" in
  start) ;;
  crash)
    as_server "$BIN/pg_ctl" -D "$DATA" -m immediate stop >&2 ;;
  stop)
    as_server "$BIN/pg_ctl" -D "$DATA" -m fast stop >&2; exit 0 ;;
  *) echo "usage: localpg.sh [start|crash|stop]" >&2; exit 2 ;;
esac

if ! as_server "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  PORT="$(cat "$STATE/port" 2>/dev/null || true)"
  if [ -z "$PORT" ] || ! port_free "$PORT"; then PORT="$(free_port)"; fi
  echo "$PORT" > "$STATE/port"
  echo "starting PostgreSQL on 127.0.0.1:$PORT" >&2
  as_server "$BIN/pg_ctl" -D "$DATA" -w -t 60 -l "$DATA/server.log" \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c max_connections=200 -c shared_buffers=256MB" start >/dev/null
fi
PORT="$(cat "$STATE/port")"
echo "$DATA" > "$STATE/datadir"

URL_BASE="postgres://postgres@127.0.0.1:$PORT"
if ! psql "$URL_BASE/postgres" -Atc "SELECT 1 FROM pg_database WHERE datname='$DBNAME'" | grep -q 1; then
  psql "$URL_BASE/postgres" -qc "CREATE DATABASE \"$DBNAME\"" >&2
fi
echo "$URL_BASE/$DBNAME"
