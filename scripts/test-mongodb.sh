#!/usr/bin/env bash
# MongoDBSessionInterface against a real MongoDB server: the store contract on
# Express and Fastify, the MongoDB-specific tests, and checks of the server
# behaviour the in-process stand-in (test/mongodb/mongodb-stand-in.ts)
# reproduces. `npm test` runs the same tests on the stand-in only: no MongoDB
# server can be installed on the machines it runs on.
#
#   MONGODB_URL=mongodb://root:secret@127.0.0.1:27017 bash scripts/test-mongodb.sh
#
# MongoDB 4.4 or later (a test hides an index), enforcing access control (the refusal test makes users
# of its own): mongod --auth, or
#   docker run --rm -p 27017:27017 -e MONGO_INITDB_ROOT_USERNAME=root -e MONGO_INITDB_ROOT_PASSWORD=secret mongo:7
# The tests create a database nest_session_test_<random> and drop it, and its
# users, at the end. Extra arguments go to Jest (e.g. -t 'deadline').
set -euo pipefail

if [ -z "${MONGODB_URL:-}" ]; then
  echo "scripts/test-mongodb.sh needs a MongoDB server (4.4 or later): set MONGODB_URL, e.g." >&2
  echo "  MONGODB_URL=mongodb://root:secret@127.0.0.1:27017 bash scripts/test-mongodb.sh" >&2
  echo "(docker run --rm -p 27017:27017 -e MONGO_INITDB_ROOT_USERNAME=root -e MONGO_INITDB_ROOT_PASSWORD=secret mongo:7" >&2
  echo "starts one where Docker is available)." >&2
  exit 1
fi

cd "$(dirname "$0")/.."
exec node --experimental-vm-modules --no-warnings=ExperimentalWarning node_modules/jest/bin/jest.js \
  --testMatch '**/test/mongodb/*.real-server.ts' --runInBand "$@"
