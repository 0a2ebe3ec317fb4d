/**
 * The sample in a real browser: Debian's headless Chromium, driven by
 * playwright-core, clicks through the page as a person would, and through the
 * Flask app next door (sample/flask/app.py, on Debian's Flask) that shares its
 * cookie. Each step leaves a screenshot in test-results/browser/.
 */
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { chromium, type Browser, type BrowserContext, type Cookie, type Page } from 'playwright-core';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/support/loopback-servers.js';
import { AppModule } from '../src/app.module.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Debian's interpreter: python3-flask installs for it, not for other pythons on the PATH. */
const PYTHON = process.env.FLASK_PYTHON ?? '/usr/bin/python3';
const FLASK_APP = fileURLToPath(new URL('../flask/app.py', import.meta.url));
const SCREENSHOTS = fileURLToPath(new URL('../../test-results/browser/', import.meta.url));
const BROWSER_TIMEOUT = 60_000;
const THIRTY_DAYS = 30 * 24 * 3600;

/** The Flask app next door, on 127.0.0.1 and a free port, started and stopped by the test. */
class FlaskNextDoor {
  private output = '';

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk));
  }

  static async start(env: NodeJS.ProcessEnv): Promise<FlaskNextDoor> {
    const port = await freePort();
    const child = spawn(PYTHON, [FLASK_APP], { env: { ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
    const flask = new FlaskNextDoor(child, `http://127.0.0.1:${port}`);
    await flask.ready(port);
    return flask;
  }

  private async ready(port: number): Promise<void> {
    let failure: Error | undefined;
    this.child.once('error', (error) => (failure = error));
    this.child.once('exit', (code) => (failure ??= new Error(`it exited with code ${code}`)));
    for (let attempt = 0; attempt < 400; attempt++) {
      if (failure) {
        const reason = `${failure.message}\n${this.output}`;
        if (/No module named '?flask|ENOENT/.test(reason)) {
          throw new Error(`The Flask app next door needs Debian's Flask: run "sudo apt-get install python3-flask" (or set FLASK_PYTHON). ${reason}`);
        }
        throw new Error(`sample/flask/app.py did not start: ${reason}`);
      }
      if (await accepts(port)) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`sample/flask/app.py did not accept connections on port ${port}:\n${this.output}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.kill('SIGTERM');
    });
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

let browser: Browser;
let context: BrowserContext;
let page: Page;
let app: INestApplication;
let nestUrl: string;
let flask: FlaskNextDoor | undefined;
/** Every Set-Cookie header the browser received, as the servers wrote it (headers read as they arrive). */
let setCookieHeaders: Array<Promise<string[]>>;
const savedEnv = { ...process.env };

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`The browser test needs Debian's Chromium at ${CHROMIUM}: run "sudo apt-get install chromium" (or set CHROMIUM_PATH).`);
  }
  rmSync(SCREENSHOTS, { recursive: true, force: true });
  mkdirSync(SCREENSHOTS, { recursive: true });
  // launch() gives the browser a new, empty profile (user data dir) of its own, deleted at close().
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, BROWSER_TIMEOUT);
afterAll(() => browser?.close());

beforeEach(async () => {
  // The sample's defaults: signed cookies and, with no SECRET_KEY, the development
  // secret, which the Flask app must share for the round trip below to work.
  delete process.env.SECRET_KEY;
  delete process.env.SESSION_STORE;
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  app = moduleRef.createNestApplication({ logger: false });
  await app.listen(0, '127.0.0.1');
  nestUrl = await app.getUrl();
  context = await browser.newContext({ viewport: { width: 900, height: 1000 } });
  page = await context.newPage();
  setCookieHeaders = [];
  page.on('response', (response) => {
    const headers = response.headersArray().then((all) => all.filter((h) => h.name.toLowerCase() === 'set-cookie').map((h) => h.value));
    setCookieHeaders.push(headers);
  });
}, BROWSER_TIMEOUT);

afterEach(async () => {
  await context?.close();
  await flask?.stop();
  flask = undefined;
  await app?.close();
  for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key];
  Object.assign(process.env, savedEnv);
});

/** Saves what the browser shows now as test-results/browser/<step>.png. */
async function screenshot(step: string): Promise<void> {
  const path = join(SCREENSHOTS, `${step}.png`);
  await page.screenshot({ path, fullPage: true });
  expect(statSync(path).size).toBeGreaterThan(1000);
}

/** Clicks a form's button and waits for the page the browser lands on after the redirect. */
async function press(name: string): Promise<void> {
  await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name, exact: true }).click()]);
}

