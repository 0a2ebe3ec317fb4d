/** The sample app, driven the way its README tells a newcomer to try it. */
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SessionInterface } from 'nest-session';
import type { RedisSessionInterface } from 'nest-session/redis';
import { RedisServer } from '../../test/support/loopback-servers.js';
import { AppModule } from '../src/app.module.js';

let app: INestApplication;
let agent: ReturnType<typeof request.agent>;

async function startSample() {
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  agent = request.agent(app.getHttpServer());
}
beforeEach(startSample);
afterEach(() => app.close());

test('the counter counts per client', async () => {
  await agent.post('/counter').expect(201, { count: 1 });
  await agent.post('/counter').expect(201, { count: 2 });
  await request(app.getHttpServer()).post('/counter').expect(201, { count: 1 });
});

test('the cart keeps nested changes because the handler sets modified', async () => {
  await agent.post('/cart').send({ item: 'pear' }).expect(201);
  await agent.post('/cart').send({ item: 'pear' }).expect(201);
  await agent.post('/cart').send({ item: 'fig' }).expect(201);
  await agent.get('/cart').expect(200, { items: { pear: 2, fig: 1 } });
});

test('log in, pass the guard, log out', async () => {
  await agent.get('/me').expect(401);
  const login = await agent.post('/login').send({ user: 'alice' }).expect(200, { loggedInAs: 'alice' });
  expect(String(login.headers['set-cookie'])).toMatch(/Expires=.*SameSite=Lax/);
  await agent.get('/me').expect(200, { user: 'alice' });
  const logout = await agent.post('/logout').expect(200, { loggedOut: true });
  expect(String(logout.headers['set-cookie'])).toContain('Max-Age=0');
  await agent.get('/me').expect(401);
});

test('a failing route still saves what it wrote', async () => {
  const failed = await agent
    .post('/fail')
    .expect(400, { message: 'Out of stock; your session remembers this failure.', error: 'Bad Request', statusCode: 400 });
  // A signed cookie is readable by its holder: its first part is the base64 JSON.
  const payload = String(failed.headers['set-cookie']).split('=')[1].split('.')[0];
  expect(JSON.parse(Buffer.from(payload, 'base64url').toString())).toEqual({ lastError: 'the order failed' });
});

/** The text of the element with this id on the page (tags removed). */
function cell(page: string, id: string): string | undefined {
  const match = new RegExp(`id="${id}">([\\s\\S]*?)</(td|pre)>`).exec(page);
  return match?.[1].replace(/<[^>]+>/g, '').trim();
}

