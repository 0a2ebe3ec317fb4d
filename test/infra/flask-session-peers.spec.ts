/**
 * The Python peers that reproduce Flask-Session 0.8's SQLAlchemy and DynamoDB
 * record code, through the real servers: what they write is read back here
 * with the Node drivers, and what is written here (as nest-session's
 * serializer writes it) opens in them.
 */
import { DescribeTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { StoreSerializer } from '../../lib/index.js';
import { DynaliteServer } from '../support/dynalite-server.js';
import { describeValue } from '../support/flask.js';
import { flaskSessionDynamoDB, flaskSessionSql } from '../support/flask-session-peers.js';
import { PostgresServer } from '../support/postgres-server.js';

/** The peers' sample session, as nest-session reads it. */
const COMMON = { _permanent: true, user_id: 7, name: 'h\u00e9llo', ratio: 0.5, flags: [true, false, null], nested: { a: [1, 2, { b: 'c' }] } };
const TYPED = { when: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)), raw: Buffer.from([0, 255]) };
const LIFETIME_MS = 31 * 24 * 3600 * 1000;
const msgpack = new StoreSerializer('msgpack');
const json = new StoreSerializer('json');
const newSid = () => randomBytes(32).toString('base64url');
/** A naive UTC timestamp as Flask-Session stores it, read as UTC. */
const utc = (naive: string) => Date.parse(`${naive.replace(' ', 'T')}Z`);

