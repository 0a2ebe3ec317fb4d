/**
 * A Flask app on Flask-Session's SQLAlchemy backend and nest-session share one
 * table, on PostgreSQL, MariaDB and SQLite. The Python peer
 * (test/compat/flask_session_sql_peer.py) runs Flask-Session 0.8's own table
 * and record code on Debian's SQLAlchemy: whichever side creates the table,
 * what one writes the other reads and changes, and expiry means the same
 * instant to both (each side's cleanup removes what the other wrote once it
 * expired).
 */
import { Controller, Get, Query, type INestApplication } from '@nestjs/common';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPool as createMysqlPool, type Pool as MysqlPool } from 'mysql2/promise';
import pg from 'pg';
import request from 'supertest';
import { Session, SessionModule, type SerializationFormat, type SessionMixin } from '../../lib/index.js';
import { SqlSessionInterface, type SqlClient } from '../../lib/sql/index.js';
import { cookiePair, createApp } from '../support/apps.js';
import { describeValue } from '../support/flask.js';
import { flaskSessionSql, type SqlTarget } from '../support/flask-session-peers.js';
import { MariaDBServer } from '../support/mariadb-server.js';
import { PostgresServer } from '../support/postgres-server.js';
import { numbered, type Row } from './sql-backend.js';

@Controller()
class SharedController {
  @Get('describe')
  describe(@Session() session: SessionMixin) {
    return describeValue(session.toJSON());
  }

  @Get('write')
  write(@Session() session: SessionMixin) {
    session.update({ user_id: 7, name: 'h\u00e9llo', ratio: 0.5, flags: [true, false, null], nested: { a: [1, 2, { b: 'c' }] } });
    return { sid: (session as unknown as { sid: string }).sid };
  }

  @Get('write-types')
  writeTypes(@Session() session: SessionMixin) {
    session.update({ when: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)), raw: Buffer.from([0, 255]) });
    return { sid: (session as unknown as { sid: string }).sid };
  }

  @Get('set')
  set(@Session() session: SessionMixin, @Query('key') key: string, @Query('value') value: string) {
    session.set(key, value);
    return { sid: (session as unknown as { sid: string }).sid };
  }
}

/** The peers' sample session (msgpack adds a date and bytes), as describeValue shows it. */
const COMMON = { _permanent: true, user_id: 7, name: 'h\u00e9llo', ratio: 0.5, flags: [true, false, null], nested: { a: [1, 2, { b: 'c' }] } };
const TYPED = { when: { $date: '2024-01-02T03:04:05Z' }, raw: { $bytes: 'AP8=' } };
const newSid = () => randomBytes(32).toString('base64url');

interface Shared {
  url: string;
  client(): SqlClient;
  query(sql: string, params?: unknown[]): Promise<Row[]>;
  /**
   * The column types nest-session's table has where they differ from the
   * ones SQLAlchemy makes (MySQL/MariaDB: a byte-exact collation, 16 MiB,
   * microseconds; the README says why), as SQLAlchemy's inspector names them.
   */
  ownTypes?: Record<string, { ours: string; flask: string }>;
}