describe('the page at /', () => {
  test('shows an empty session as HTML, and sets no cookie for it', async () => {
    const page = await agent.get('/').expect(200).expect('Content-Type', 'text/html; charset=utf-8');
    expect(page.headers['set-cookie']).toBeUndefined();
    expect(page.headers['vary']).toBe('Cookie');
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(cell(page.text, 'user')).toBe('nobody is logged in');
    expect(cell(page.text, 'count')).toBe('0');
    expect(cell(page.text, 'cart')).toBe('empty');
    expect(cell(page.text, 'last-error')).toBe('none');
    expect(page.text).toContain('a signed cookie: the data travels in the cookie');
    for (const action of ['counter', 'cart', 'login', 'logout', 'fail']) {
      expect(page.text).toContain(`<form method="post" action="/form/${action}">`);
    }
  });

  test('each form does what its JSON route does, then redirects to the page, which shows what happened once', async () => {
    await agent.post('/form/counter').type('form').expect(303).expect('Location', '/');
    await agent.post('/form/counter').type('form').expect(303);
    let page = (await agent.get('/').expect(200)).text;
    expect(cell(page, 'count')).toBe('2');
    expect(page).toContain('Counted: the counter is now 1.');
    expect(page).toContain('Counted: the counter is now 2.');
    page = (await agent.get('/').expect(200)).text;
    expect(page).not.toContain('Counted:'); // a flashed message shows once
    await agent.post('/counter').expect(201, { count: 3 }); // the JSON route sees the same session

    await agent.post('/form/cart').type('form').send({ item: 'pear' }).expect(303);
    await agent.post('/form/cart').type('form').send({ item: 'pear' }).expect(303);
    await agent.get('/cart').expect(200, { items: { pear: 2 } });
    page = (await agent.get('/').expect(200)).text;
    expect(cell(page, 'cart')).toBe('pear × 2');
    expect(page).toContain('Added one pear to the cart (2 in it now).');

    const login = await agent.post('/form/login').type('form').send({ user: '  alice ' }).expect(303);
    expect(String(login.headers['set-cookie'])).toMatch(/Expires=.*HttpOnly; Path=\/; SameSite=Lax/);
    await agent.get('/me').expect(200, { user: 'alice' });
    page = (await agent.get('/').expect(200)).text;
    expect(cell(page, 'user')).toBe('alice');
    expect(cell(page, 'count')).toBe('0'); // a login starts a fresh session
    expect(cell(page, 'cookie')).toMatch(/^permanent/);

    const failed = await agent.post('/form/fail').type('form').expect(303).expect('Location', '/');
    expect(String(failed.headers['set-cookie'])).toMatch(/^session=/); // the failing route saved its session
    page = (await agent.get('/').expect(200)).text;
    expect(cell(page, 'last-error')).toBe('the order failed');
    expect(page).toMatch(/role="alert">The order failed: the route threw 400 &quot;Out of stock/);
    expect(cell(page, 'user')).toBe('alice');

    await agent.post('/form/logout').type('form').expect(303);
    const afterLogout = await agent.get('/').expect(200);
    expect(afterLogout.text).toContain('Logged out');
    expect(cell(afterLogout.text, 'user')).toBe('nobody is logged in');
    // The message was the last thing in the session: showing it empties the session, which deletes the cookie.
    expect(String(afterLogout.headers['set-cookie'])).toContain('Max-Age=0');
    await agent.get('/me').expect(401);
  });

  test('a blank name logs in as guest, as the JSON route does', async () => {
    await agent.post('/form/login').type('form').send({ user: '   ' }).expect(303);
    await agent.get('/me').expect(200, { user: 'guest' });
  });

  test('everything that comes from the session is escaped', async () => {
    const attack = '<img src=x onerror="alert(1)">&';
    await agent.post('/login').send({ user: attack }).expect(200);
    await agent.post('/cart').send({ item: `"><script>alert(2)</script>` }).expect(201);
    const page = (await agent.get('/').expect(200)).text;
    expect(page).not.toContain('<img');
    expect(page).not.toContain('<script');
    expect(page).toContain('&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;');
    expect(page).toContain('&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt; × 1');
  });

  test('values of another shape than the page expects are shown as JSON, not dropped', async () => {
    await agent.post('/login').send({ user: { name: 'eve' } }).expect(200);
    const page = (await agent.get('/').expect(200)).text;
    expect(cell(page, 'user')).toBe('{&quot;name&quot;:&quot;eve&quot;}');
  });
});

describe('SESSION_STORE=filesystem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nest-session-sample-e2e-'));
  beforeEach(async () => {
    await app.close();
    process.env.SESSION_STORE = 'filesystem';
    process.env.SESSION_DIR = dir;
    await startSample();
  });
  afterEach(() => {
    delete process.env.SESSION_STORE;
    delete process.env.SESSION_DIR;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('the same app keeps its sessions in files, and login changes the session id', async () => {
    const first = await agent.post('/counter').expect(201, { count: 1 });
    const sidBefore = String(first.headers['set-cookie']).split(';')[0].split('=')[1];
    expect(sidBefore).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(readdirSync(dir).length).toBe(1);
    await agent.post('/counter').expect(201, { count: 2 });
    const login = await agent.post('/login').send({ user: 'bob' }).expect(200);
    const sidAfter = String(login.headers['set-cookie']).split(';')[0].split('=')[1];
    expect(sidAfter).not.toBe(sidBefore);
    await agent.get('/me').expect(200, { user: 'bob' });
    const page = await agent.get('/').expect(200);
    expect(page.text).toContain('a server-side store (FileSystemSessionInterface): the cookie holds only a session id');
    expect(cell(page.text, 'user')).toBe('bob');
  });
});

describe('SESSION_STORE=redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(() => redis?.close());
  beforeEach(async () => {
    await app.close();
    process.env.SESSION_STORE = 'redis';
    process.env.REDIS_URL = redis.url;
    await startSample();
  });
  afterEach(async () => {
    // The sample hands the store its own client, which the store never closes.
    await (app.get(SessionInterface) as RedisSessionInterface).client.quit();
    delete process.env.SESSION_STORE;
    delete process.env.REDIS_URL;
  });

  test('the same app keeps its sessions in the Redis at REDIS_URL', async () => {
    await agent.post('/counter').expect(201, { count: 1 });
    await agent.post('/form/login').type('form').send({ user: 'carol' }).expect(303);
    await agent.get('/me').expect(200, { user: 'carol' });
    const page = await agent.get('/').expect(200);
    expect(page.text).toContain('a server-side store (RedisSessionInterface)');
    expect(cell(page.text, 'user')).toBe('carol');
    const keys = await (app.get(SessionInterface) as RedisSessionInterface).client.keys('session:*');
    expect(keys).toHaveLength(1); // the login replaced the first record (regenerate)
  });
});
