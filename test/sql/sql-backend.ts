/**
 * What the SQL specs share: a backend (a dialect, the client the interfaces
 * use, and a separate connection for looking at the table), and the tests of
 * what the SQL store does beyond the shared store contract, run on each
 * dialect by its spec: describeSqlStore(name, backend).
 */
import { Controller, Get, Query, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { Session, SessionConfigurationError, SessionModule, type SessionMixin } from '../../lib/index.js';
import { SqlSessionInterface, type SqlClient, type SqlSessionOptions } from '../../lib/sql/index.js';
import { RecordingLogger, cookiePair, createApp } from '../support/apps.js';

export type Dialect = 'postgres' | 'mysql' | 'sqlite';
export type Row = Record<string, unknown>;

export interface SqlBackend {
  readonly dialect: Dialect;
  /** The client the interfaces under test are given. */
  client(): SqlClient;
  /** Runs SQL on a connection of the test's own; `?` placeholders on every dialect. */
  query(sql: string, params?: unknown[]): Promise<Row[]>;
  /** A user of its own with no privilege on any table yet (servers with users: not SQLite). */
  limitedUser?(): Promise<LimitedUser>;
}

export interface LimitedUser {
  /** A client that logs in as that user. */
  readonly client: SqlClient;
  /** `GRANT privileges ON table TO` the user, as an administrator. */
  grant(privileges: string, table: string): Promise<void>;
  /** What else INSERT needs where the id comes from a sequence of its own (PostgreSQL: USAGE on it). */
  grantIdSequence?(table: string): Promise<void>;
  /** `REVOKE privileges ON table FROM` the user, as an administrator. */
  revoke(privileges: string, table: string): Promise<void>;
  close(): Promise<void>;
}

/** The SQL expression of a naive UTC timestamp column as text with six fractional digits, on each dialect. */
export function utcTextOf(dialect: Dialect, column: string): string {
  if (dialect === 'postgres') return `to_char(${column}, 'YYYY-MM-DD HH24:MI:SS.US')`;
  if (dialect === 'mysql') return `DATE_FORMAT(${column}, '%Y-%m-%d %H:%i:%s.%f')`;
  return column;
}

/** An expiry `seconds` from now (negative: in the past), naive UTC, as an SQL expression of each dialect. */
export function expiryIn(dialect: Dialect, seconds: number): string {
  if (dialect === 'postgres') return `(now() AT TIME ZONE 'UTC') + interval '${seconds} seconds'`;
  if (dialect === 'mysql') return `UTC_TIMESTAMP(6) + INTERVAL ${seconds} SECOND`;
  const iso = new Date(Date.now() + seconds * 1000).toISOString();
  return `'${iso.slice(0, 10)} ${iso.slice(11, 23)}000'`;
}

/** A naive UTC timestamp, read as UTC (ms since the epoch). */
export const utcMillis = (naive: string) => Date.parse(`${naive.replace(' ', 'T')}Z`);

/** `?` placeholders as PostgreSQL's `$1, $2…`. */
export function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** The store's primitives and internals, for tests that call them directly. */
export interface Primitives {
  readRecord(storeId: string, call: { deadline: number }): Promise<{ value: Buffer } | null>;
  swapRecord(storeId: string, expected: { value: Buffer } | null, value: Buffer, ttl: number, call: { deadline: number }): Promise<{ swapped: boolean; current?: { value: Buffer } | null }>;
  replaceRecord(storeId: string, value: Buffer, ttl: number, call: { deadline: number }): Promise<void>;
  deleteRecord(storeId: string, call: { deadline: number }): Promise<void>;
  refreshRecord(storeId: string, ttl: number, call: { deadline: number }): Promise<void>;
  serverClock: { offset: number };
  statements: {
    swap(id: string, expected: Buffer, value: Buffer, ttl: number, d: Deadlines): Promise<Reply>;
    insertIfAbsent(id: string, value: Buffer, ttl: number, d: Deadlines): Promise<Reply>;
    replace(id: string, value: Buffer, ttl: number, d: Deadlines): Promise<Reply>;
    refresh(id: string, ttl: number, d: Deadlines): Promise<Reply>;
    remove(id: string, d: Deadlines): Promise<Reply>;
  };
}
interface Deadlines {
  local: number;
  server: number;
}
interface Reply {
  written: boolean;
  late: boolean;
}
export const primitives = (sessions: SqlSessionInterface) => sessions as unknown as Primitives;
/** A call with a comfortable budget. */
export const call = () => ({ deadline: Date.now() + 5000 });

/** GET /get reads the session's `value`, GET /set?value= writes it. */
@Controller()
export class ValueController {
  @Get('get')
  get(@Session() session: SessionMixin) {
    return { value: session.get('value') ?? null };
  }

  @Get('set')
  set(@Session() session: SessionMixin, @Query('value') value = 'x') {
    session.set('value', value);
    return '';
  }
}

/** The SQL store's own behaviour on one dialect, each test on a table of its own. */
export function describeSqlStore(name: string, backend: SqlBackend): void {
  const { dialect } = backend;
  const create = (options: Partial<SqlSessionOptions> = {}) => new SqlSessionInterface({ client: backend.client(), ...options });
  const rowOf = async (table: string, storeId: string) =>
    (await backend.query(`SELECT id, data, ${utcTextOf(dialect, 'expiry')} AS expiry FROM ${table} WHERE session_id = ?`, [storeId]))[0];
  const insert = (table: string, storeId: string, data: string, expiry: string) =>
    backend.query(`INSERT INTO ${table} (session_id, data, expiry) VALUES (?, ?, ${expiry})`, [storeId, Buffer.from(data)]);

  describe(`${name}: the SQL store`, () => {
    let app: INestApplication | undefined;
    afterEach(async () => {
      await app?.close();
      app = undefined;
    });

    test('changes and refreshes a stored session with UPDATE only: no id is taken (a plain upsert takes one per write)', async () => {
      const sessions = create({ table: 'id_burn' });
      const store = primitives(sessions);
      await store.replaceRecord('session:first', Buffer.from('v0'), 3600, call());
      const first = Number((await rowOf('id_burn', 'session:first'))!.id);
      let current = Buffer.from('v0');
      for (let i = 1; i <= 20; i++) {
        const next = Buffer.from(`v${i}`);
        expect(await store.swapRecord('session:first', { value: current }, next, 3600, call())).toEqual({ swapped: true });
        current = next;
        await store.refreshRecord('session:first', 3600, call());
      }
      // A compare-and-set that loses, and a replace of the existing row (clear() then new keys), take none either.
      expect((await store.swapRecord('session:first', { value: Buffer.from('stale') }, Buffer.from('x'), 3600, call())).swapped).toBe(false);
      for (let i = 0; i < 5; i++) await store.replaceRecord('session:first', Buffer.from(`replaced ${i}`), 3600, call());
      await store.replaceRecord('session:second', Buffer.from('new'), 3600, call());
      const second = Number((await rowOf('id_burn', 'session:second'))!.id);
      expect(second - first).toBe(1);

      const upsert = {
        postgres: 'INSERT INTO id_burn (session_id, data, expiry) VALUES (?, ?, now()) ON CONFLICT (session_id) DO UPDATE SET data = EXCLUDED.data',
        mysql: 'INSERT INTO id_burn (session_id, data, expiry) VALUES (?, ?, UTC_TIMESTAMP()) ON DUPLICATE KEY UPDATE data = VALUES(data)',
        sqlite: "INSERT INTO id_burn (session_id, data, expiry) VALUES (?, ?, '2999-01-01') ON CONFLICT (session_id) DO UPDATE SET data = excluded.data",
      }[dialect];
      for (let i = 0; i < 20; i++) await backend.query(upsert, ['session:second', Buffer.from(`u${i}`)]);
      await store.replaceRecord('session:third', Buffer.from('new'), 3600, call());
      const third = Number((await rowOf('id_burn', 'session:third'))!.id);
      // PostgreSQL's sequence and InnoDB's AUTO_INCREMENT give each upsert an id; SQLite's rowid keeps no counter.
      expect(third - second).toBe(dialect === 'sqlite' ? 1 : 21);
    });

    test('never returns an expired row, nor one without an expiry', async () => {
      const store = primitives(create({ table: 'expired_reads' }));
      await store.replaceRecord('session:live', Buffer.from('live'), 3600, call());
      await insert('expired_reads', 'session:expired', 'old', expiryIn(dialect, -1));
      await insert('expired_reads', 'session:null', 'old', 'NULL');
      expect((await store.readRecord('session:live', call()))?.value.toString()).toBe('live');
      expect(await store.readRecord('session:expired', call())).toBeNull();
      expect(await store.readRecord('session:null', call())).toBeNull();
      // Neither can be changed as if it were there: a compare-and-set finds it gone.
      expect(await store.swapRecord('session:expired', { value: Buffer.from('old') }, Buffer.from('new'), 3600, call())).toEqual({ swapped: false, current: null });
      expect(Buffer.from((await rowOf('expired_reads', 'session:expired'))!.data as Buffer).toString()).toBe('old');
    });

    test('a refresh moves only expiry, and never brings back a deleted or expired row', async () => {
      const store = primitives(create({ table: 'refreshes' }));
      await store.replaceRecord('session:r', Buffer.from('kept'), 60, call());
      const before = await rowOf('refreshes', 'session:r');
      await store.refreshRecord('session:r', 7200, call());
      const after = await rowOf('refreshes', 'session:r');
      expect(Buffer.from(after!.data as Buffer).toString()).toBe('kept');
      expect(after!.id).toEqual(before!.id);
      expect(utcMillis(String(after!.expiry)) - utcMillis(String(before!.expiry))).toBeGreaterThan(7000 * 1000);
      await store.deleteRecord('session:r', call());
      await store.refreshRecord('session:r', 7200, call());
      expect(await rowOf('refreshes', 'session:r')).toBeUndefined();
      await insert('refreshes', 'session:expired', 'old', expiryIn(dialect, -5));
      const expiredBefore = await rowOf('refreshes', 'session:expired');
      await store.refreshRecord('session:expired', 7200, call());
      expect((await rowOf('refreshes', 'session:expired'))!.expiry).toBe(expiredBefore!.expiry);
    });

    test('"only if absent" inserts a new record, replaces an expired one, and returns a live one untouched', async () => {
      const store = primitives(create({ table: 'if_absent' }));
      expect(await store.swapRecord('session:new', null, Buffer.from('first'), 3600, call())).toEqual({ swapped: true });
      expect(await store.swapRecord('session:new', null, Buffer.from('second'), 3600, call())).toEqual({ swapped: false, current: { value: Buffer.from('first') } });
      await insert('if_absent', 'session:expired', 'old', expiryIn(dialect, -5));
      expect(await store.swapRecord('session:expired', null, Buffer.from('fresh'), 3600, call())).toEqual({ swapped: true });
      expect((await store.readRecord('session:expired', call()))?.value.toString()).toBe('fresh');
    });

    test('every write refuses itself when the database runs it after the request\'s deadline', async () => {
      const sessions = create({ table: 'late_writes' });
      const store = primitives(sessions);
      await store.replaceRecord('session:late', Buffer.from('before'), 3600, call());
      const before = await rowOf('late_writes', 'session:late');
      // The deadline in the server's clock has passed (as for a statement a paused server runs when it wakes);
      // SQLite runs in this process, where the local deadline is the one that counts.
      const late = dialect === 'sqlite' ? { local: Date.now() - 1, server: Date.now() - 1 } : { local: Date.now() + 5000, server: Date.now() - 1000 };
      const statements = store.statements;
      const attempts = [
        () => statements.swap('session:late', Buffer.from('before'), Buffer.from('after'), 3600, late),
        () => statements.insertIfAbsent('session:late-new', Buffer.from('after'), 3600, late),
        () => statements.replace('session:late', Buffer.from('after'), 3600, late),
        () => statements.replace('session:late-new', Buffer.from('after'), 3600, late),
        () => statements.refresh('session:late', 99_999, late),
        () => statements.remove('session:late', late),
      ];
      for (const attempt of attempts) {
        if (dialect === 'sqlite') await expect(attempt()).rejects.toThrow(/not sent/);
        else expect(await attempt()).toMatchObject({ written: false, late: true });
      }
      expect(await rowOf('late_writes', 'session:late')).toEqual(before);
      expect(await rowOf('late_writes', 'session:late-new')).toBeUndefined();
      // Through the interface: a request whose budget has run out gets an error naming the store, and nothing lands.
      await expect(store.replaceRecord('session:late', Buffer.from('after'), 3600, { deadline: Date.now() + 1 })).rejects.toThrow(/not sent|refused/);
      expect(await rowOf('late_writes', 'session:late')).toEqual(before);
    });

    if (dialect !== 'sqlite') {
      test("a wrong estimate of the server's clock is corrected by the refusal, and the write then lands once", async () => {
        const store = primitives(create({ table: 'clock_offset' }));
        await store.replaceRecord('session:c', Buffer.from('one'), 3600, call());
        store.serverClock.offset = -60_000; // as if the server's clock were a minute behind: every deadline looks past to it
        expect(await store.swapRecord('session:c', { value: Buffer.from('one') }, Buffer.from('two'), 3600, call())).toEqual({ swapped: true });
        expect(Math.abs(store.serverClock.offset)).toBeLessThan(1000);
        expect((await store.readRecord('session:c', call()))?.value.toString()).toBe('two');
      });
    }

    // The database sessions run in other time zones (see each spec); this process's is tested in time-zone.e2e-spec.ts.
    test('stores expiry as naive UTC, now + the lifetime, whatever the time zone of the database session', async () => {
      const store = primitives(create({ table: 'utc_expiry' }));
      const before = Date.now();
      await store.replaceRecord('session:tz', Buffer.from('x'), 3600, call());
      const expiry = utcMillis(String((await rowOf('utc_expiry', 'session:tz'))!.expiry));
      // MySQL/MariaDB's own DATETIME may round to the second; a time zone mistake is off by hours.
      expect(expiry).toBeGreaterThanOrEqual(before + 3600_000 - 2000);
      expect(expiry).toBeLessThanOrEqual(Date.now() + 3600_000 + 2000);
    });

    test('deleteExpired() removes expired rows and rows without an expiry, in batches, and keeps live ones', async () => {
      const sessions = create({ table: 'cleanup' });
      await sessions.ready();
      const expired = 2345;
      for (let start = 0; start < expired; start += 500) {
        const ids = Array.from({ length: Math.min(500, expired - start) }, (_, i) => `session:expired-${start + i}`);
        await backend.query(
          `INSERT INTO cleanup (session_id, data, expiry) VALUES ${ids.map(() => `(?, ?, ${expiryIn(dialect, -60)})`).join(', ')}`,
          ids.flatMap((id) => [id, Buffer.from('old')]),
        );
      }
      await insert('cleanup', 'session:no-expiry', 'x', 'NULL');
      for (const live of ['a', 'b', 'c']) await insert('cleanup', `session:live-${live}`, 'x', expiryIn(dialect, 3600));
      expect(await sessions.deleteExpired()).toBe(expired + 1);
      const left = await backend.query('SELECT session_id FROM cleanup ORDER BY session_id');
      expect(left.map((r) => r.session_id)).toEqual(['session:live-a', 'session:live-b', 'session:live-c']);
      expect(await sessions.deleteExpired()).toBe(0);
    });

    test('cleanupNRequests deletes expired rows in the background of session requests; a failed cleanup fails no request', async () => {
      const sessions = create({ table: 'cleanup_n', cleanupNRequests: 1 });
      await sessions.ready();
      await insert('cleanup_n', 'session:expired', 'old', expiryIn(dialect, -60));
      app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [ValueController] });
      // Each request draws 1 in 2: 40 requests all missing it has a chance of 2^-40.
      for (let i = 0; i < 40; i++) await request(app.getHttpServer()).get('/get').expect(200);
      const rows = async () => Number((await backend.query('SELECT count(*) AS n FROM cleanup_n'))[0]!.n);
      const deadline = Date.now() + 5000;
      while ((await rows()) > 0) {
        if (Date.now() > deadline) throw new Error('cleanupNRequests never deleted the expired row');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await app.close();

      class FailingCleanup extends SqlSessionInterface {
        cleanups = 0;
        override async deleteExpired(): Promise<number> {
          this.cleanups++;
          throw new Error('cleanup exploded');
        }
      }
      const failing = new FailingCleanup({ client: backend.client(), table: 'cleanup_n', cleanupNRequests: 1 });
      const logger = new RecordingLogger();
      app = await createApp({ imports: [SessionModule.forRoot({ interface: failing, secretKey: 'k' })], controllers: [ValueController] }, logger);
      const set = await request(app.getHttpServer()).get('/set?value=kept').expect(200);
      for (let i = 0; i < 40; i++) await request(app.getHttpServer()).get('/get').set('Cookie', cookiePair(set)).expect(200, { value: 'kept' });
      await new Promise((resolve) => setImmediate(resolve));
      expect(failing.cleanups).toBeGreaterThan(0);
      expect(logger.messages('warn')).toContain('cleanupNRequests: deleting expired sessions failed: cleanup exploded');
    });

    if (backend.limitedUser) {
      test("a user without the store's privileges fails at bootstrap, naming the grant; privileges revoked later answer 500 (the developer's to fix), not 503", async () => {
        await create({ table: 'granted' }).ready();
        const user = await backend.limitedUser!();
        const logger = new RecordingLogger();
        try {
          await user.grant('SELECT', 'granted');
          const selectOnly = new SqlSessionInterface({ client: user.client, table: 'granted' });
          await expect(selectOnly.ready()).rejects.toThrow(SessionConfigurationError);
          await expect(selectOnly.ready()).rejects.toThrow(/option "client".* refused the connection's user: INSERT .*denied|option "client".*permission denied for table granted/);
          await expect(selectOnly.ready()).rejects.toThrow(/The store needs GRANT SELECT, INSERT, UPDATE, DELETE ON .granted. TO <the connection's user>/);
          // Nest's bootstrap fails with it.
          await expect(createApp({ imports: [SessionModule.forRoot({ interface: selectOnly, secretKey: 'k' })], controllers: [ValueController] })).rejects.toThrow(
            /option "client"/,
          );

          await user.grant('INSERT, UPDATE, DELETE', 'granted');
          await user.grantIdSequence?.('granted');
          const sessions = new SqlSessionInterface({ client: user.client, table: 'granted' });
          app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [ValueController] }, logger);
          const set = await request(app.getHttpServer()).get('/set?value=a').expect(200);
          await user.revoke('UPDATE', 'granted');
          const refused = await request(app.getHttpServer()).get('/set?value=b').set('Cookie', cookiePair(set));
          expect(refused.status).toBe(500);
          expect(logger.messages('error').join('\n')).toMatch(/refused the connection's user: .*(UPDATE .*denied|permission denied for table granted).*GRANT SELECT, INSERT, UPDATE, DELETE/);
          // What it may still do works: the read, and the stored value is the one written before.
          await request(app.getHttpServer()).get('/get').set('Cookie', cookiePair(set)).expect(200, { value: 'a' });
        } finally {
          await app?.close();
          app = undefined;
          await user.close();
        }
      });
    }

    test('createTable: false runs no DDL: a missing table fails at bootstrap, naming it', async () => {
      const sessions = create({ table: 'never_created', createTable: false });
      await expect(sessions.ready()).rejects.toThrow(SessionConfigurationError);
      await expect(sessions.ready()).rejects.toThrow(/has no table never_created, and createTable is false/);
      await expect(createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [ValueController] })).rejects.toThrow(
        /never_created/,
      );
      expect(await backend.query(tableExists(dialect), ['never_created'])).toEqual([]);
    });

    test('createTable: false uses a table without an expiry index, and warns about it', async () => {
      await backend.query(
        {
          postgres: 'CREATE TABLE bare (id SERIAL NOT NULL, session_id VARCHAR(255), data BYTEA, expiry TIMESTAMP WITHOUT TIME ZONE, PRIMARY KEY (id), UNIQUE (session_id))',
          mysql: 'CREATE TABLE bare (id INTEGER NOT NULL AUTO_INCREMENT, session_id VARCHAR(255), data BLOB, expiry DATETIME, PRIMARY KEY (id), UNIQUE (session_id))',
          sqlite: 'CREATE TABLE bare (id INTEGER NOT NULL, session_id VARCHAR(255), data BLOB, expiry DATETIME, PRIMARY KEY (id), UNIQUE (session_id))',
        }[dialect],
      );
      const logger = new RecordingLogger();
      app = await createApp(
        { imports: [SessionModule.forRoot({ interface: create({ table: 'bare', createTable: false }), secretKey: 'k' })], controllers: [ValueController] },
        logger,
      );
      expect(logger.messages('warn')).toEqual([expect.stringContaining('bare.expiry has no index')]);
      const set = await request(app.getHttpServer()).get('/set?value=in-bare').expect(200);
      await request(app.getHttpServer()).get('/get').set('Cookie', cookiePair(set)).expect(200, { value: 'in-bare' });
      // With createTable on, the same table gets its index and is otherwise left as it is.
      await create({ table: 'bare' }).ready();
      expect(await expiryIndexes(backend, 'bare')).toHaveLength(1);
    });

    test('a table that is not Flask-Session\'s fails at bootstrap, saying what is missing', async () => {
      await backend.query('CREATE TABLE other_sessions (id INTEGER PRIMARY KEY, sid VARCHAR(255), payload TEXT)');
      await expect(create({ table: 'other_sessions' }).ready()).rejects.toThrow(/other_sessions lacks the column\(s\) session_id, data, expiry/);
      await backend.query(
        dialect === 'postgres'
          ? 'CREATE TABLE not_unique (id SERIAL PRIMARY KEY, session_id VARCHAR(255), data BYTEA, expiry TIMESTAMP)'
          : dialect === 'mysql'
            ? 'CREATE TABLE not_unique (id INTEGER AUTO_INCREMENT PRIMARY KEY, session_id VARCHAR(255), data BLOB, expiry DATETIME)'
            : 'CREATE TABLE not_unique (id INTEGER PRIMARY KEY, session_id VARCHAR(255), data BLOB, expiry DATETIME)',
      );
      await expect(create({ table: 'not_unique' }).ready()).rejects.toThrow(/not_unique.session_id is not UNIQUE/);
    });

    test('quotes table names: one with quotes, a backtick, a semicolon and spaces is just a name', async () => {
      const table = 'odd "name`; DROP TABLE x';
      const sessions = create({ table });
      const store = primitives(sessions);
      await store.replaceRecord('session:odd', Buffer.from('odd'), 3600, call());
      expect((await store.readRecord('session:odd', call()))?.value.toString()).toBe('odd');
      expect(await backend.query(tableExists(dialect), [table])).toHaveLength(1);
      expect(await sessions.deleteExpired()).toBe(0);
    });
  });
}

/** One row per table of that name (in the current database / schema). */
export function tableExists(dialect: Dialect): string {
  if (dialect === 'postgres') return "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?";
  if (dialect === 'mysql') return 'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?';
  return "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?";
}

/** The indexes of a table whose first column is expiry. */
export async function expiryIndexes(backend: SqlBackend, table: string): Promise<Row[]> {
  if (backend.dialect === 'postgres') {
    return backend.query(
      `SELECT i.indexrelid::regclass::text AS name FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = to_regclass(?) AND a.attname = 'expiry'`,
      [table],
    );
  }
  if (backend.dialect === 'mysql') {
    return backend.query(
      "SELECT INDEX_NAME AS name FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'expiry' AND SEQ_IN_INDEX = 1",
      [table],
    );
  }
  return backend.query("SELECT l.name FROM pragma_index_list(?) AS l WHERE (SELECT name FROM pragma_index_info(l.name) WHERE seqno = 0) = 'expiry'", [table]);
}
