#!/usr/bin/env bash
# Make sure a redis-server binary exists (make run / make test start a private one on a free port), unless
# MEDQ_REDIS_URL points at a Redis that already answers.
set -euo pipefail
if [ -n "${MEDQ_REDIS_URL:-}" ] && command -v redis-cli >/dev/null && redis-cli -u "$MEDQ_REDIS_URL" ping >/dev/null 2>&1; then
  exit 0
fi
command -v redis-server >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "redis-server is missing; installing Debian's redis-server package"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  command -v redis-server >/dev/null && exit 0
fi
cat >&2 <<'MSG'
redis-server is not installed and could not be installed automatically.
Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis),
or set MEDQ_REDIS_URL to a Redis that is running.
MSG
exit 1
