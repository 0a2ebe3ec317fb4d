/**
 * The PostgreSQL test server: a real cluster on a free loopback port, reached
 * with a password over TCP, that can be paused, resumed, stopped and started
 * again on the same port.
 */
import { existsSync } from 'node:fs';
import pg from 'pg';
import { settlesWithin } from '../support/managed-server.js';
import { PostgresServer } from '../support/postgres-server.js';

let server: PostgresServer;
beforeAll(async () => {
  server = await PostgresServer.start();
}, 120_000);
afterAll(() => server?.close());

test("a pg Pool reaches the server over TCP as the test role, in the test's database", async () => {
  const pool = new pg.Pool(server.poolConfig);
  try {
    const { rows } = await pool.query('SELECT current_user AS role, current_database() AS db, inet_server_port() AS port');
    expect(rows).toEqual([{ role: server.user, db: server.database, port: server.port }]);
    await pool.query('CREATE TABLE probe (id serial PRIMARY KEY, note text NOT NULL)');
    await pool.query('INSERT INTO probe (note) VALUES ($1), ($2)', ['one', 'two']);
    expect((await pool.query('SELECT note FROM probe ORDER BY id')).rows).toEqual([{ note: 'one' }, { note: 'two' }]);
  } finally {
    await pool.end();
  }
});

test('the URL connects too, and a wrong password is refused', async () => {
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  expect((await client.query('SELECT current_user AS role')).rows).toEqual([{ role: server.user }]);
  await client.end();
  const intruder = new pg.Client({ ...server.poolConfig, password: 'wrong' });
  await expect(intruder.connect()).rejects.toThrow(/password authentication failed/);
});

test('pause makes queries hang, on an open connection and on a new one; resume completes them', async () => {
  const open = new pg.Client(server.poolConfig);
  await open.connect();
  const fresh = new pg.Client(server.poolConfig);
  server.pause();
  let query: Promise<pg.QueryResult>;
  let connected: Promise<pg.QueryResult>;
  try {
    expect(server.paused).toBe(true);
    query = open.query('SELECT 42 AS answer');
    connected = fresh.connect().then(() => fresh.query('SELECT 7 AS answer'));
    expect(await settlesWithin(query, 500)).toBe(false);
    expect(await settlesWithin(connected, 100)).toBe(false);
  } finally {
    server.resume();
  }
  expect((await query).rows).toEqual([{ answer: 42 }]);
  expect((await connected).rows).toEqual([{ answer: 7 }]);
  await Promise.all([open.end(), fresh.end()]);
});

test('stop resets open connections and refuses new ones; start on the same port finds the data', async () => {
  const port = server.port;
  const setup = new pg.Client(server.poolConfig);
  await setup.connect();
  await setup.query('CREATE TABLE kept (value text)');
  await setup.query("INSERT INTO kept VALUES ('survives a crash')");
  setup.on('error', () => undefined); // the reset arrives as an 'error' event too
  await server.stop();
  expect(server.running).toBe(false);
  await expect(setup.query('SELECT 1')).rejects.toThrow();
  await expect(new pg.Client(server.poolConfig).connect()).rejects.toThrow(/ECONNREFUSED/);

  await server.start();
  expect(server.port).toBe(port);
  const again = new pg.Client(server.poolConfig);
  await again.connect();
  expect((await again.query('SELECT value FROM kept')).rows).toEqual([{ value: 'survives a crash' }]);
  await again.end();
});

test('a paused server can be stopped, and starts again', async () => {
  server.pause();
  await server.stop();
  expect(server.running).toBe(false);
  expect(server.paused).toBe(false);
  await server.start();
  const client = new pg.Client(server.poolConfig);
  await client.connect();
  expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  await client.end();
});

test('two servers started at once get their own ports, folders and data', async () => {
  const [a, b] = await Promise.all([PostgresServer.start(), PostgresServer.start()]);
  try {
    expect(a.port).not.toBe(b.port);
    expect(a.dir).not.toBe(b.dir);
    const clients = [new pg.Client(a.poolConfig), new pg.Client(b.poolConfig)];
    await Promise.all(clients.map((c) => c.connect()));
    await clients[0]!.query('CREATE TABLE only_in_a (x int)');
    const seen = await Promise.all(clients.map(async (c) => (await c.query("SELECT to_regclass('only_in_a')::text AS t")).rows[0].t));
    expect(seen).toEqual(['only_in_a', null]);
    await Promise.all(clients.map((c) => c.end()));
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}, 120_000);

test('close removes the data folder', async () => {
  const other = await PostgresServer.start();
  expect(existsSync(other.dir)).toBe(true);
  await other.close();
  expect(existsSync(other.dir)).toBe(false);
  expect(other.running).toBe(false);
}, 60_000);