describe('SQLAlchemy peer on PostgreSQL', () => {
  let server: PostgresServer;
  let pool: pg.Pool;
  beforeAll(async () => {
    server = await PostgresServer.start();
    pool = new pg.Pool(server.poolConfig);
    await flaskSessionSql({ op: 'create', url: server.sqlalchemyUrl });
  }, 120_000);
  afterAll(async () => {
    await pool?.end();
    await server?.close();
  });

  // expiry as text (pg would read a timestamp without time zone as local time), with all six fractional digits.
  const row = async (sid: string) =>
    (
      await pool.query(
        `SELECT id, session_id, data, to_char(expiry, 'YYYY-MM-DD HH24:MI:SS.US') AS expiry FROM sessions WHERE session_id = $1`,
        [`session:${sid}`],
      )
    ).rows[0];

  test("the peer creates Flask-Session's table: serial id key, session_id varchar(255) unique, data bytea, expiry timestamp", async () => {
    const { rows } = await pool.query(
      `SELECT column_name, data_type, character_maximum_length AS length, is_nullable, column_default
         FROM information_schema.columns WHERE table_name = 'sessions' ORDER BY ordinal_position`,
    );
    expect(rows).toEqual([
      { column_name: 'id', data_type: 'integer', length: null, is_nullable: 'NO', column_default: "nextval('sessions_id_seq'::regclass)" },
      { column_name: 'session_id', data_type: 'character varying', length: 255, is_nullable: 'YES', column_default: null },
      { column_name: 'data', data_type: 'bytea', length: null, is_nullable: 'YES', column_default: null },
      { column_name: 'expiry', data_type: 'timestamp without time zone', length: null, is_nullable: 'YES', column_default: null },
    ]);
    const inspected = await flaskSessionSql({ op: 'inspect', url: server.sqlalchemyUrl });
    expect(inspected.primary_key).toEqual(['id']);
    expect(inspected.unique).toEqual([['session_id']]);
    // Flask-Session indexes nothing but session_id (the index behind its unique constraint): no index on expiry.
    expect(inspected.indexes).toEqual([{ columns: ['session_id'], unique: true }]);
  });

  test('a msgpack session the peer writes is a row keyed "session:" + sid, expiring in 31 days (naive UTC)', async () => {
    const sid = newSid();
    const { expiry } = await flaskSessionSql({ op: 'write', url: server.sqlalchemyUrl, sid, format: 'msgpack' });
    const stored = await row(sid);
    expect(stored.session_id).toBe(`session:${sid}`);
    expect(msgpack.loads(stored.data)).toEqual({ ...COMMON, ...TYPED });
    expect(stored.expiry).toBe(expiry.replace('T', ' '));
    expect(Math.abs(utc(stored.expiry) - (Date.now() + LIFETIME_MS))).toBeLessThan(10 * 60_000);
  });

  test("a JSON session the peer writes is msgspec's compact UTF-8 JSON; writing again updates the same row", async () => {
    const sid = newSid();
    await flaskSessionSql({ op: 'write', url: server.sqlalchemyUrl, sid, format: 'msgpack' });
    const first = await row(sid);
    await flaskSessionSql({ op: 'write', url: server.sqlalchemyUrl, sid, format: 'json' });
    const second = await row(sid);
    expect(second.id).toBe(first.id);
    expect(second.data.toString('utf8')).toBe(JSON.stringify(COMMON));
  });

  test.each([
    ['msgpack', msgpack],
    ['json', json],
  ] as const)('a %s row written with nest-session\'s serializer opens in the peer', async (format, serializer) => {
    const sid = newSid();
    const session = format === 'msgpack' ? { ...COMMON, ...TYPED } : COMMON;
    await pool.query(
      "INSERT INTO sessions (session_id, data, expiry) VALUES ($1, $2, (now() AT TIME ZONE 'utc') + interval '1 hour')",
      [`session:${sid}`, serializer.dumps(session)],
    );
    const read = await flaskSessionSql({ op: 'read', url: server.sqlalchemyUrl, sid, format });
    expect(read.session).toEqual(describeValue(session));
    expect(read.deleted_expired).toBe(false);
  });

  test('an expired row reads as no session, and the read deletes it (as 0.8 does)', async () => {
    const sid = newSid();
    await pool.query(
      "INSERT INTO sessions (session_id, data, expiry) VALUES ($1, $2, (now() AT TIME ZONE 'utc') - interval '1 second')",
      [`session:${sid}`, msgpack.dumps(COMMON)],
    );
    const read = await flaskSessionSql({ op: 'read', url: server.sqlalchemyUrl, sid });
    expect(read).toEqual({ session: null, row: null, deleted_expired: true });
    expect(await row(sid)).toBeUndefined();
  });

  test('cleanup deletes the expired rows only', async () => {
    const [expired, live] = [newSid(), newSid()];
    await flaskSessionSql({ op: 'write', url: server.sqlalchemyUrl, sid: expired, lifetime: -60 });
    await flaskSessionSql({ op: 'write', url: server.sqlalchemyUrl, sid: live });
    const { deleted } = await flaskSessionSql({ op: 'cleanup', url: server.sqlalchemyUrl });
    expect(deleted).toBeGreaterThanOrEqual(1);
    expect(await row(expired)).toBeUndefined();
    expect(await row(live)).toBeDefined();
  });

  test('a custom table, schema and key prefix', async () => {
    await pool.query('CREATE SCHEMA app');
    const target = { url: server.sqlalchemyUrl, table: 'flask_sessions', schema: 'app' };
    await flaskSessionSql({ op: 'create', ...target });
    const sid = newSid();
    await flaskSessionSql({ op: 'write', ...target, sid, key_prefix: 'shop:', session: describeValue({ cart: [1, 2] }) as Record<string, unknown> });
    const { rows } = await pool.query('SELECT session_id, data FROM app.flask_sessions');
    expect(rows.map((r) => [r.session_id, msgpack.loads(r.data)])).toEqual([[`shop:${sid}`, { cart: [1, 2] }]]);
  });
});

describe('SQLAlchemy peer on SQLite', () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nest-session-sqlite-'));
    file = join(dir, 'sessions.db');
    await flaskSessionSql({ op: 'create', url: `sqlite:///${file}` });
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("the peer's rows hold expiry as SQLAlchemy's text, YYYY-MM-DD HH:MM:SS.ffffff, naive UTC", async () => {
    const sid = newSid();
    const { expiry } = await flaskSessionSql({ op: 'write', url: `sqlite:///${file}`, sid });
    const db = new Database(file, { readonly: true });
    try {
      const stored = db.prepare('SELECT session_id, data, expiry, typeof(expiry) AS kind FROM sessions WHERE session_id = ?').get(`session:${sid}`) as Record<string, unknown>;
      expect(stored.kind).toBe('text');
      expect(stored.expiry).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
      expect(stored.expiry).toBe(expiry.replace('T', ' '));
      expect(msgpack.loads(stored.data as Buffer)).toEqual({ ...COMMON, ...TYPED });
    } finally {
      db.close();
    }
  });

  test('a row written with better-sqlite3 opens in the peer', async () => {
    const sid = newSid();
    const db = new Database(file);
    try {
      const inAnHour = new Date(Date.now() + 3600_000).toISOString().replace('T', ' ').replace('Z', '000');
      db.prepare('INSERT INTO sessions (session_id, data, expiry) VALUES (?, ?, ?)').run(`session:${sid}`, msgpack.dumps({ ...COMMON, ...TYPED }), inAnHour);
    } finally {
      db.close();
    }
    const read = await flaskSessionSql({ op: 'read', url: `sqlite:///${file}`, sid });
    expect(read.session).toEqual(describeValue({ ...COMMON, ...TYPED }));
  });
});

