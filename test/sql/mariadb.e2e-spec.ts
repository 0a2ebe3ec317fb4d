/**
 * SqlSessionInterface on MariaDB: the store contract through a mysql2 pool's
 * callback API and its promise API, the SQL store's own behaviour, and what
 * MySQL and MariaDB do differently: a table made by Flask-Session has the
 * server's case-insensitive collation, a 64 KiB BLOB and whole-second
 * DATETIMEs. The server's time zone is -03:30 and mysql2's +09:00: nothing
 * may depend on either.
 */
import { createPool as createCallbackPool, type Pool as CallbackPool } from 'mysql2';
import { createConnection, createPool, type Pool as PromisePool } from 'mysql2/promise';
import { DataSource } from 'typeorm';
import { SessionConfigurationError, SessionError, SessionStoreUnavailableError } from '../../lib/index.js';
import { SqlSessionInterface } from '../../lib/sql/index.js';
import { describeStoreContract } from '../server-side/contract.js';
import { MariaDBServer } from '../support/mariadb-server.js';
import { call, describeSqlStore, primitives, utcMillis, type LimitedUser, type SqlBackend } from './sql-backend.js';

let server: MariaDBServer;
let callbackPool: CallbackPool;
let promisePool: PromisePool;
let raw: PromisePool;

beforeAll(async () => {
  server = await MariaDBServer.start();
  const admin = await createConnection(server.adminOptions);
  await admin.query("SET GLOBAL time_zone = '-03:30'");
  await admin.end();
  callbackPool = createCallbackPool({ ...server.connectionOptions, timezone: '+09:00' });
  promisePool = createPool({ ...server.connectionOptions, timezone: '+09:00' });
  raw = createPool(server.connectionOptions);
}, 120_000);

afterAll(async () => {
  await new Promise((resolve) => callbackPool?.end(resolve));
  await promisePool?.end();
  await raw?.end();
  await server?.close();
});

const query = async (sql: string, params: unknown[] = []) => {
  const [rows] = await raw.query(sql, params);
  return Array.isArray(rows) ? (rows as Array<Record<string, unknown>>) : [];
};
const readStored = async (storeId: string) =>
  ((await query('SELECT data FROM sessions WHERE CAST(session_id AS BINARY) = CAST(? AS BINARY)', [storeId]))[0]?.data as Buffer | undefined) ?? null;
const outage = { breakStore: () => server.stop(), repairStore: () => server.start() };

describeStoreContract('MariaDB (mysql2 callback pool)', {
  create: (options) => new SqlSessionInterface({ client: callbackPool, ...options }),
  read: readStored,
  ...outage,
});

describeStoreContract('MariaDB (mysql2 promise pool)', {
  create: (options) => new SqlSessionInterface({ client: promisePool, ...options }),
  read: readStored,
  ...outage,
});

