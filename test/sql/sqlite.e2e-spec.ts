/**
 * SqlSessionInterface on SQLite (better-sqlite3 12, a file in a temporary
 * folder): the store contract through a Database and through a TypeORM
 * DataSource, and the SQL store's own behaviour. The store is made to fail
 * the way a shared SQLite file does: another connection holds an exclusive
 * lock.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { SessionConfigurationError } from '../../lib/index.js';
import { SqlSessionInterface } from '../../lib/sql/index.js';
import { describeStoreContract } from '../server-side/contract.js';
import { call, describeSqlStore, primitives, utcMillis, type SqlBackend } from './sql-backend.js';

const dir = mkdtempSync(join(tmpdir(), 'nest-session-sqlite-'));
const file = join(dir, 'sessions.db');
// A short busy timeout: better-sqlite3 waits for a lock synchronously, holding the event loop.
const db = new Database(file, { timeout: 100 });
const raw = new Database(file, { timeout: 2000 });
let dataSource: DataSource;

beforeAll(async () => {
  dataSource = await new DataSource({ type: 'better-sqlite3', database: file, timeout: 100 }).initialize();
});
afterAll(async () => {
  await dataSource?.destroy();
  db.close();
  raw.close();
  rmSync(dir, { recursive: true, force: true });
});

const query = async (sql: string, params: unknown[] = []) => {
  const statement = raw.prepare(sql);
  if (statement.reader) return statement.all(...params) as Array<Record<string, unknown>>;
  statement.run(...params);
  return [];
};
const readStored = async (storeId: string) => ((await query('SELECT data FROM sessions WHERE session_id = ?', [storeId]))[0]?.data as Buffer | undefined) ?? null;

/** Another connection holding the file's exclusive lock: every statement of the store's connections gets SQLITE_BUSY. */
let blocker: Database.Database | undefined;
const outage = {
  breakStore: async () => {
    blocker = new Database(file);
    blocker.exec('BEGIN EXCLUSIVE');
  },
  repairStore: async () => {
    blocker?.exec('ROLLBACK');
    blocker?.close();
    blocker = undefined;
  },
};

describeStoreContract('SQLite (better-sqlite3 Database)', {
  create: (options) => new SqlSessionInterface({ client: db, ...options }),
  read: readStored,
  ...outage,
});

describeStoreContract('SQLite (TypeORM DataSource)', {
  create: (options) => new SqlSessionInterface({ client: dataSource, ...options }),
  read: readStored,
  ...outage,
});

const backend: SqlBackend = { dialect: 'sqlite', client: () => db, query };
describeSqlStore('SQLite', backend);

describe('SQLite specifics', () => {
  test('a database that refuses writes (PRAGMA query_only) fails at bootstrap as a configuration error naming the client', async () => {
    await new SqlSessionInterface({ client: db, table: 'query_only' }).ready();
    const readOnly = new Database(file, { timeout: 100 });
    readOnly.pragma('query_only = ON');
    try {
      const sessions = new SqlSessionInterface({ client: readOnly, table: 'query_only' });
      await expect(sessions.ready()).rejects.toThrow(SessionConfigurationError);
      await expect(sessions.ready()).rejects.toThrow(/option "client": SQLite file .* refused the connection's user: attempt to write a readonly database.*The store needs GRANT/);
    } finally {
      readOnly.close();
    }
  });

  test("creates exactly SQLAlchemy's table (id the rowid) and an index on expiry", async () => {
    await new SqlSessionInterface({ client: db, table: 'layout' }).ready();
    const schema = await query("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'layout' ORDER BY name");
    expect(schema).toEqual([
      { type: 'index', name: 'ix_layout_expiry', sql: 'CREATE INDEX "ix_layout_expiry" ON "layout" (expiry)' },
      {
        type: 'table',
        name: 'layout',
        sql: 'CREATE TABLE "layout" (id INTEGER NOT NULL, session_id VARCHAR(255), data BLOB, expiry DATETIME, PRIMARY KEY (id), UNIQUE (session_id))',
      },
      { type: 'index', name: 'sqlite_autoindex_layout_1', sql: null },
    ]);
  });

  test('stores expiry as SQLAlchemy does: text, YYYY-MM-DD HH:MM:SS.ffffff, naive UTC', async () => {
    const store = primitives(new SqlSessionInterface({ client: db, table: 'expiry_text' }));
    await store.replaceRecord('session:text', Buffer.from('x'), 3600, call());
    const [row] = await query("SELECT typeof(expiry) AS kind, expiry, typeof(data) AS data FROM expiry_text WHERE session_id = 'session:text'");
    expect(row).toMatchObject({ kind: 'text', data: 'blob' });
    expect(String(row!.expiry)).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
    expect(Math.abs(utcMillis(String(row!.expiry)) - (Date.now() + 3600_000))).toBeLessThan(2000);
  });

  test('a schema is an attached database', async () => {
    const attached = join(dir, 'app.db');
    db.exec(`ATTACH DATABASE '${attached}' AS app`);
    try {
      const store = primitives(new SqlSessionInterface({ client: db, schema: 'app', table: 'flask_sessions' }));
      await store.replaceRecord('session:attached', Buffer.from('a'), 60, call());
      const other = new Database(attached, { readonly: true });
      try {
        expect(other.prepare('SELECT session_id FROM flask_sessions').all()).toEqual([{ session_id: 'session:attached' }]);
        expect(other.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'ix_flask_sessions_expiry'").all()).toHaveLength(1);
      } finally {
        other.close();
      }
    } finally {
      db.exec('DETACH DATABASE app');
    }
  });
});
