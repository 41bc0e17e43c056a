#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 with a test role and database,
# then print the URL the tests use. Used by .ci/run and `nox -s tests`.
set -euo pipefail
url="postgresql://kitaru_test:kitaru_test@127.0.0.1:5432/kitaru_test"

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_lsclusters >/dev/null 2>&1; then
    read -r ver name _ < <(pg_lsclusters --no-header | head -n 1)
    pg_ctlcluster "$ver" "$name" start >&2
  else
    echo "PostgreSQL is not running on 127.0.0.1:5432 and pg_lsclusters is missing;" \
         "start a server or set KITARU_TEST_BACKENDS=sqlite" >&2
    exit 1
  fi
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- psql -qtA "$@"; else psql -h 127.0.0.1 -U postgres -qtA "$@"; fi
}
if [ "$(as_postgres -c "SELECT 1 FROM pg_roles WHERE rolname='kitaru_test'")" != 1 ]; then
  as_postgres -c "CREATE ROLE kitaru_test LOGIN PASSWORD 'kitaru_test' CREATEDB" >&2
fi
if [ "$(as_postgres -c "SELECT 1 FROM pg_database WHERE datname='kitaru_test'")" != 1 ]; then
  as_postgres -c "CREATE DATABASE kitaru_test OWNER kitaru_test" >&2
fi
echo "$url"