let limitedUsers = 0;
/** A user of its own, with a password, logging in over TCP as the application's would. */
async function limitedUser(): Promise<LimitedUser> {
  const user = `limited_${++limitedUsers}`;
  const password = `pw-${user}`;
  const asAdmin = async (sql: string) => {
    const admin = await createConnection(server.adminOptions);
    try {
      await admin.query(sql);
    } finally {
      await admin.end();
    }
  };
  await asAdmin(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
  const client = createCallbackPool({ ...server.connectionOptions, user, password });
  return {
    client,
    grant: (privileges, table) => asAdmin(`GRANT ${privileges} ON ${server.database}.${table} TO '${user}'@'%'`),
    revoke: (privileges, table) => asAdmin(`REVOKE ${privileges} ON ${server.database}.${table} FROM '${user}'@'%'`),
    close: () => new Promise<void>((resolve) => client.end(() => resolve())),
  };
}

const backend: SqlBackend = { dialect: 'mysql', client: () => callbackPool, query, limitedUser };
describeSqlStore('MariaDB', backend);

/** Flask-Session's table as SQLAlchemy creates it on MariaDB: the server's default collation, BLOB, DATETIME. */
const FLASK_TABLE = (name: string) =>
  `CREATE TABLE ${name} (id INTEGER NOT NULL AUTO_INCREMENT, session_id VARCHAR(255), data BLOB, expiry DATETIME, PRIMARY KEY (id), UNIQUE (session_id))`;

describe('MariaDB specifics', () => {
  test("a statement InnoDB rolls back to break a deadlock is run again, and the write lands", async () => {
    const store = primitives(new SqlSessionInterface({ client: callbackPool, table: 'deadlocked' }));
    await store.replaceRecord('session:dl', Buffer.from('v0'), 3600, call());
    const other = await createConnection(server.connectionOptions);
    try {
      await other.query('BEGIN');
      // Two rows inserted make this transaction the heavier: InnoDB then rolls back the store's statement.
      await other.query('INSERT INTO deadlocked (session_id, data, expiry) VALUES (?, ?, UTC_TIMESTAMP()), (?, ?, UTC_TIMESTAMP())', ['other:1', 'x', 'other:2', 'x']);
      // A shared lock on the row (data is read from the row itself, not from an index), as a reader that will write it takes.
      await other.query('SELECT data FROM deadlocked WHERE session_id = ? LOCK IN SHARE MODE', ['session:dl']);
      // The store's UPDATE waits for it, in the queue for an exclusive lock.
      const write = store.swapRecord('session:dl', { value: Buffer.from('v0') }, Buffer.from('v1'), 3600, { deadline: Date.now() + 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      // The reader now writes: it waits behind the store's request, which waits for it. InnoDB breaks the
      // cycle by rolling back the lighter side, the store's statement; this one then goes on.
      await other.query('UPDATE deadlocked SET expiry = expiry WHERE session_id = ?', ['session:dl']);
      await other.query('COMMIT');
      expect(await write).toEqual({ swapped: true });
      expect(await query('SELECT data FROM deadlocked WHERE session_id = ?', ['session:dl'])).toEqual([{ data: Buffer.from('v1') }]);
      // And it was a deadlock, the store's UPDATE its victim.
      const admin = await createConnection(server.adminOptions);
      const [[status]] = (await admin.query('SHOW ENGINE INNODB STATUS')) as unknown as [[{ Status: string }]];
      await admin.end();
      expect(status.Status).toMatch(/LATEST DETECTED DEADLOCK[\s\S]*\*\*\* \(2\) TRANSACTION:[\s\S]*UPDATE `deadlocked` SET data = X'7631'[\s\S]*WE ROLL BACK TRANSACTION \(2\)/);
    } finally {
      await other.end();
    }
  });

  test('a read-only server (a replica, a failover under way) is an outage at bootstrap, waited out, not a configuration error', async () => {
    await new SqlSessionInterface({ client: callbackPool, table: 'read_only' }).ready();
    const admin = await createConnection(server.adminOptions);
    await admin.query('SET GLOBAL read_only = ON');
    try {
      const sessions = new SqlSessionInterface({ client: callbackPool, table: 'read_only' });
      const outcome = await sessions.ready().catch((error: unknown) => error);
      expect(outcome).not.toBeInstanceOf(SessionConfigurationError);
      expect(String(outcome)).toMatch(/--read-only/);
      await admin.query('SET GLOBAL read_only = OFF');
      await sessions.ready();
    } finally {
      await admin.query('SET GLOBAL read_only = OFF');
      await admin.end();
    }
  });

  test('a wrong password or database fails at bootstrap as a configuration error naming the client, not as an outage', async () => {
    const wrong = createCallbackPool({ ...server.connectionOptions, password: 'not-it' });
    try {
      const sessions = new SqlSessionInterface({ client: wrong });
      await expect(sessions.ready()).rejects.toThrow(SessionConfigurationError);
      await expect(sessions.ready()).rejects.toThrow(/option "client".*Access denied for user 'nest'/);
      // A database the user may not reach, or that does not exist: MariaDB says the first for both (1044).
      const nowhere = createCallbackPool({ ...server.connectionOptions, database: 'nowhere' });
      await expect(new SqlSessionInterface({ client: nowhere }).ready()).rejects.toThrow(/option "client".*Access denied for user 'nest'@'%' to database 'nowhere'/);
      await new Promise((resolve) => nowhere.end(resolve));
    } finally {
      await new Promise((resolve) => wrong.end(resolve));
    }
  });

  test("creates Flask-Session's four columns, session_id compared exactly (utf8mb4_bin), data up to 16 MiB (MEDIUMBLOB), expiry to the microsecond", async () => {
    const sessions = new SqlSessionInterface({ client: callbackPool, table: 'layout' });
    await sessions.ready();
    const columns = await query(
      `SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, COLLATION_NAME AS collation, IS_NULLABLE AS nullable, EXTRA AS extra
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'layout' ORDER BY ORDINAL_POSITION`,
    );
    expect(columns).toEqual([
      { name: 'id', type: 'int(11)', collation: null, nullable: 'NO', extra: 'auto_increment' },
      { name: 'session_id', type: 'varchar(255)', collation: 'utf8mb4_bin', nullable: 'YES', extra: '' },
      { name: 'data', type: 'mediumblob', collation: null, nullable: 'YES', extra: '' },
      { name: 'expiry', type: 'datetime(6)', collation: null, nullable: 'YES', extra: '' },
    ]);
    const indexes = await query(
      "SELECT INDEX_NAME AS name, NON_UNIQUE AS non_unique, COLUMN_NAME AS col FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'layout' ORDER BY INDEX_NAME",
    );
    expect(indexes).toEqual([
      { name: 'ix_layout_expiry', non_unique: 1, col: 'expiry' },
      { name: 'PRIMARY', non_unique: 0, col: 'id' },
      { name: 'session_id', non_unique: 0, col: 'session_id' },
    ]);
    const big = Buffer.alloc(200_000, 7);
    await primitives(sessions).replaceRecord('session:big', big, 60, call());
    expect((await primitives(sessions).readRecord('session:big', call()))?.value.equals(big)).toBe(true);
  });

  test("on Flask-Session's own table (case-insensitive collation), a sid that differs only in case is another session", async () => {
    await query(FLASK_TABLE('flask_made'));
    const [collation] = await query("SELECT COLLATION_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_NAME = 'flask_made' AND COLUMN_NAME = 'session_id'");
    expect(collation!.c).toMatch(/_ci$/); // the premise: MariaDB's default compares case-insensitively
    const store = primitives(new SqlSessionInterface({ client: callbackPool, table: 'flask_made' }));
    await store.replaceRecord('session:AbCdEf', Buffer.from('owner'), 3600, call());
    const twin = 'session:abcdef';
    expect(await store.readRecord(twin, call())).toBeNull();
    expect(await store.swapRecord(twin, { value: Buffer.from('owner') }, Buffer.from('hijacked'), 3600, call())).toEqual({ swapped: false, current: null });
    await store.refreshRecord(twin, 999_999, call());
    await store.deleteRecord(twin, call());
    const rows = await query("SELECT session_id, data, DATE_FORMAT(expiry, '%Y-%m-%d %H:%i:%s') AS expiry FROM flask_made");
    expect(rows.map((r) => [r.session_id, String(r.data)])).toEqual([['session:AbCdEf', 'owner']]);
    expect(utcMillis(String(rows[0]!.expiry))).toBeLessThan(Date.now() + 3600_000 + 2000); // not refreshed to 999,999 s
    expect((await store.readRecord('session:AbCdEf', call()))?.value.toString()).toBe('owner');
  });

  test("on Flask-Session's own table (BLOB), a session over 64 KiB is refused whole with a clear error, never cut", async () => {
    await query(FLASK_TABLE('flask_blob'));
    const sessions = new SqlSessionInterface({ client: callbackPool, table: 'flask_blob' });
    const store = primitives(sessions);
    await store.replaceRecord('session:blob', Buffer.from('small'), 3600, call());
    await expect(store.replaceRecord('session:blob', Buffer.alloc(70_000, 1), 3600, call())).rejects.toThrow(
      /the session is 70000 bytes, more than the 65535 that flask_blob.data holds/,
    );
    // A 500 (trying again cannot help), not the 503 of a store that is down.
    await expect(store.replaceRecord('session:blob', Buffer.alloc(70_000, 1), 3600, call())).rejects.toBeInstanceOf(SessionError);
    await expect(store.replaceRecord('session:blob', Buffer.alloc(70_000, 1), 3600, call())).rejects.not.toBeInstanceOf(SessionStoreUnavailableError);
    await expect(store.swapRecord('session:blob', { value: Buffer.from('small') }, Buffer.alloc(65_536, 1), 3600, call())).rejects.toThrow(/65535/);
    expect((await store.readRecord('session:blob', call()))?.value.toString()).toBe('small');
    await store.replaceRecord('session:blob', Buffer.alloc(65_535, 2), 3600, call());
    expect((await store.readRecord('session:blob', call()))?.value.length).toBe(65_535);
  });

  test("on Flask-Session's own table (DATETIME in whole seconds), expiry, refresh and expired reads still work", async () => {
    await query(FLASK_TABLE('flask_seconds'));
    const store = primitives(new SqlSessionInterface({ client: callbackPool, table: 'flask_seconds' }));
    await store.replaceRecord('session:s', Buffer.from('s'), 3600, call());
    await store.refreshRecord('session:s', 7200, call());
    await store.refreshRecord('session:s', 7200, call()); // the same second: matched, not changed, still fine
    const [row] = await query("SELECT DATE_FORMAT(expiry, '%Y-%m-%d %H:%i:%s.%f') AS expiry FROM flask_seconds");
    expect(String(row!.expiry)).toMatch(/\.000000$/);
    expect(Math.abs(utcMillis(String(row!.expiry)) - (Date.now() + 7200_000))).toBeLessThan(3000);
    await store.replaceRecord('session:short', Buffer.from('x'), 1, call());
    await new Promise((resolve) => setTimeout(resolve, 2100));
    expect(await store.readRecord('session:short', call())).toBeNull();
  });

  test('processes creating the table at once all start', async () => {
    const pools = Array.from({ length: 8 }, () => createPool(server.connectionOptions));
    try {
      for (const table of ['raced_1', 'raced_2', 'raced_3']) {
        await Promise.all(pools.map((client) => new SqlSessionInterface({ client, table }).ready()));
        const indexes = await query('SELECT DISTINCT INDEX_NAME AS name FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY name', [table]);
        expect(indexes.map((index) => index.name)).toEqual([`ix_${table}_expiry`, 'PRIMARY', 'session_id']);
      }
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });

  test('a TypeORM DataSource of type mariadb works through its own pool', async () => {
    const dataSource = await new DataSource({ type: 'mariadb', url: server.url }).initialize();
    try {
      const store = primitives(new SqlSessionInterface({ client: dataSource, table: 'typeorm_made' }));
      await store.replaceRecord('session:orm', Buffer.from('orm'), 60, call());
      expect((await store.readRecord('session:orm', call()))?.value.toString()).toBe('orm');
    } finally {
      await dataSource.destroy();
    }
  });

  test('a database (schema) of its own, and a missing one failing at bootstrap', async () => {
    const admin = await createConnection(server.adminOptions);
    await admin.query('CREATE DATABASE app');
    await admin.query(`GRANT ALL PRIVILEGES ON app.* TO '${server.user}'@'%'`);
    await admin.end();
    const store = primitives(new SqlSessionInterface({ client: promisePool, schema: 'app', table: 'flask_sessions' }));
    await store.replaceRecord('session:in-app', Buffer.from('x'), 60, call());
    expect(await query('SELECT session_id FROM app.flask_sessions')).toEqual([{ session_id: 'session:in-app' }]);
    const missing = new SqlSessionInterface({ client: promisePool, schema: 'nowhere' });
    await expect(missing.ready()).rejects.toThrow(SessionConfigurationError);
  });
});
