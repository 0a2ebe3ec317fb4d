/** The sample app, driven the way its README tells a newcomer to try it. */
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SessionInterface } from 'nest-session';
import type { RedisSessionInterface } from 'nest-session/redis';
import type { SqlSessionInterface } from 'nest-session/sql';
import type { DynamoDBSessionInterface } from 'nest-session/dynamodb';
import { MongoDBSessionInterface } from 'nest-session/mongodb';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import type BetterSqlite3 from 'better-sqlite3';
import { RedisServer, freePort } from '../../test/support/loopback-servers.js';
import { PostgresServer } from '../../test/support/postgres-server.js';
import { MariaDBServer } from '../../test/support/mariadb-server.js';
import { DynaliteServer } from '../../test/support/dynalite-server.js';
import { AppModule } from '../src/app.module.js';
import { SESSION_STORES } from '../src/session-options.js';

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

/**
 * The stores of issue 9, each started the way its README line says: the test
 * starts the server (SQLite needs none) and points the sample's variable at it.
 */
type StoreCase = {
  store: string;
  interfaceName: string;
  /** Starts what the store needs; returns the sample's variables and how to stop. */
  start(): Promise<{ env: Record<string, string>; stop(): Promise<void> }>;
  /** The number of stored sessions, asked of the store directly. */
  count(sessions: SessionInterface): Promise<number>;
  /** Closes the client the sample made (the interface never closes a client it was given). */
  closeClient(sessions: SessionInterface): Promise<void>;
};
const sqlCount = async (sessions: SessionInterface) => {
  const client = (sessions as SqlSessionInterface).client as unknown as Record<string, (...args: unknown[]) => unknown>;
  if (typeof client.prepare === 'function') return Number((client.prepare('SELECT count(*) AS n FROM sessions') as BetterSqlite3.Statement).pluck().get());
  const result = (await client.query('SELECT count(*) AS n FROM sessions')) as { rows?: { n: string }[] } | [{ n: number }[]];
  return Number(Array.isArray(result) ? result[0][0].n : result.rows![0].n);
};
const sqlClose = async (sessions: SessionInterface) => {
  const client = (sessions as SqlSessionInterface).client as unknown as { close?(): void; end?(): Promise<void> };
  if (client.close) client.close();
  else await client.end!();
};
const storeCases: StoreCase[] = [
  {
    store: 'sqlite',
    interfaceName: 'SqlSessionInterface',
    async start() {
      const dir = mkdtempSync(join(tmpdir(), 'nest-session-sample-sqlite-'));
      return { env: { SQLITE_FILE: join(dir, 'sessions.db') }, stop: async () => rmSync(dir, { recursive: true, force: true }) };
    },
    count: sqlCount,
    closeClient: sqlClose,
  },
  {
    store: 'postgres',
    interfaceName: 'SqlSessionInterface',
    async start() {
      const server = await PostgresServer.start();
      return { env: { DATABASE_URL: server.url }, stop: () => server.close() };
    },
    count: sqlCount,
    closeClient: sqlClose,
  },
  {
    store: 'mysql',
    interfaceName: 'SqlSessionInterface',
    async start() {
      const server = await MariaDBServer.start();
      return { env: { DATABASE_URL: server.url }, stop: () => server.close() };
    },
    count: sqlCount,
    closeClient: sqlClose,
  },
  {
    store: 'dynamodb',
    interfaceName: 'DynamoDBSessionInterface',
    async start() {
      const server = await DynaliteServer.start();
      return { env: { DYNAMODB_ENDPOINT: server.endpoint }, stop: () => server.close() };
    },
    async count(sessions) {
      const { client } = sessions as DynamoDBSessionInterface;
      return (await client.send(new ScanCommand({ TableName: 'Sessions', Select: 'COUNT' }))).Count!;
    },
    async closeClient(sessions) {
      (sessions as DynamoDBSessionInterface).client.destroy();
    },
  },
];

describe.each(storeCases)('SESSION_STORE=$store', ({ store, interfaceName, start, count, closeClient }) => {
  let env: Record<string, string>;
  let stop: () => Promise<void>;
  beforeAll(async () => {
    ({ env, stop } = await start());
  });
  afterAll(() => stop?.());
  beforeEach(async () => {
    await app.close();
    Object.assign(process.env, { SESSION_STORE: store, ...env });
    await startSample();
  });
  afterEach(async () => {
    await closeClient(app.get(SessionInterface));
    for (const name of ['SESSION_STORE', ...Object.keys(env)]) delete process.env[name];
  });

  test('the same app keeps its sessions in the store its variable points at', async () => {
    await agent.post('/counter').expect(201, { count: 1 });
    await agent.post('/form/login').type('form').send({ user: 'dana' }).expect(303);
    await agent.post('/counter').expect(201, { count: 1 }); // the login started a fresh session
    await agent.get('/me').expect(200, { user: 'dana' });
    const page = await agent.get('/').expect(200);
    expect(page.text).toContain(`a server-side store (${interfaceName})`);
    expect(cell(page.text, 'user')).toBe('dana');
    const sessions = app.get(SessionInterface);
    expect(await count(sessions)).toBe(1); // the login deleted the first record (regenerate)
    await agent.post('/logout').expect(200, { loggedOut: true });
    expect(await count(sessions)).toBe(0);
  });
});

describe('SESSION_STORE=mongodb', () => {
  // No MongoDB server can be installed on the test machines (see the README): what the
  // sample does with its MONGODB_URL is checked against a closed port.
  let port: number;
  beforeEach(async () => {
    await app.close();
    port = await freePort();
    Object.assign(process.env, { SESSION_STORE: 'mongodb', MONGODB_URL: `mongodb://127.0.0.1:${port}` });
    await startSample();
  });
  afterEach(async () => {
    await (app.get(SessionInterface) as MongoDBSessionInterface).client.close();
    delete process.env.SESSION_STORE;
    delete process.env.MONGODB_URL;
  });

  test('uses the MongoDB at MONGODB_URL, and answers 503 at once while nothing listens there', async () => {
    const sessions = app.get(SessionInterface);
    expect(sessions).toBeInstanceOf(MongoDBSessionInterface);
    const started = Date.now();
    const response = await agent.post('/counter').expect(503);
    expect(response.body.message).toMatch(/session store .*unavailable/i);
    expect(Date.now() - started).toBeLessThan(5000);
    await agent.get('/health-that-does-not-exist').expect(404); // the rest of the app is up
  });
});

test('an unknown SESSION_STORE stops the app at start, listing the values it accepts', async () => {
  await app.close();
  process.env.SESSION_STORE = 'mongo';
  try {
    await expect(startSample()).rejects.toThrow(`SESSION_STORE must be one of ${SESSION_STORES.join(', ')}, not "mongo"`);
  } finally {
    delete process.env.SESSION_STORE;
    await startSample(); // for the afterEach
  }
});
