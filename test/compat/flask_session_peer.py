"""Flask-Session's record layout in Redis, written and read with Debian's
python3-redis and python3-msgpack (Debian's own Flask-Session is too old: it
pickles); the record code is flask_session_records.py, shared by every peer.

One JSON command on stdin, one JSON answer on stdout:
  {"op": "write", "port": P, "sid": S, "format": "msgpack"|"json"}
      stores the sample session as Flask-Session does: SET session:<sid> <bytes> EX 3600
  {"op": "read", "port": P, "sid": S}
      -> {"session": <the record, decoded as Flask-Session would, with $-type markers>}
"""
import json
import sys

import redis

from flask_session_records import KEY_PREFIX, decode, describe, encode, session_from


def main():
    command = json.load(sys.stdin)
    client = redis.Redis(host="127.0.0.1", port=command["port"])
    key = KEY_PREFIX + command["sid"]
    if command["op"] == "write":
        fmt = command["format"]
        client.set(key, encode(session_from({"format": fmt}), fmt), ex=3600)
        print(json.dumps({"ok": True}))
    else:
        print(json.dumps({"session": describe(decode(client.get(key)))}))


main()
