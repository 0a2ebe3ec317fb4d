#!/usr/bin/env bash
# Starts the NestJS sample and the Flask app next door (sample/flask/app.py),
# sharing one session: log in on one page, see it on the other.
#   NestJS: http://127.0.0.1:${PORT:-3000}    Flask: http://127.0.0.1:${FLASK_PORT:-5000}
# Both on 127.0.0.1 (open them there, not on localhost): a cookie belongs to a
# host, not to a port, so the two apps get the same cookie. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${FLASK_PYTHON:-/usr/bin/python3}"
nest_port="${PORT:-3000}"
flask_port="${FLASK_PORT:-5000}"
nest_url="http://127.0.0.1:$nest_port"
flask_url="http://127.0.0.1:$flask_port"

if ! "$python" -c 'import flask' 2>/dev/null; then
  echo "The Flask app needs Debian's Flask: run 'sudo apt-get install python3-flask'" \
    "(or set FLASK_PYTHON to a python3 that has Flask)." >&2
  exit 1
fi
if [ "${SESSION_STORE:-cookie}" != cookie ]; then
  # With a server-side store the cookie holds only a session id, which plain Flask cannot open.
  echo "The Flask app reads signed cookies only: unset SESSION_STORE (now '$SESSION_STORE')." >&2
  exit 1
fi

accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$nest_port" "$flask_port"; do
  if accepts "$port"; then
    echo "Port $port on 127.0.0.1 is already in use: stop what runs there, or choose PORT (NestJS) and FLASK_PORT." >&2
    exit 1
  fi
done

echo "Building the package and the sample..."
npm run --silent build
node_modules/.bin/tsc -p sample/tsconfig.json

pids=()
stop() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

PORT="$nest_port" FLASK_URL="$flask_url" node sample/dist/main.js &
pids+=($!)
PORT="$flask_port" NEST_URL="$nest_url" "$python" sample/flask/app.py &
pids+=($!)

# Waits until something accepts connections on the port, or its process has exited.
wait_for_port() {
  local port=$1 pid=$2
  for _ in $(seq 300); do
    accepts "$port" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
if ! wait_for_port "$nest_port" "${pids[0]}" || ! wait_for_port "$flask_port" "${pids[1]}"; then
  echo "One of the apps did not start: see its output above." >&2
  exit 1
fi

cat <<MESSAGE

  NestJS sample:    $nest_url
  Flask next door:  $flask_url

Log in on the NestJS page, then open the Flask page: same cookie, same secret,
same login. A count made in Flask shows on the NestJS page. Ctrl-C stops both.

MESSAGE
# Until Ctrl-C, or until one of them stops: then the other is stopped too.
wait -n "${pids[@]}"
