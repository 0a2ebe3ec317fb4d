"""A real Flask app for nest-session's compatibility tests.

Reads one JSON command on stdin and prints one JSON answer:
  {"op": "make", "secret": ..., "fallbacks": [...], "case": "types"|"simple", "permanent": bool}
      -> {"cookie": "<value of the session cookie Flask set>", "header": "<whole Set-Cookie>"}
  {"op": "read", "secret": ..., "fallbacks": [...], "cookie": "..."}
      -> {"session": <the session Flask opened, described with $-type markers>}

Debian's Flask (2.2) predates SECRET_KEY_FALLBACKS (Flask 3.1), so the app's
session interface adds them exactly as Flask 3.1.1 does: fallbacks first, the
current key last (the one that signs), on itsdangerous's key rotation.
"""
import hashlib
import json
import sys
from datetime import datetime, timezone
from uuid import UUID

from flask import Flask, session
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from markupsafe import Markup

from describe_value import describe


class FallbackKeysInterface(SecureCookieSessionInterface):
    def get_signing_serializer(self, app):
        if not app.secret_key:
            return None
        keys = [*app.config.get("SECRET_KEY_FALLBACKS", []), app.secret_key]
        return URLSafeTimedSerializer(
            keys,
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={"key_derivation": self.key_derivation, "digest_method": hashlib.sha1},
        )


CASES = {
    "simple": lambda: {"user_id": 7},
    "types": lambda: {
        "string": "h\u00e9llo \u2713",
        "int": 42,
        "float": 1.5,
        "bool": True,
        "none": None,
        "nested": {"a": {"b": [1, 2, {"c": "d"}]}},
        "list": [1, "two", 3.5],
        "tuple": (1, 2),
        "date": datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        "bytes": b"\x00\xffhello",
        "escape": {" t": "a"},
        "markup": Markup("<b>bold</b>"),
        "uuid": UUID("12345678123456781234567812345678"),
    },
}


def make_app(command):
    app = Flask(__name__)
    app.secret_key = command["secret"]
    app.config["SECRET_KEY_FALLBACKS"] = command.get("fallbacks", [])
    app.session_interface = FallbackKeysInterface()

    @app.route("/make")
    def make():
        session.update(CASES[command["case"]]())
        if command.get("permanent"):
            session.permanent = True
        return "ok"

    @app.route("/read")
    def read():
        return json.dumps({"session": describe(dict(session))})

    return app


def main():
    command = json.load(sys.stdin)
    # Without the cookie jar, which would replace the Cookie header sent here.
    client = make_app(command).test_client(use_cookies=False)
    if command["op"] == "make":
        response = client.get("/make")
        header = response.headers["Set-Cookie"]
        value = header.split(";", 1)[0].split("=", 1)[1]
        print(json.dumps({"cookie": value, "header": header}))
    else:
        response = client.get("/read", headers={"Cookie": f"session={command['cookie']}"})
        print(response.get_data(as_text=True))


main()
