/**
 * The MariaDB test server: a real server on a free loopback port with grant
 * tables, reached by mysql2 over TCP with a user's password, that can be
 * paused, resumed, stopped and started again on the same port.
 */
import { createConnection as createCallbackConnection } from 'mysql2';
import { createConnection, createPool, type RowDataPacket } from 'mysql2/promise';
import { settlesWithin } from '../support/managed-server.js';
import { MariaDBServer } from '../support/mariadb-server.js';

let server: MariaDBServer;
beforeAll(async () => {
  server = await MariaDBServer.start();
}, 120_000);
afterAll(() => server?.close());

test("a mysql2 pool reaches the server over TCP as the test user, in the test's database", async () => {
  const pool = createPool(server.connectionOptions);
  try {
    const [rows] = await pool.query<RowDataPacket[]>('SELECT CURRENT_USER() AS account, DATABASE() AS db, @@port AS port, @@character_set_server AS charset');
    expect(rows).toEqual([{ account: `${server.user}@%`, db: server.database, port: server.port, charset: 'utf8mb4' }]);
    await pool.query('CREATE TABLE probe (id INT AUTO_INCREMENT PRIMARY KEY, note TEXT NOT NULL)');
    await pool.query('INSERT INTO probe (note) VALUES (?), (?)', ['one', 'two']);
    const [notes] = await pool.query<RowDataPacket[]>('SELECT note FROM probe ORDER BY id');
    expect(notes).toEqual([{ note: 'one' }, { note: 'two' }]);
  } finally {
    await pool.end();
  }
});

test("mysql2's callback API and the URL connect too; a wrong password is refused", async () => {
  const viaCallbacks = await new Promise<unknown>((resolve, reject) => {
    const connection = createCallbackConnection(server.connectionOptions);
    connection.query('SELECT 1 + 1 AS two', (error, rows) => {
      connection.end();
      if (error) reject(error);
      else resolve(rows);
    });
  });
  expect(viaCallbacks).toEqual([{ two: 2 }]);
  const viaUrl = await createConnection(server.url);
  const [rows] = await viaUrl.query<RowDataPacket[]>('SELECT CURRENT_USER() AS account');
  expect(rows).toEqual([{ account: `${server.user}@%` }]);
  await viaUrl.end();
  await expect(createConnection({ ...server.connectionOptions, password: 'wrong' })).rejects.toThrow(/Access denied/);
});

test('pause makes queries hang, on an open connection and on a new one; resume completes them', async () => {
  const open = await createConnection(server.connectionOptions);
  server.pause();
  let query: Promise<unknown>;
  let fresh: Promise<unknown>;
  try {
    query = open.query('SELECT 42 AS answer').then(([rows]) => rows);
    fresh = createConnection(server.connectionOptions).then(async (connection) => {
      const [rows] = await connection.query('SELECT 7 AS answer');
      await connection.end();
      return rows;
    });
    expect(await settlesWithin(query, 500)).toBe(false);
    expect(await settlesWithin(fresh, 100)).toBe(false);
  } finally {
    server.resume();
  }
  expect(await query).toEqual([{ answer: 42 }]);
  expect(await fresh).toEqual([{ answer: 7 }]);
  await open.end();
});

test('stop resets open connections and refuses new ones; start on the same port finds the data', async () => {
  const port = server.port;
  const setup = await createConnection(server.connectionOptions);
  await setup.query('CREATE TABLE kept (value TEXT)');
  await setup.query("INSERT INTO kept VALUES ('survives a crash')");
  setup.on('error', () => undefined);
  await server.stop();
  expect(server.running).toBe(false);
  await expect(setup.query('SELECT 1')).rejects.toThrow();
  await expect(createConnection(server.connectionOptions)).rejects.toThrow(/ECONNREFUSED/);

  await server.start();
  expect(server.port).toBe(port);
  const again = await createConnection(server.connectionOptions);
  const [rows] = await again.query<RowDataPacket[]>('SELECT value FROM kept');
  expect(rows).toEqual([{ value: 'survives a crash' }]);
  await again.end();
});

test('a paused server can be stopped, and starts again', async () => {
  server.pause();
  await server.stop();
  expect(server.running).toBe(false);
  await server.start();
  const connection = await createConnection(server.connectionOptions);
  const [rows] = await connection.query('SELECT 1 AS one');
  expect(rows).toEqual([{ one: 1 }]);
  await connection.end();
});
