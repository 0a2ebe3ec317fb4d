/**
 * SqlSessionInterface on PostgreSQL: the store contract through a pg Pool and
 * through a TypeORM DataSource, then the SQL store's own behaviour. The
 * database sessions run in Kolkata and Chatham time: nothing may depend on it.
 */
import type { INestApplication } from '@nestjs/common';
import pg from 'pg';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { SessionConfigurationError, SessionModule } from '../../lib/index.js';
import { SqlSessionInterface } from '../../lib/sql/index.js';
import { describeStoreContract } from '../server-side/contract.js';
import { RecordingLogger, cookiePair, createApp } from '../support/apps.js';
import { PostgresServer } from '../support/postgres-server.js';
import { ValueController, call, describeSqlStore, expiryIndexes, numbered, primitives, type LimitedUser, type SqlBackend } from './sql-backend.js';

let server: PostgresServer;
let pool: pg.Pool;
let raw: pg.Pool;
let dataSource: DataSource;

beforeAll(async () => {
  server = await PostgresServer.start();
  pool = new pg.Pool({ ...server.poolConfig, options: '-c TimeZone=Asia/Kolkata' });
  // node-postgres reports an idle connection that breaks (a stopped server) on the pool: expected here.
  pool.on('error', () => undefined);
  raw = new pg.Pool(server.poolConfig);
  raw.on('error', () => undefined);
  dataSource = await new DataSource({
    type: 'postgres',
    host: server.host,
    port: server.port,
    username: server.user,
    password: server.password,
    database: server.database,
    extra: { options: '-c TimeZone=Pacific/Chatham' },
  }).initialize();
}, 120_000);

afterAll(async () => {
  await dataSource?.destroy();
  await pool?.end();
  await raw?.end();
  await server?.close();
});

const query = async (sql: string, params: unknown[] = []) => (await raw.query(numbered(sql), params)).rows;
const readStored = async (storeId: string) => ((await query('SELECT data FROM sessions WHERE session_id = ?', [storeId]))[0]?.data as Buffer | undefined) ?? null;
const outage = { breakStore: () => server.stop(), repairStore: () => server.start() };

describeStoreContract('PostgreSQL (pg Pool)', {
  create: (options) => new SqlSessionInterface({ client: pool, ...options }),
  read: readStored,
  ...outage,
});

describeStoreContract('PostgreSQL (TypeORM DataSource)', {
  create: (options) => new SqlSessionInterface({ client: dataSource, ...options }),
  read: readStored,
  ...outage,
});

const apps: INestApplication[] = [];
/** An app with /get and /set over `sessions`; closed by closeApps(). */
async function sessionApp(sessions: SqlSessionInterface, logger?: RecordingLogger) {
  const app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [ValueController] }, logger);
  apps.push(app);
  return app.getHttpServer();
}
const closeApps = () => Promise.all(apps.splice(0).map((app) => app.close()));

/** As the superuser: the test's role may not create roles. */
async function asAdmin(sql: string): Promise<void> {
  const admin = new pg.Client(server.adminConfig);
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}

