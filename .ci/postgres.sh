#!/usr/bin/env bash
# Start a throwaway PostgreSQL (Debian's packages) on loopback for the test suite and print its URL.
# Usage: eval "$(bash .ci/postgres.sh)"   -> exports PHOTOINDEX_TEST_PG_URL
set -euo pipefail
port=${PG_PORT:-54329}
dir=${PG_DIR:-/tmp/photoindex-pg}
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if ! as_pg "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
  rm -rf "$dir"; mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U photoindex --auth=trust -E UTF8 >/dev/null
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2
fi
as_pg "$bin/psql" -q -h 127.0.0.1 -p "$port" -U photoindex -d postgres \
  -c "SELECT 1 FROM pg_database WHERE datname='photoindex_test'" -tA | grep -q 1 ||
  as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U photoindex photoindex_test >&2
echo "export PHOTOINDEX_TEST_PG_URL=postgresql+psycopg://photoindex@127.0.0.1:$port/photoindex_test"
