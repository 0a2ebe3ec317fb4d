import { html, SafeHtml } from './html.js';
import type { Flash, SampleData } from './sample-session.js';

/** What the page shows; every value from the session is escaped by `html`. */
export type PageModel = {
  /** The whole session as the server opened it, flashed messages already taken out. */
  data: SampleData & Record<string, unknown>;
  permanent: boolean;
  flashes: Flash[];
  /** Where the data lives, in words (a signed cookie, or a store). */
  storage: string;
  /** The Flask app next door, when `npm run sample:flask` started one. */
  flaskUrl?: string;
};

/** A session value in words: strings as they are, anything else (a client may send any JSON) as JSON. */
function show(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function cartItems(cart: unknown): SafeHtml {
  const items = (cart as { items?: unknown } | undefined)?.items;
  if (cart === undefined) return html`<span class="none">empty</span>`;
  if (!items || typeof items !== 'object' || Array.isArray(items)) return html`${show(cart)}`;
  const entries = Object.entries(items);
  if (entries.length === 0) return html`<span class="none">empty</span>`;
  return html`<ul class="cart">${entries.map(([name, quantity]) => html`<li>${name} × ${show(quantity)}</li>`)}</ul>`;
}

function cookieState({ data, permanent }: PageModel): string {
  // `_permanent` alone is a store's default for new sessions (Flask-Session's SESSION_PERMANENT), never saved.
  if (Object.keys(data).every((key) => key === '_permanent')) return 'none: the session holds nothing, so the browser holds no session cookie';
  if (permanent) return 'permanent: it has an Expires date, 31 days ahead';
  return 'ends with the browser: no Expires date (logging in makes it permanent)';
}

const STYLE = `
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  main { max-width: 46rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
  h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.1rem; margin: 0 0 .75rem; }
  p.lead { margin: 0 0 1rem; color: #4a5468; }
  section { background: #fff; border: 1px solid #d8dce4; border-radius: 8px; padding: 1rem 1.25rem; margin: 1rem 0; }
  .flash { border-radius: 8px; padding: .6rem 1rem; margin: .5rem 0; border: 1px solid; }
  .flash.message { background: #e8f5ec; border-color: #8cc9a0; }
  .flash.error { background: #fdecec; border-color: #e59a9a; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #eceef2; vertical-align: top; }
  th { width: 8rem; color: #4a5468; font-weight: 600; }
  .none { color: #8a93a6; font-style: italic; }
  ul.cart { margin: 0; padding-left: 1.2rem; }
  pre { background: #f4f5f7; padding: .6rem; border-radius: 6px; overflow-x: auto; margin: .5rem 0 0; white-space: pre-wrap; word-break: break-all; }
  form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: 0 0 .75rem; }
  form:last-child { margin-bottom: 0; }
  label { font-weight: 600; }
  input { font: inherit; padding: .3rem .5rem; border: 1px solid #b8bfcc; border-radius: 6px; width: 10rem; }
  button { font: inherit; padding: .35rem .9rem; border-radius: 6px; border: 1px solid #2f5fd0; background: #2f5fd0; color: #fff; cursor: pointer; }
  button.secondary { background: #fff; color: #2f5fd0; }
  button.danger { background: #fff; color: #b42323; border-color: #b42323; }
  code { font-size: .85em; color: #4a5468; }
`;

export function renderPage(model: PageModel): string {
  const { data, flashes, flaskUrl } = model;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nest-session sample</title>
<style>${new SafeHtml(STYLE) /* our own constant, not user data */}</style>
</head>
<body>
<main>
<h1>nest-session sample</h1>
<p class="lead">Your session, kept in ${model.storage}.
${flaskUrl ? html`The <a href="${flaskUrl}">Flask app next door</a> shares it.` : html`<code>npm run sample:flask</code> starts a Flask app next door that shares it.`}</p>

${flashes.map(([category, message]) =>
  html`<div class="flash ${category === 'error' ? 'error' : 'message'}" role="${category === 'error' ? 'alert' : 'status'}">${show(message)}</div>`,
)}

<section aria-labelledby="session-title">
<h2 id="session-title">The session, as the server sees it</h2>
<table>
<tr><th scope="row">User</th><td id="user">${data.user === undefined ? html`<span class="none">nobody is logged in</span>` : show(data.user)}</td></tr>
<tr><th scope="row">Counter</th><td id="count">${show(data.count ?? 0)}</td></tr>
<tr><th scope="row">Cart</th><td id="cart">${cartItems(data.cart)}</td></tr>
<tr><th scope="row">Last error</th><td id="last-error">${data.lastError === undefined ? html`<span class="none">none</span>` : show(data.lastError)}</td></tr>
<tr><th scope="row">Cookie</th><td id="cookie">${cookieState(model)}</td></tr>
</table>
<details>
<summary>Everything in the session</summary>
<pre id="raw">${JSON.stringify(data, null, 2)}</pre>
</details>
</section>

<section aria-labelledby="actions-title">
<h2 id="actions-title">Change it</h2>
<form method="post" action="/form/counter">
  <button>Count +1</button> <code>POST /form/counter</code>
</form>
<form method="post" action="/form/cart">
  <label for="item">Item</label>
  <input id="item" name="item" value="apple" required maxlength="40">
  <button>Add to cart</button> <code>POST /form/cart</code>
</form>
<form method="post" action="/form/login">
  <label for="name">Name</label>
  <input id="name" name="user" required maxlength="40" autocomplete="username" placeholder="your name">
  <button>Log in</button> <code>POST /form/login</code>
</form>
<form method="post" action="/form/logout">
  <button class="secondary">Log out</button> <code>POST /form/logout</code>
</form>
<form method="post" action="/form/fail">
  <button class="danger">Place an order that fails</button> <code>POST /form/fail: throws 400 after writing lastError</code>
</form>
</section>

<p class="lead">The same session as JSON: <a href="/cart">GET /cart</a>, <a href="/me">GET /me</a> (401 until you log in).
curl examples: sample/README.md.</p>
</main>
</body>
</html>
`.html;
}
