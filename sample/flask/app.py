"""Flask next door: a tiny Flask app sharing the NestJS sample's session.

Both apps sign the same cookie ("session", on 127.0.0.1, Path=/) with the same
SECRET_KEY, in the same format (nest-session writes Flask's signed cookies), so
a login made on the NestJS page shows here, and the counter counted here shows
there. Run it with Debian's Flask (python3-flask):

    PORT=5000 /usr/bin/python3 sample/flask/app.py

`npm run sample:flask` starts it next to the NestJS sample.
"""
import os
import sys
from importlib.metadata import version

from flask import Flask, flash, redirect, render_template_string, session

# The NestJS sample's development secret (sample/src/session-options.ts):
# the same default, so the two share sessions out of the box.
DEVELOPMENT_SECRET = "development secret: set SECRET_KEY"

app = Flask(__name__)
app.secret_key = os.environ.get("SECRET_KEY") or DEVELOPMENT_SECRET
if app.secret_key == DEVELOPMENT_SECRET:
    print("SECRET_KEY is not set: using the sample's development secret. Never run like this in production.", file=sys.stderr)

# The cookie the NestJS sample sets: Flask's defaults (name "session", Path=/,
# HttpOnly, 31 days when permanent) plus SameSite=Lax, as in session-options.ts.
# The login (on the NestJS side) makes the session permanent; Flask keeps that
# flag (it is "_permanent" in the data) and re-sends the cookie with Expires.
app.config.update(
    SESSION_COOKIE_NAME="session",
    SESSION_COOKIE_PATH="/",
    SESSION_COOKIE_HTTPONLY=True,
    SESSION_COOKIE_SAMESITE="Lax",
)

NEST_URL = os.environ.get("NEST_URL", "http://127.0.0.1:3000")

# render_template_string escapes every value (Flask turns autoescape on for it).
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Flask next door</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f3f6f4; color: #1d2330; }
  main { max-width: 40rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
  h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
  p.lead { margin: 0 0 1rem; color: #4a5468; }
  section { background: #fff; border: 1px solid #cfdcd3; border-radius: 8px; padding: 1rem 1.25rem; margin: 1rem 0; }
  .flash { border-radius: 8px; padding: .6rem 1rem; margin: .5rem 0; border: 1px solid #8cc9a0; background: #e8f5ec; }
  .flash.error { background: #fdecec; border-color: #e59a9a; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #eceef2; }
  th { width: 8rem; color: #4a5468; }
  .none { color: #8a93a6; font-style: italic; }
  button { font: inherit; padding: .35rem .9rem; border-radius: 6px; border: 1px solid #1f7a45; background: #1f7a45; color: #fff; cursor: pointer; }
  code { font-size: .85em; color: #4a5468; }
</style>
</head>
<body>
<main>
<h1>Flask next door</h1>
<p class="lead">Flask {{ flask_version }} reading the NestJS sample's cookie, signed with the same SECRET_KEY.
Back to the <a href="{{ nest_url }}">NestJS page</a>.</p>
{% for category, message in get_flashed_messages(with_categories=true) %}
<div class="flash {{ 'error' if category == 'error' else 'message' }}" role="{{ 'alert' if category == 'error' else 'status' }}">{{ message }}</div>
{% endfor %}
<section>
<table>
<tr><th scope="row">User</th><td id="user">{% if user is none %}<span class="none">nobody is logged in</span>{% else %}{{ user }}{% endif %}</td></tr>
<tr><th scope="row">Counter</th><td id="count">{{ count }}</td></tr>
</table>
</section>
<section>
<form method="post" action="/counter">
  <button>Count +1 in Flask</button> <code>POST /counter</code>
</form>
</section>
</main>
</body>
</html>
"""


@app.get("/")
def page():
    response = app.make_response(
        render_template_string(
            PAGE,
            user=session.get("user"),
            count=session.get("count", 0),
            nest_url=NEST_URL,
            flask_version=version("flask"),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@app.post("/counter")
def count():
    # The NestJS sample's key; its counter and this one are the same number.
    session["count"] = session.get("count", 0) + 1
    flash(f"Counted in Flask: the counter is now {session['count']}.")
    return redirect("/", code=303)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
