#!/usr/bin/env bash
# Starts the PostgreSQL and MariaDB servers that the dialect tests use, when they are
# installed but not running. With CI=true a server that cannot be reached is an error.
set -euo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_up() {
  for _ in $(seq 1 60); do up "$1" && return 0; sleep 0.5; done
  return 1
}

fail() {
  echo "services: $1"
  if [ "${CI:-}" = true ]; then exit 1; fi
}

if ! up 5432; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
  wait_up 5432 || fail "PostgreSQL is not reachable on 127.0.0.1:5432 (apt-get install postgresql)"
fi

if ! up 3306; then
  if [ -x /usr/sbin/mariadbd ]; then
    echo "services: starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  fi
  wait_up 3306 || fail "MariaDB is not reachable on 127.0.0.1:3306 (apt-get install mariadb-server)"
fi
exit 0
