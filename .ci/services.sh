#!/usr/bin/env bash
# Start PostgreSQL, Redis and the test toolchains if this machine lacks them. Safe to run twice.
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

apt_updated=0
need_pkg() {
  # need_pkg COMMAND PACKAGE...: install the packages when COMMAND is missing.
  local cmd="$1"
  shift
  if ! command -v "$cmd" >/dev/null 2>&1; then
    if [ "$apt_updated" = 0 ]; then
      apt-get update -qq
      apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}

need_pkg pg_isready postgresql postgresql-client
need_pkg redis-server redis-server redis-tools
need_pkg python3 python3
# Test toolchains: promtool (alert rules), systemd-analyze (unit files), and the receiver
# examples in Go, Ruby and Debian's Python with Flask, FastAPI and Django.
need_pkg promtool --no-install-recommends prometheus
systemctl disable --now prometheus >/dev/null 2>&1 || true
need_pkg systemd-analyze systemd
need_pkg go golang-go
need_pkg ruby ruby
if ! /usr/bin/python3 -c 'import flask, fastapi, django, httpx, uvicorn' 2>/dev/null; then
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-flask python3-fastapi python3-django \
    python3-uvicorn python3-httpx >/dev/null
fi

if ! pg_up; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! redis_up; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

for _ in $(seq 1 30); do
  if pg_up && redis_up; then break; fi
  sleep 1
done
pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
redis_up || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }
psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname = 'test'" | grep -q 1 ||
  psql -h 127.0.0.1 -U postgres -d postgres -c "create database test" >/dev/null
echo "PostgreSQL and Redis are up"