/** The text of a cell of the session table (on either app's page). */
async function shown(id: 'user' | 'count' | 'cart' | 'last-error' | 'cookie'): Promise<string> {
  return (await page.locator(`#${id}`).innerText()).trim();
}

/** The flashed messages on the page. */
async function flashes(): Promise<string[]> {
  return page.locator('.flash').allInnerTexts();
}

/**
 * Every Set-Cookie header so far, from either app, has the sample's attributes
 * (Chromium reports a cookie without SameSite as Lax, so the headers are read too).
 */
async function expectSetCookieAttributes(): Promise<string[]> {
  const headers = (await Promise.all(setCookieHeaders)).flat();
  for (const header of headers) {
    expect(header).toMatch(/^session=/);
    expect(header).toMatch(/; HttpOnly(;|$)/);
    expect(header).toMatch(/; Path=\/(;|$)/);
    expect(header).toMatch(/; SameSite=Lax(;|$)/);
  }
  return headers;
}

/** The one cookie the browser holds for 127.0.0.1, with the attributes the sample sets. */
async function sessionCookie({ permanent }: { permanent: boolean }): Promise<Cookie> {
  const headers = await expectSetCookieAttributes();
  expect(headers.at(-1)).toMatch(permanent ? /; Expires=/ : /^(?!.*Expires=)/);
  const cookies = await context.cookies();
  expect(cookies.map((cookie) => cookie.name)).toEqual(['session']);
  const [cookie] = cookies;
  expect(cookie).toMatchObject({ domain: '127.0.0.1', path: '/', httpOnly: true, sameSite: 'Lax', secure: false });
  if (permanent) expect(cookie.expires).toBeGreaterThan(Date.now() / 1000 + THIRTY_DAYS);
  else expect(cookie.expires).toBe(-1); // a browser-session cookie: no Expires
  // HttpOnly: the page's scripts cannot read it.
  expect(await page.evaluate('document.cookie')).toBe('');
  return cookie;
}

