/**
 * SqlSessionInterface checks its options at construction, before any I/O:
 * a missing or wrong client, bad table/schema names and wrong types fail
 * there, naming the option, never later as a 503. Real driver objects are
 * made (none connects until used).
 */
import Database from 'better-sqlite3';
import { createConnection, createPool, createPoolCluster } from 'mysql2';
import { createPool as createPromisePool } from 'mysql2/promise';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { SessionConfigurationError } from '../../lib/index.js';
import { SqlSessionInterface, type SqlSessionOptions } from '../../lib/sql/index.js';

const dir = mkdtempSync(join(tmpdir(), 'nest-session-sql-options-'));
const db = new Database(join(dir, 'options.db'));
afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const build = (options: unknown) => () => new SqlSessionInterface(options as SqlSessionOptions);

describe('the client', () => {
  test.each<[string, () => unknown, RegExp]>([
    ['missing', () => undefined, /"client": required: a TypeORM DataSource, a pg Pool, a mysql2 pool or a better-sqlite3 Database/],
    ['a connection string', () => 'postgres://user:secret@db/app', /"client": expected a connection object, got the string "postgres:\/\/…@db\/app": pass a pool made from it/],
    ['a number', () => 5432, /"client": expected a connection object, got number/],
    ['a plain object', () => ({ host: 'db' }), /"client": expected a TypeORM DataSource, a pg Pool, a mysql2 pool or a better-sqlite3 Database\./],
    ['a Map', () => new Map(), /got a Map/],
    ['a pg Client', () => new pg.Client({ host: '127.0.0.1', port: 1 }), /this looks like a pg Client \(one connection\); pass a pg Pool/],
  ])('refuses %s, naming "client"', (_case, client, message) => {
    expect(build({ client: client() })).toThrow(SessionConfigurationError);
    expect(build({ client: client() })).toThrow(message);
  });

  test('refuses a single mysql2 connection and a PoolCluster', () => {
    const connection = createConnection({ host: '127.0.0.1', port: 1 });
    connection.on('error', () => undefined); // it tries to connect at once; nothing listens on port 1
    try {
      expect(build({ client: connection })).toThrow(/single mysql2 connection; pass a pool/);
    } finally {
      connection.destroy();
    }
    const cluster = createPoolCluster();
    expect(build({ client: cluster })).toThrow(/a mysql2 PoolCluster is not supported/);
  });

  test('refuses a readonly better-sqlite3 Database', () => {
    const readonly = new Database(join(dir, 'options.db'), { readonly: true });
    try {
      expect(build({ client: readonly })).toThrow(/opened readonly/);
    } finally {
      readonly.close();
    }
  });

  test('refuses a TypeORM DataSource of another type, and one with replication', () => {
    const cockroach = new DataSource({ type: 'cockroachdb', host: '127.0.0.1', port: 1, timeTravelQueries: false });
    expect(build({ client: cockroach })).toThrow(/a TypeORM DataSource of type "cockroachdb" is not supported; the types are 'postgres', 'mysql', 'mariadb' and 'better-sqlite3'/);
    const replicated = new DataSource({ type: 'mysql', replication: { master: { host: '127.0.0.1' }, slaves: [] } });
    expect(build({ client: replicated })).toThrow(/replication is not supported/);
  });

  test.each<[string, () => unknown, string]>([
    ['a pg Pool', () => new pg.Pool({ host: '127.0.0.1', port: 1 }), 'PostgreSQL'],
    ['a mysql2 pool (callback API)', () => createPool({ host: '127.0.0.1', port: 1 }), 'MySQL'],
    ['a mysql2 pool (promise API)', () => createPromisePool({ host: '127.0.0.1', port: 1 }), 'MySQL'],
    ['a better-sqlite3 Database', () => db, 'SQLite'],
    ['a TypeORM DataSource (postgres), not initialized yet', () => new DataSource({ type: 'postgres', host: '127.0.0.1', port: 1 }), 'PostgreSQL'],
    ['a TypeORM DataSource (mariadb)', () => new DataSource({ type: 'mariadb', host: '127.0.0.1', port: 1 }), 'MySQL'],
    ['a TypeORM DataSource (better-sqlite3)', () => new DataSource({ type: 'better-sqlite3', database: ':memory:' }), 'SQLite'],
  ])('takes %s without connecting', (_case, client, storeName) => {
    const sessions = new SqlSessionInterface({ client: client() as SqlSessionOptions['client'] });
    expect((sessions as unknown as { storeName: string }).storeName).toBe(storeName);
    expect(sessions.table).toBe('sessions');
    expect(sessions.schema).toBeUndefined();
    expect(sessions.createTable).toBe(true);
    expect(sessions.cleanupNRequests).toBeUndefined();
  });
});

