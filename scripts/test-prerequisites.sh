#!/usr/bin/env bash
# Runs before every `npm test` (npm's pretest) and so in CI: makes sure the
# system packages the test suite needs are installed. This list is the only one.
#
# The check is a single dpkg-query call. When packages are missing it installs
# them with apt-get (as root, or through sudo) and says so; where it cannot, it
# stops with one message naming what to install, instead of a test run in which
# every test that needs them fails on its own.
#
# The tests start their own servers on free loopback ports: Debian's services
# are not used, and an install here keeps them from starting.
set -euo pipefail

packages=(
  python3-flask      # Flask itself, the reference for cookie compatibility
  python3-redis      # Flask-Session's Redis store
  python3-msgpack    # Flask-Session's record format
  python3-sqlalchemy # Flask-Session's SQL store
  python3-psycopg2   #   ... on PostgreSQL
  python3-pymysql    #   ... on MariaDB
  python3-boto3      # Flask-Session's DynamoDB store
  redis-server       # Redis and Redis Cluster servers
  memcached
  postgresql
  mariadb-server
  chromium           # the browser tests
)

# Only for machines without dpkg that have these by other means (FLASK_PYTHON and so on).
if [ "${NEST_SESSION_SYSTEM_CHECK:-}" = off ]; then exit 0; fi

missing_packages() {
  local installed
  installed=" $(dpkg-query -W -f='${db:Status-Abbrev}${Package} ' "${packages[@]}" 2>/dev/null | sed 's/ii /+/g') "
  for package in "${packages[@]}"; do
    [[ $installed == *" +$package "* ]] || printf '%s ' "$package"
  done
}

cannot_install() {
  {
    echo "npm test: the test suite needs these Debian packages, and $1:"
    echo "    ${missing% }"
    echo "Install them, then run npm test again:"
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing% }"
    echo "(The tests start their own servers; Debian's services need not run.)"
  } >&2
  exit 1
}

if ! command -v dpkg-query >/dev/null; then
  missing="${packages[*]} "
  cannot_install "this machine has no dpkg to check them (set NEST_SESSION_SYSTEM_CHECK=off to run the tests anyway)"
fi
missing=$(missing_packages)
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && { [ -t 0 ] || sudo -n true 2>/dev/null; }; then
  as_root=(sudo)
else
  cannot_install "installing them needs root or sudo"
fi
command -v apt-get >/dev/null || cannot_install "this machine has no apt-get"

echo "npm test: installing the Debian packages the tests need: ${missing% }" >&2
[ ${#as_root[@]} -eq 0 ] || echo "npm test: through sudo (it may ask for your password)" >&2

# Debian starts a package's service on install unless policy-rc.d says no (exit 101).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  "${as_root[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
  trap '"${as_root[@]}" rm -f "$policy"' EXIT
fi

echo "+ apt-get update" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
echo "+ apt-get install -y --no-install-recommends ${missing% }" >&2
# shellcheck disable=SC2086 # one word per package
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null

missing=$(missing_packages)
[ -z "$missing" ] || cannot_install "apt-get did not install them"
echo "npm test: the Debian packages are installed." >&2
