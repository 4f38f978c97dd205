#!/usr/bin/env bash
# Make sure the local PostgreSQL and Redis that `make test` uses are up; start them if they are
# installed but stopped; fail with a clear message if they are absent. Never falls back to SQLite.
set -u

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL…"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 0.5; done
  fi
fi
pg_up || { echo "PostgreSQL is not reachable at 127.0.0.1:5432 and could not be started. Install it (apt-get install postgresql) or set TEST_DATABASE_URL." >&2; exit 1; }

if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "starting Redis…"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 30); do redis_up && break; sleep 0.2; done
  fi
fi
redis_up || { echo "Redis is not reachable at 127.0.0.1:6379 and could not be started. Install it (apt-get install redis-server) or set TEST_REDIS_URL." >&2; exit 1; }
echo "PostgreSQL and Redis are up."