function describeSharing(name: string, setUp: () => Promise<Shared>, tearDown: () => Promise<void>) {
  describe(name, () => {
    let shared: Shared;
    let app: INestApplication | undefined;
    beforeAll(async () => {
      shared = await setUp();
      // The default table, as a Flask app started first would make it (the test below uses one nest-session made).
      await flaskSessionSql({ op: 'create', url: shared.url });
    }, 120_000);
    afterAll(tearDown);
    afterEach(async () => {
      await app?.close();
      app = undefined;
    });

    async function nest(options: { table?: string; schema?: string; keyPrefix?: string; serializationFormat?: SerializationFormat } = {}, lifetime?: number) {
      app = await createApp({
        imports: [
          SessionModule.forRoot({
            interface: new SqlSessionInterface({ client: shared.client(), ...options }),
            secretKey: 'k',
            ...(lifetime ? { permanentSessionLifetime: lifetime } : {}),
          }),
        ],
        controllers: [SharedController],
      });
      return app.getHttpServer();
    }

    test('the table Flask-Session created is used as it is, gaining only an index on expiry', async () => {
      const target: SqlTarget = { url: shared.url, table: 'flask_first' };
      await flaskSessionSql({ op: 'create', ...target });
      const before = await flaskSessionSql({ op: 'inspect', ...target });
      const http = await nest({ table: 'flask_first' });
      const written = await request(http).get('/write').expect(200);
      const after = await flaskSessionSql({ op: 'inspect', ...target });
      expect(after.columns).toEqual(before.columns);
      expect(after.primary_key).toEqual(before.primary_key);
      expect(after.unique).toEqual(before.unique);
      expect(after.indexes).toEqual(expect.arrayContaining([...before.indexes, { columns: ['expiry'], unique: false }]));
      expect(after.indexes).toHaveLength(before.indexes.length + 1);
      const read = await flaskSessionSql({ op: 'read', ...target, sid: written.body.sid });
      expect(read.session).toEqual(COMMON);
    });

    test("the table nest-session created is the one Flask-Session would have (same columns, key and unique), plus the expiry index", async () => {
      await nest({ table: 'nest_first' });
      await request(app!.getHttpServer()).get('/write').expect(200);
      await flaskSessionSql({ op: 'create', url: shared.url, table: 'flask_reference' });
      const ours = await flaskSessionSql({ op: 'inspect', url: shared.url, table: 'nest_first' });
      const theirs = await flaskSessionSql({ op: 'inspect', url: shared.url, table: 'flask_reference' });
      const differing = shared.ownTypes ?? {};
      expect(ours.columns.map((c) => c.name)).toEqual(theirs.columns.map((c) => c.name));
      for (const [i, column] of ours.columns.entries()) {
        const expected = differing[column.name];
        if (expected) expect([column.type, theirs.columns[i]!.type]).toEqual([expected.ours, expected.flask]);
        expect(column).toEqual(expected ? { ...theirs.columns[i], type: expected.ours } : theirs.columns[i]);
      }
      expect(ours.primary_key).toEqual(theirs.primary_key);
      expect(ours.unique).toEqual(theirs.unique);
      expect(ours.indexes).toEqual(expect.arrayContaining([{ columns: ['expiry'], unique: false }]));
    });

    test.each(['msgpack', 'json'] as const)('a %s session nest-session writes opens in Flask-Session, live (its expiry read as UTC)', async (format) => {
      const http = await nest({ serializationFormat: format });
      const written = await request(http).get('/write').expect(200);
      let read = await flaskSessionSql({ op: 'read', url: shared.url, sid: written.body.sid, format });
      expect(read).toMatchObject({ session: COMMON, deleted_expired: false });
      // 31 days ahead in UTC, as Flask-Session computes it from utcnow().
      const expiry = Date.parse(`${read.row!.expiry}Z`);
      expect(Math.abs(expiry - (Date.now() + 31 * 24 * 3600 * 1000))).toBeLessThan(60_000);
      if (format === 'msgpack') {
        await request(http).get('/write-types').set('Cookie', cookiePair(written)).expect(200);
        read = await flaskSessionSql({ op: 'read', url: shared.url, sid: written.body.sid });
        expect(read.session).toEqual({ ...COMMON, ...TYPED });
      }
    });

    test.each(['msgpack', 'json'] as const)('a %s session Flask-Session writes opens in nest-session; a change made there is an UPDATE Flask-Session reads', async (format) => {
      const sid = newSid();
      await flaskSessionSql({ op: 'write', url: shared.url, sid, format });
      const http = await nest({ serializationFormat: format });
      const opened = await request(http).get('/describe').set('Cookie', `session=${sid}`).expect(200);
      expect(opened.body).toEqual(format === 'msgpack' ? { ...COMMON, ...TYPED } : COMMON);
      const before = await flaskSessionSql({ op: 'read', url: shared.url, sid, format });
      await request(http).get('/set?key=from_nest&value=yes').set('Cookie', `session=${sid}`).expect(200, { sid });
      const after = await flaskSessionSql({ op: 'read', url: shared.url, sid, format });
      expect(after.session).toEqual({ ...before.session, from_nest: 'yes' });
      expect(after.row!.id).toBe(before.row!.id);
      // Flask-Session writes again over nest-session's change: still the same row.
      await flaskSessionSql({ op: 'write', url: shared.url, sid, format, session: { from_flask: 'again' } });
      await request(http).get('/describe').set('Cookie', `session=${sid}`).expect(200, { from_flask: 'again' });
    });

    test('expiry means the same instant to both: each side drops what the other wrote once it expired', async () => {
      const flaskExpired = newSid();
      await flaskSessionSql({ op: 'write', url: shared.url, sid: flaskExpired, lifetime: -5 });
      // A lifetime long enough for the peer (a Python start, a second or two on a busy machine) to read it live first.
      const lifetime = 5;
      const http = await nest({}, lifetime);
      const opened = await request(http).get('/describe').set('Cookie', `session=${flaskExpired}`).expect(200);
      expect(opened.body).toEqual({ _permanent: true }); // a fresh session: the expired row was not read
      const writtenAt = Date.now();
      const nestWritten = await request(http).get('/write').expect(200);
      expect((await flaskSessionSql({ op: 'read', url: shared.url, sid: nestWritten.body.sid })).session).toEqual(COMMON);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, writtenAt + lifetime * 1000 + 500 - Date.now())));
      // Flask-Session's cleanup (expiry <= utcnow()) takes nest-session's expired row; nest-session's takes Flask's.
      const { deleted } = await flaskSessionSql({ op: 'cleanup', url: shared.url });
      expect(deleted).toBeGreaterThanOrEqual(1);
      const left = await shared.query('SELECT session_id FROM sessions WHERE session_id IN (?, ?)', [`session:${flaskExpired}`, `session:${nestWritten.body.sid}`]);
      expect(left).toEqual([]);
      await flaskSessionSql({ op: 'write', url: shared.url, sid: flaskExpired, lifetime: -5 });
      const sessions = new SqlSessionInterface({ client: shared.client() });
      expect(await sessions.deleteExpired()).toBeGreaterThanOrEqual(1);
      expect(await shared.query('SELECT session_id FROM sessions WHERE session_id = ?', [`session:${flaskExpired}`])).toEqual([]);
    });

    test('a custom table and key prefix are shared', async () => {
      const sid = newSid();
      const target = { url: shared.url, table: 'shop_sessions', key_prefix: 'shop:' };
      const http = await nest({ table: 'shop_sessions', keyPrefix: 'shop:' });
      await flaskSessionSql({ op: 'write', ...target, sid, session: { cart: [1, 2] } });
      await request(http).get('/set?key=coupon&value=TEN').set('Cookie', `session=${sid}`).expect(200, { sid });
      expect((await flaskSessionSql({ op: 'read', ...target, sid })).session).toEqual({ cart: [1, 2], coupon: 'TEN' });
      expect(await shared.query('SELECT session_id FROM shop_sessions')).toEqual([{ session_id: `shop:${sid}` }]);
    });
  });
}

