"""Flask-Session's record layout, written and read with Debian's python3-redis
and python3-msgpack (Debian's own Flask-Session is too old: it pickles).

One JSON command on stdin, one JSON answer on stdout:
  {"op": "write", "port": P, "sid": S, "format": "msgpack"|"json"}
      stores the session below as Flask-Session does: SET session:<sid> <bytes> EX 3600
  {"op": "read", "port": P, "sid": S}
      -> {"session": <the record, decoded as Flask-Session would, with $-type markers>}
"""
import json
import sys
from datetime import datetime, timezone

import msgpack
import redis

from describe_value import describe

SESSION = {
    "_permanent": True,
    "user_id": 7,
    "name": "h\u00e9llo",
    "ratio": 0.5,
    "flags": [True, False, None],
    "nested": {"a": [1, 2, {"b": "c"}]},
}
MSGPACK_ONLY = {
    "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    "raw": b"\x00\xff",
}


def loads(raw):
    # Flask-Session tries msgpack, then json (serialization.py).
    try:
        value = msgpack.unpackb(raw, raw=False, timestamp=3)
        if isinstance(value, dict):
            return value
    except Exception:
        pass
    return json.loads(raw)


def main():
    command = json.load(sys.stdin)
    client = redis.Redis(host="127.0.0.1", port=command["port"])
    key = "session:" + command["sid"]
    if command["op"] == "write":
        if command["format"] == "msgpack":
            raw = msgpack.packb({**SESSION, **MSGPACK_ONLY}, use_bin_type=True, datetime=True)
        else:
            raw = json.dumps(SESSION).encode()
        client.set(key, raw, ex=3600)
        print(json.dumps({"ok": True}))
    else:
        print(json.dumps({"session": describe(loads(client.get(key)))}))


main()
