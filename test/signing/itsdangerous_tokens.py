"""Tokens made by the real itsdangerous (Debian's python3-itsdangerous, with Flask's TaggedJSONSerializer).

Reads {"seed": int, "count": int} on stdin and prints a JSON list of tokens:
  {"kind": "timed", "keys": [...], "digest": ..., "now": int, "token": ..., "json": <the value as plain JSON>}
  {"kind": "signer", "keys": [...], "digest": ..., "salt": ..., "token": ..., "value": <the signed text>}
Timed tokens are what Flask's session cookie is; signer tokens what Flask-Session's signed sid is.
"""
import base64
import hashlib
import json
import sys
import random

from flask.json.tag import TaggedJSONSerializer
from itsdangerous import Signer, TimestampSigner, URLSafeTimedSerializer

command = json.load(sys.stdin)
rng = random.Random(command["seed"])
DIGESTS = ["sha1", "sha1", "sha256", "sha512", "md5"]
KEYS = ["old", "current", "k\u00e9y", "another key"]


class FixedTimeSigner(TimestampSigner):
    now = 1

    def get_timestamp(self):
        return FixedTimeSigner.now


def text():
    kind = rng.random()
    if kind < 0.2:
        return rng.choice(["lorem ipsum ", "ab", "x"]) * rng.randrange(1, 80)  # compresses
    alphabet = [chr(rng.choice([rng.randrange(32, 127), rng.randrange(0xA0, 0xD800), rng.randrange(0x10000, 0x110000)])) for _ in range(8)]
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 20)))


def value(depth=0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return text()
    if kind == 1:
        return rng.randrange(-(2**53), 2**53)
    if kind == 2:
        return rng.uniform(-1e6, 1e6)
    if kind == 3:
        return rng.choice([True, False])
    if kind == 4:
        return None
    if kind == 5:
        return rng.randrange(100)
    if kind in (6, 7):
        return {text(): value(depth + 1) for _ in range(rng.randrange(4))}
    return [value(depth + 1) for _ in range(rng.randrange(4))]


tokens = []
for _ in range(command["count"]):
    keys = rng.sample(KEYS, rng.randrange(1, 4))
    digest = rng.choice(DIGESTS)
    FixedTimeSigner.now = rng.choice([1, 255, 256, 65535, 65536, 2**32 - 1, 2**32, rng.randrange(1, 2**48), rng.randrange(2**30, 2**31)])
    serializer = URLSafeTimedSerializer(
        keys,
        salt="cookie-session",
        serializer=TaggedJSONSerializer(),
        signer=FixedTimeSigner,
        signer_kwargs={"key_derivation": "hmac", "digest_method": getattr(hashlib, digest)},
    )
    session = {text(): value() for _ in range(rng.randrange(1, 6))}
    tokens.append({"kind": "timed", "keys": keys, "digest": digest, "now": FixedTimeSigner.now, "token": serializer.dumps(session), "json": json.dumps(session)})

    sid = base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode()
    signed = sid if rng.random() < 0.7 else text() or "x"
    signer = Signer(keys[-1], salt="flask-session", key_derivation="hmac", digest_method=getattr(hashlib, digest))
    tokens.append({"kind": "signer", "keys": keys, "digest": digest, "salt": "flask-session", "token": signer.sign(signed).decode(), "value": signed})

print(json.dumps(tokens))