let server: PostgresServer;
let pool: pg.Pool;
describeSharing(
  'PostgreSQL, shared with Flask-Session',
  async () => {
    server = await PostgresServer.start();
    pool = new pg.Pool(server.poolConfig);
    return { url: server.sqlalchemyUrl, client: () => pool, query: async (sql, params = []) => (await pool.query(numbered(sql), params)).rows };
  },
  async () => {
    await pool?.end();
    await server?.close();
  },
);

let mariadb: MariaDBServer;
let mariadbPool: MysqlPool;
describeSharing(
  'MariaDB, shared with Flask-Session (PyMySQL)',
  async () => {
    mariadb = await MariaDBServer.start();
    mariadbPool = createMysqlPool(mariadb.connectionOptions);
    return {
      url: mariadb.sqlalchemyUrl,
      client: () => mariadbPool,
      query: async (sql, params = []) => {
        const [rows] = await mariadbPool.query(sql, params);
        return Array.isArray(rows) ? (rows as Row[]) : [];
      },
      ownTypes: {
        session_id: { ours: 'VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin', flask: 'VARCHAR(255)' },
        data: { ours: 'MEDIUMBLOB', flask: 'BLOB' },
        expiry: { ours: 'DATETIME(6)', flask: 'DATETIME' },
      },
    };
  },
  async () => {
    await mariadbPool?.end();
    await mariadb?.close();
  },
);

let dir: string;
let db: Database.Database;
describeSharing(
  'SQLite, shared with Flask-Session',
  async () => {
    dir = mkdtempSync(join(tmpdir(), 'nest-session-sqlite-shared-'));
    const file = join(dir, 'shared.db');
    db = new Database(file, { timeout: 2000 });
    return {
      url: `sqlite:///${file}`,
      client: () => db,
      query: async (sql, params = []) => {
        const statement = db.prepare(sql);
        return statement.reader ? (statement.all(...params) as Row[]) : (statement.run(...params), []);
      },
    };
  },
  async () => {
    db?.close();
    rmSync(dir, { recursive: true, force: true });
  },
);