let limitedUsers = 0;
/** A role of its own, with a password, logging in over TCP as the application's would. */
async function limitedUser(): Promise<LimitedUser & { role: string; password: string }> {
  const role = `limited_${++limitedUsers}`;
  const password = `pw-${role}`;
  await asAdmin(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
  const client = new pg.Pool({ ...server.poolConfig, user: role, password });
  client.on('error', () => undefined);
  return {
    role,
    password,
    client,
    grant: (privileges, table) => asAdmin(`GRANT ${privileges} ON ${table} TO ${role}`),
    grantIdSequence: (table) => asAdmin(`GRANT USAGE ON SEQUENCE ${table}_id_seq TO ${role}`),
    revoke: (privileges, table) => asAdmin(`REVOKE ${privileges} ON ${table} FROM ${role}`),
    close: () => client.end(),
  };
}

const backend: SqlBackend = { dialect: 'postgres', client: () => pool, query, limitedUser };
describeSqlStore('PostgreSQL', backend);

describe('PostgreSQL specifics', () => {
  test("creates Flask-Session's table as SQLAlchemy does (serial id, varchar(255) unique, bytea, timestamp without time zone) and indexes expiry", async () => {
    await new SqlSessionInterface({ client: pool, table: 'layout' }).ready();
    const columns = await query(
      `SELECT column_name, data_type, character_maximum_length AS length, is_nullable, column_default
         FROM information_schema.columns WHERE table_name = 'layout' ORDER BY ordinal_position`,
    );
    expect(columns).toEqual([
      { column_name: 'id', data_type: 'integer', length: null, is_nullable: 'NO', column_default: "nextval('layout_id_seq'::regclass)" },
      { column_name: 'session_id', data_type: 'character varying', length: 255, is_nullable: 'YES', column_default: null },
      { column_name: 'data', data_type: 'bytea', length: null, is_nullable: 'YES', column_default: null },
      { column_name: 'expiry', data_type: 'timestamp without time zone', length: null, is_nullable: 'YES', column_default: null },
    ]);
    const indexes = await query("SELECT indexname FROM pg_indexes WHERE tablename = 'layout' ORDER BY indexname");
    expect(indexes.map((i) => i.indexname)).toEqual(['ix_layout_expiry', 'layout_pkey', 'layout_session_id_key']);
  });

  test('a schema of its own: the table is made there, and a missing schema fails at bootstrap naming the option', async () => {
    await query('CREATE SCHEMA app');
    const sessions = new SqlSessionInterface({ client: pool, schema: 'app', table: 'flask_sessions' });
    await primitives(sessions).replaceRecord('session:in-app', Buffer.from('x'), 60, call());
    expect(await query('SELECT session_id FROM app.flask_sessions')).toEqual([{ session_id: 'session:in-app' }]);
    expect(await expiryIndexes(backend, 'app.flask_sessions')).toEqual([{ name: 'app.ix_flask_sessions_expiry' }]);
    const missing = new SqlSessionInterface({ client: pool, schema: 'nowhere' });
    await expect(missing.ready()).rejects.toThrow(SessionConfigurationError);
    await expect(missing.ready()).rejects.toThrow(/option "schema".*schema "nowhere" does not exist/);
  });

  test('processes creating the table at once all start (IF NOT EXISTS races on PostgreSQL)', async () => {
    const clients = Array.from({ length: 8 }, () => new pg.Pool(server.poolConfig));
    try {
      // Several rounds: the losing side of the race varies (catalog collision, relation or row type exists).
      for (const table of ['raced_1', 'raced_2', 'raced_3', 'raced_4', 'raced_5']) {
        await Promise.all(clients.map((client) => new SqlSessionInterface({ client, table }).ready()));
        expect(await expiryIndexes(backend, table)).toHaveLength(1);
      }
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
  });

  test("without USAGE on the id's sequence no session could be created: that fails at bootstrap too, naming the grant", async () => {
    await new SqlSessionInterface({ client: pool, table: 'sequenced' }).ready();
    const user = await limitedUser();
    try {
      await user.grant('SELECT, INSERT, UPDATE, DELETE', 'sequenced');
      const withoutSequence = new SqlSessionInterface({ client: user.client, table: 'sequenced' });
      await expect(withoutSequence.ready()).rejects.toThrow(SessionConfigurationError);
      await expect(withoutSequence.ready()).rejects.toThrow(/option "client".*GRANT USAGE ON SEQUENCE public\.sequenced_id_seq TO/);
      await user.grantIdSequence!('sequenced');
      const sessions = new SqlSessionInterface({ client: user.client, table: 'sequenced' });
      await primitives(sessions).replaceRecord('session:granted', Buffer.from('g'), 60, call());
      expect(await query('SELECT session_id FROM sequenced')).toEqual([{ session_id: 'session:granted' }]);

      // An identity column's sequence needs no privilege of its own: the table's grants are enough.
      await query('CREATE TABLE identified (id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, session_id VARCHAR(255) UNIQUE, data BYTEA, expiry TIMESTAMP)');
      await user.grant('SELECT, INSERT, UPDATE, DELETE', 'identified');
      const identified = new SqlSessionInterface({ client: user.client, table: 'identified', createTable: false });
      await identified.ready();
      await primitives(identified).replaceRecord('session:identified', Buffer.from('i'), 60, call());
      expect(await query('SELECT session_id FROM identified')).toEqual([{ session_id: 'session:identified' }]);
    } finally {
      await user.close();
    }
  });

  test('a user who may not create the missing table fails the bootstrap naming createTable and the way out', async () => {
    const user = await limitedUser();
    try {
      // PostgreSQL 15 grants no CREATE on schema public to PUBLIC.
      const sessions = new SqlSessionInterface({ client: user.client, table: 'not_made' });
      await expect(sessions.ready()).rejects.toThrow(SessionConfigurationError);
      await expect(sessions.ready()).rejects.toThrow(
        /option "createTable".*refused the connection's user: permission denied for schema public.*needs the CREATE privilege.*or create them yourself \(see the README\) and pass createTable: false/,
      );
    } finally {
      await user.close();
    }
  });

  test('a wrong password or database is a configuration error (500, and a failed bootstrap); a server out of connections is an outage (503) to wait out', async () => {
    const user = await limitedUser();
    const wrong = new pg.Pool({ ...server.poolConfig, user: user.role, password: 'not-it' });
    wrong.on('error', () => undefined);
    // A role over its connection limit is refused by the server at login (53300): what "too many clients" looks like.
    await asAdmin(`ALTER ROLE ${user.role} CONNECTION LIMIT 0`);
    try {
      const badPassword = new SqlSessionInterface({ client: wrong, table: 'sessions' });
      await expect(badPassword.ready()).rejects.toThrow(SessionConfigurationError);
      await expect(badPassword.ready()).rejects.toThrow(/option "client".*password authentication failed for user "limited_\d+"/);
      await expect(primitives(badPassword).readRecord('session:x', call())).rejects.toThrow(SessionConfigurationError);
      // So is a database that does not exist (FATAL 3D000 at login).
      const nowhere = new pg.Pool({ ...server.poolConfig, database: 'nowhere' });
      nowhere.on('error', () => undefined);
      await expect(new SqlSessionInterface({ client: nowhere }).ready()).rejects.toThrow(/option "client".*database "nowhere" does not exist/);
      await nowhere.end();

      const full = new SqlSessionInterface({ client: user.client, table: 'sessions' });
      const outage = full.ready().catch((error: unknown) => error);
      expect(await outage).not.toBeInstanceOf(SessionConfigurationError);
      expect(String(await outage)).toMatch(/too many connections for role "limited_\d+"/);
      // Through a request that writes: 503 (the store unavailable), as for a server that is down.
      const refused = await request(await sessionApp(full)).get('/set?value=v');
      expect(refused.status).toBe(503);
    } finally {
      await closeApps();
      await wrong.end();
      await user.close();
    }
  });

  test('a statement PostgreSQL refuses as a serialization failure (40001: a REPEATABLE READ database, a concurrent update) is run again, and the write lands', async () => {
    const repeatable = new pg.Pool({ ...server.poolConfig, options: '-c default_transaction_isolation=repeatable\\ read' });
    repeatable.on('error', () => undefined);
    const other = new pg.Client(server.poolConfig);
    await other.connect();
    try {
      const store = primitives(new SqlSessionInterface({ client: repeatable, table: 'serialized' }));
      await store.replaceRecord('session:ser', Buffer.from('v0'), 3600, call());
      expect((await repeatable.query('SHOW default_transaction_isolation')).rows).toEqual([{ default_transaction_isolation: 'repeatable read' }]);
      await other.query('BEGIN');
      await other.query("UPDATE serialized SET expiry = expiry WHERE session_id = 'session:ser'");
      // The store's compare-and-set waits for the row; the update committed meanwhile makes its snapshot stale.
      const write = store.swapRecord('session:ser', { value: Buffer.from('v0') }, Buffer.from('v1'), 3600, { deadline: Date.now() + 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await other.query('COMMIT');
      expect(await write).toEqual({ swapped: true });
      expect(await query("SELECT data FROM serialized WHERE session_id = 'session:ser'")).toEqual([{ data: Buffer.from('v1') }]);
    } finally {
      await other.end();
      await repeatable.end();
    }
  });

  test('a table dropped under the running application answers 500 saying so, not 503', async () => {
    const logger = new RecordingLogger();
    const http = await sessionApp(new SqlSessionInterface({ client: pool, table: 'dropped' }), logger);
    try {
      const set = await request(http).get('/set?value=a').expect(200);
      await query('DROP TABLE dropped');
      await request(http).get('/get').set('Cookie', cookiePair(set)).expect(500);
      expect(logger.messages('error').join('\n')).toMatch(
        /option "table": PostgreSQL at .* refused the store's statement on dropped: relation "dropped" does not exist.*Was the table dropped or changed\?/,
      );
    } finally {
      await closeApps();
    }
  });

  test("uses the DataSource's own pool: no connection of its own", async () => {
    const before = (dataSource.driver as unknown as { master: pg.Pool }).master.totalCount;
    const sessions = new SqlSessionInterface({ client: dataSource, table: 'typeorm_pool' });
    await primitives(sessions).replaceRecord('session:t', Buffer.from('t'), 60, call());
    expect((dataSource.driver as unknown as { master: pg.Pool }).master.totalCount).toBeLessThanOrEqual(Math.max(before, 1));
    expect(await query('SELECT session_id FROM typeorm_pool')).toEqual([{ session_id: 'session:t' }]);
  });

  test('a DataSource not initialized yet is waited for by nothing: requests fail, naming it, until it is', async () => {
    const later = new DataSource({ type: 'postgres', host: server.host, port: server.port, username: server.user, password: server.password, database: server.database });
    const sessions = new SqlSessionInterface({ client: later, table: 'later' });
    await expect(sessions.ready()).rejects.toThrow(/TypeORM DataSource \(postgres\) is not initialized/);
    await later.initialize();
    try {
      await sessions.ready();
      await primitives(sessions).replaceRecord('session:later', Buffer.from('l'), 60, call());
      expect(await query('SELECT count(*)::int AS n FROM later')).toEqual([{ n: 1 }]);
    } finally {
      await later.destroy();
    }
  });
});