test(
  'a person logs in, counts, fills the cart, reloads, fails and logs out',
  async () => {
    await page.goto(nestUrl);
    expect(await page.title()).toBe('nest-session sample');
    expect(await shown('user')).toBe('nobody is logged in');
    expect(await shown('count')).toBe('0');
    expect(await shown('cart')).toBe('empty');
    expect(await shown('last-error')).toBe('none');
    expect(await context.cookies()).toEqual([]); // looking sets no cookie
    await screenshot('01-first-visit');

    await press('Count +1');
    expect(await flashes()).toEqual(['Counted: the counter is now 1.']);
    expect(await shown('count')).toBe('1');
    expect(await shown('cookie')).toMatch(/^ends with the browser/);
    await sessionCookie({ permanent: false });
    await screenshot('02-counted');

    await page.getByLabel('Item').fill('pear');
    await press('Add to cart');
    expect(await flashes()).toEqual(['Added one pear to the cart (1 in it now).']);
    expect(await shown('cart')).toBe('pear × 1');
    expect(await shown('count')).toBe('1');
    await sessionCookie({ permanent: false });
    await screenshot('03-added-to-cart');

    await page.getByLabel('Name').fill('alice');
    await press('Log in');
    expect(await flashes()).toEqual(['Logged in as alice: the session started afresh, and its cookie is now permanent.']);
    expect(await shown('user')).toBe('alice');
    expect(await shown('count')).toBe('0');
    expect(await shown('cart')).toBe('empty');
    expect(await shown('cookie')).toMatch(/^permanent/);
    await sessionCookie({ permanent: true });
    await screenshot('04-logged-in');

    await press('Count +1');
    await press('Count +1');
    expect(await flashes()).toEqual(['Counted: the counter is now 2.']);
    await page.getByLabel('Item').fill('fig');
    await press('Add to cart');
    expect(await page.getByLabel('Item').inputValue()).toBe('apple'); // the field's default again
    await press('Add to cart');
    expect(await shown('count')).toBe('2');
    expect(await shown('cart')).toBe('apple × 1\nfig × 1'); // the cookie's JSON sorts keys, as Flask's does
    await sessionCookie({ permanent: true });
    await screenshot('05-counted-and-added-after-login');

    // Post-redirect-get: a reload shows the page again and posts nothing.
    await page.reload();
    expect(await flashes()).toEqual([]); // a message shows once
    expect(await shown('user')).toBe('alice');
    expect(await shown('count')).toBe('2');
    expect(await shown('cart')).toBe('apple × 1\nfig × 1');
    await sessionCookie({ permanent: true });
    await screenshot('06-reloaded');

    await press('Place an order that fails');
    expect(await page.getByRole('alert').innerText()).toBe(
      'The order failed: the route threw 400 "Out of stock; your session remembers this failure.", and its session was saved all the same (see Last error).',
    );
    expect(await shown('last-error')).toBe('the order failed');
    expect(await shown('user')).toBe('alice');
    expect(await shown('count')).toBe('2');
    await sessionCookie({ permanent: true });
    await screenshot('07-failed');

    await press('Log out');
    expect(await flashes()).toEqual(['Logged out: the session was cleared; its cookie is deleted once this message has been shown.']);
    expect(await shown('user')).toBe('nobody is logged in');
    expect(await shown('count')).toBe('0');
    expect(await shown('last-error')).toBe('none');
    expect(await context.cookies()).toEqual([]);
    expect(await page.evaluate('document.cookie')).toBe('');
    expect((await expectSetCookieAttributes()).at(-1)).toMatch(/^session=; .*Max-Age=0/);
    await screenshot('08-logged-out');
  },
  BROWSER_TIMEOUT,
);

test(
  'the Flask app next door sees the login, and NestJS sees the count made in Flask',
  async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, NEST_URL: nestUrl };
    delete env.SECRET_KEY; // Flask too falls back to the sample's development secret
    flask = await FlaskNextDoor.start(env);
    process.env.FLASK_URL = flask.url; // the NestJS page links to it

    await page.goto(nestUrl);
    await page.getByLabel('Name').fill('alice');
    await press('Log in');
    await press('Count +1');
    expect(await shown('count')).toBe('1');
    await screenshot('flask-01-nest-logged-in');

    await Promise.all([page.waitForEvent('load'), page.getByRole('link', { name: 'Flask app next door' }).click()]);
    expect(page.url()).toBe(`${flask.url}/`);
    expect(await page.title()).toBe('Flask next door');
    expect(await shown('user')).toBe('alice');
    expect(await shown('count')).toBe('1');
    await screenshot('flask-02-flask-sees-the-login');

    await press('Count +1 in Flask');
    expect(await flashes()).toEqual(['Counted in Flask: the counter is now 2.']);
    expect(await shown('count')).toBe('2');
    // Flask re-set the one shared cookie with the same attributes, still permanent.
    await sessionCookie({ permanent: true });
    await screenshot('flask-03-flask-counted');

    await Promise.all([page.waitForEvent('load'), page.getByRole('link', { name: 'NestJS page' }).click()]);
    expect(page.url()).toBe(`${nestUrl}/`);
    expect(await shown('user')).toBe('alice');
    expect(await shown('count')).toBe('2');
    await press('Count +1');
    expect(await flashes()).toEqual(['Counted: the counter is now 3.']);
    await sessionCookie({ permanent: true });
    await screenshot('flask-04-nest-sees-the-flask-count');

    await press('Log out');
    await page.goto(flask.url);
    expect(await shown('user')).toBe('nobody is logged in');
    expect(await shown('count')).toBe('0');
    expect(await context.cookies()).toEqual([]);
    await screenshot('flask-05-flask-after-logout');
  },
  BROWSER_TIMEOUT,
);