describe('the other options', () => {
  test.each<[string, Record<string, unknown>, RegExp]>([
    ['an empty table name', { table: '' }, /"table": expected 1 to 63 characters, got 0/],
    ['a table name too long for PostgreSQL', { table: 't'.repeat(64) }, /"table": expected 1 to 63 characters, got 64/],
    ['a table name with a newline', { table: 'a\nb' }, /"table": "a\\nb" contains a control character/],
    ['a table name with a NUL', { table: 'a\u0000b' }, /"table": .* contains a control character/],
    ['a table name with a trailing space', { table: 'sessions ' }, /"table": "sessions " starts or ends with a space/],
    ['a table name that is not a string', { table: 42 }, /"table": expected a string, got number 42/],
    ['a schema that is not a string', { schema: ['app'] }, /"schema": expected a string, got a Array/],
    ['an empty schema', { schema: '' }, /"schema": expected 1 to 63 characters/],
    ['createTable as text', { createTable: 'no' }, /"createTable": expected true or false, got "no"/],
    ['a negative cleanupNRequests', { cleanupNRequests: -1 }, /"cleanupNRequests": expected a whole number of requests >= 0/],
    ['a fractional cleanupNRequests', { cleanupNRequests: 1.5 }, /"cleanupNRequests"/],
    ['cleanupNRequests as text', { cleanupNRequests: '100' }, /"cleanupNRequests": .* got "100"/],
    ['a misspelled option', { tableName: 'sessions' }, /"tableName": unknown option; expected one of .*table, schema, createTable, cleanupNRequests/],
    ['a misspelled option, in another case', { createtable: false }, /did you mean "createTable"/],
    ['a keyPrefix too long for session_id varchar(255)', { keyPrefix: 'p'.repeat(213) }, /"sidLength": keyPrefix \(213 characters\) \+ the sid \(43\) exceed the 255 characters of session_id/],
  ])('refuses %s, naming the option', (_case, options, message) => {
    expect(build({ client: db, ...options })).toThrow(SessionConfigurationError);
    expect(build({ client: db, ...options })).toThrow(message);
  });

  test('takes what Flask-Session takes', () => {
    const sessions = new SqlSessionInterface({ client: db, table: 'Sessions', schema: 'main', createTable: false, cleanupNRequests: 100, keyPrefix: 'p'.repeat(212) });
    expect([sessions.table, sessions.schema, sessions.createTable, sessions.cleanupNRequests]).toEqual(['Sessions', 'main', false, 100]);
    expect(new SqlSessionInterface({ client: db, cleanupNRequests: 0 }).cleanupNRequests).toBeUndefined(); // 0 is off, as in Flask-Session
    expect(new SqlSessionInterface({ client: db, cleanupNRequests: null, schema: undefined }).cleanupNRequests).toBeUndefined();
  });
});

test('nest-session/sql loads no driver: pg, mysql2, better-sqlite3 and typeorm are only ever the user\'s (built package, dist/)', async () => {
  const { execFileSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const code =
    "require('nest-session/sql');" +
    "console.log(JSON.stringify(Object.keys(require.cache).filter((f) => /\\/node_modules\\/(pg|pg-pool|mysql2|better-sqlite3|typeorm)\\//.test(f))))";
  expect(execFileSync(process.execPath, ['--input-type=commonjs', '-e', code], { cwd: root, encoding: 'utf8' }).trim()).toBe('[]');
});
