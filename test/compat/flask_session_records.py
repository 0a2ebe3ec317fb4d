"""What Flask-Session 0.8 stores for every backend, reproduced for the peers
(Debian has neither Flask-Session 0.8 nor msgspec).

- The store key is SESSION_KEY_PREFIX + sid ("session:" by default; base.py
  _get_store_id).
- The value is dict(session), `_permanent` included, encoded by msgspec
  (base.py MsgSpecSerializer): MessagePack (bin for bytes, the timestamp
  extension for datetimes) or compact UTF-8 JSON (bytes as base64, datetimes as
  RFC 3339). Reading tries the configured format, then the other one.
- Expiry is datetime.utcnow() + PERMANENT_SESSION_LIFETIME (31 days by
  default), computed in Python, not by the database.
"""
import base64
import json
import time
from datetime import datetime, timezone

import msgpack

from describe_value import describe  # noqa: F401  (re-exported for the peers)

KEY_PREFIX = "session:"
LIFETIME_SECONDS = 31 * 24 * 3600  # Flask's PERMANENT_SESSION_LIFETIME default

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


def session_from(command):
    """The session a command asks to write: its own ($-markers decoded) or the sample one."""
    if "session" in command:
        return undescribe(command["session"])
    if command.get("format", "msgpack") == "msgpack":
        return {**SESSION, **MSGPACK_ONLY}
    return dict(SESSION)


def undescribe(value):
    """The inverse of describe_value.describe for the markers a test sends: $bytes and $date."""
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        if set(value) == {"$date"}:
            return datetime.fromisoformat(value["$date"].replace("Z", "+00:00"))
        return {k: undescribe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [undescribe(v) for v in value]
    return value


def _json_default(value):
    # As msgspec.json encodes them.
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode(session, fmt):
    if fmt == "msgpack":
        return msgpack.packb(session, use_bin_type=True, datetime=True)
    if fmt == "json":
        return json.dumps(session, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode()
    raise ValueError(f"Unsupported serialization format: {fmt}")


def decode(raw, fmt="msgpack"):
    """MsgSpecSerializer.decode: the configured format, then the other (0.8's pickle fallback left out)."""
    def from_msgpack():
        return msgpack.unpackb(raw, raw=False, timestamp=3)

    def from_json():
        return json.loads(raw)

    attempts = [from_msgpack, from_json] if fmt == "msgpack" else [from_json, from_msgpack]
    for attempt in attempts:
        try:
            value = attempt()
        except Exception:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("Failed to deserialize session data")


def retry_query(operation, rollback=lambda: None, max_attempts=3, delay=0.3, backoff=2):
    """_utils.retry_query: any exception is retried after 0.3 s, then 0.6 s; the third one is raised."""
    for attempt in range(max_attempts):
        try:
            return operation()
        except Exception:
            rollback()
            if attempt == max_attempts - 1:
                raise
            time.sleep(delay * backoff**attempt)