describe('DynamoDB peer on dynalite', () => {
  let server: DynaliteServer;
  let client: DynamoDBClient;
  beforeAll(async () => {
    server = await DynaliteServer.start();
    client = new DynamoDBClient(server.clientConfig);
  }, 60_000);
  afterAll(async () => {
    client?.destroy();
    await server?.close();
  });

  test("the peer creates Flask-Session's table once: hash key id (S), on demand", async () => {
    expect(await flaskSessionDynamoDB({ op: 'create', config: server.boto3Config })).toEqual({ created: true });
    expect(await flaskSessionDynamoDB({ op: 'create', config: server.boto3Config })).toEqual({ created: false });
    const { Table } = await client.send(new DescribeTableCommand({ TableName: 'Sessions' }));
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'id', KeyType: 'HASH' }]);
    expect(Table?.AttributeDefinitions).toEqual([{ AttributeName: 'id', AttributeType: 'S' }]);
    expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
  });

  test('an item the peer writes: id "session:" + sid, val binary, expiration epoch seconds (N) in 31 days', async () => {
    const sid = newSid();
    const { expiration } = await flaskSessionDynamoDB({ op: 'write', config: server.boto3Config, sid });
    const { Item } = await client.send(new GetItemCommand({ TableName: 'Sessions', Key: { id: { S: `session:${sid}` } }, ConsistentRead: true }));
    expect(Object.keys(Item ?? {}).sort()).toEqual(['expiration', 'id', 'val']);
    expect(msgpack.loads(Buffer.from(Item!.val!.B!))).toEqual({ ...COMMON, ...TYPED });
    expect(Item!.expiration!.N).toBe(expiration);
    expect(Math.abs(Number(expiration) * 1000 - (Date.now() + LIFETIME_MS))).toBeLessThan(10 * 60_000);
    const read = await flaskSessionDynamoDB({ op: 'read', config: server.boto3Config, sid });
    expect(read.types).toEqual({ id: 'S', val: 'B', expiration: 'N' });
  });

  test("an item written with the SDK and nest-session's serializer opens in the peer", async () => {
    const sid = newSid();
    const expiration = String(Math.floor(Date.now() / 1000) + 3600);
    await client.send(
      new PutItemCommand({
        TableName: 'Sessions',
        Item: { id: { S: `session:${sid}` }, val: { B: msgpack.dumps({ ...COMMON, ...TYPED }) }, expiration: { N: expiration } },
      }),
    );
    const read = await flaskSessionDynamoDB({ op: 'read', config: server.boto3Config, sid });
    expect(read.session).toEqual(describeValue({ ...COMMON, ...TYPED }));
    expect(read.expiration).toBe(expiration);
  });

  test('a JSON item the peer writes holds compact JSON, and reads back', async () => {
    const sid = newSid();
    await flaskSessionDynamoDB({ op: 'write', config: server.boto3Config, sid, format: 'json' });
    const { Item } = await client.send(new GetItemCommand({ TableName: 'Sessions', Key: { id: { S: `session:${sid}` } }, ConsistentRead: true }));
    expect(Buffer.from(Item!.val!.B!).toString('utf8')).toBe(JSON.stringify(COMMON));
    const read = await flaskSessionDynamoDB({ op: 'read', config: server.boto3Config, sid, format: 'json' });
    expect(read.session).toEqual(COMMON);
  });
});
