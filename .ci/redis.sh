#!/usr/bin/env bash
# Start a throwaway Redis (Debian's redis-server) on loopback for the test suite and print its URL.
# Usage: eval "$(bash .ci/redis.sh)"   -> exports PHOTOINDEX_TEST_REDIS_URL
set -euo pipefail
port=${REDIS_PORT:-63799}
dir=${REDIS_DIR:-/tmp/photoindex-redis}
if ! command -v redis-server >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) >&2
fi
if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no --daemonize yes \
    --logfile "$dir/log" >&2
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
echo "export PHOTOINDEX_TEST_REDIS_URL=redis://127.0.0.1:$port/0"
