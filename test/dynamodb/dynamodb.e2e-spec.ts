/**
 * DynamoDBSessionInterface against dynalite (a real DynamoDB-compatible server
 * in a child process on a free loopback port): the store contract on both
 * platforms, Flask-Session's item layout, table creation, expiry and the
 * conditional writes, and the configuration checks.
 */
import { CreateTableCommand, DeleteItemCommand, DeleteTableCommand, DescribeTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { Controller, Get, Query } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { Session, SessionModule, type ServerSideSessionOptions, type SessionMixin } from '../../lib/index.js';
import { DynamoDBSessionInterface, type DynamoDBSessionOptions } from '../../lib/dynamodb/index.js';
import { describeStoreContract } from '../server-side/contract.js';
import { PLATFORMS, RecordingLogger, cookiePair, createApp, type Platform } from '../support/apps.js';
import { DynaliteServer } from '../support/dynalite-server.js';
import { freePort } from '../support/loopback-servers.js';
import { StoreSerializer } from '../../lib/index.js';
import type { StoreCall, StoredRecord, SwapOutcome } from '../../lib/server-side/server-side.session-interface.js';

let server: DynaliteServer;
const clients: DynamoDBClient[] = [];

function client(): DynamoDBClient {
  const dynamodb = new DynamoDBClient(server.clientConfig);
  clients.push(dynamodb);
  return dynamodb;
}

const getItem = async (id: string, table = 'Sessions') =>
  (await client().send(new GetItemCommand({ TableName: table, Key: { id: { S: id } }, ConsistentRead: true }))).Item;

beforeAll(async () => {
  // A new table stays CREATING for 300 ms, so that createTable has to wait for it.
  server = await DynaliteServer.start({ createTableMs: 300 });
  const logger = new RecordingLogger();
  const sessions = new DynamoDBSessionInterface({ client: client(), createTable: true });
  (sessions as unknown as { logger: RecordingLogger }).logger = logger;
  await (sessions as unknown as Primitives).readRecord('session:none', { deadline: Date.now() + 30_000 });
}, 60_000);
afterAll(async () => {
  clients.forEach((c) => c.destroy());
  await server?.close();
});

describeStoreContract('DynamoDB (dynalite)', {
  create: (options) => new DynamoDBSessionInterface({ client: client(), ...options }),
  read: async (storeId) => {
    const item = await getItem(storeId);
    return item?.val?.B ? Buffer.from(item.val.B) : null;
  },
  breakStore: () => server.stop(),
  repairStore: () => server.start(),
});

/** The primitives, called directly (they are protected: the base class calls them). */
interface Primitives {
  readRecord(storeId: string, call: StoreCall): Promise<StoredRecord | null>;
  swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttl: number, call: StoreCall): Promise<SwapOutcome>;
  replaceRecord(storeId: string, value: Buffer, ttl: number, call: StoreCall): Promise<void>;
  deleteRecord(storeId: string, call: StoreCall): Promise<void>;
  refreshRecord(storeId: string, ttl: number, call: StoreCall): Promise<void>;
}
const primitives = (options: Partial<DynamoDBSessionOptions> = {}) => new DynamoDBSessionInterface({ client: client(), ...options }) as unknown as Primitives;
const soon = (): StoreCall => ({ deadline: Date.now() + 10_000 });
const newId = () => `session:${randomBytes(32).toString('base64url')}`;
const putItem = (id: string, val: Buffer, expiration?: number) =>
  client().send(
    new PutItemCommand({
      TableName: 'Sessions',
      Item: { id: { S: id }, val: { B: val }, ...(expiration === undefined ? {} : { expiration: { N: String(expiration) } }) },
    }),
  );

describe("Flask-Session's layout and DynamoDB's expiry", () => {
  test('createTable made the table as Flask-Session does (hash key id of type S, on demand) and waited until it was active', async () => {
    const { Table } = await client().send(new DescribeTableCommand({ TableName: 'Sessions' }));
    expect(Table?.TableStatus).toBe('ACTIVE');
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'id', KeyType: 'HASH' }]);
    expect(Table?.AttributeDefinitions).toEqual([{ AttributeName: 'id', AttributeType: 'S' }]);
    expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
  });

  test('an item holds id (S), val (B) and expiration (N): whole Unix seconds, the expiry rounded up', async () => {
    const store = primitives();
    const id = newId();
    const before = Date.now();
    await store.replaceRecord(id, Buffer.from('value'), 3600, soon());
    const item = (await getItem(id))!;
    expect(Object.fromEntries(Object.entries(item).map(([name, value]) => [name, Object.keys(value)[0]]))).toEqual({ id: 'S', val: 'B', expiration: 'N' });
    expect(item.expiration!.N).toMatch(/^\d+$/);
    const expiration = Number(item.expiration!.N);
    expect(expiration * 1000).toBeGreaterThanOrEqual(before + 3600_000);
    expect(expiration).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 3600);
    expect(Buffer.from(item.val!.B!).toString()).toBe('value');
  });

  test('an expired item that TTL has not deleted reads as absent (0.8.0 fractional expirations too)', async () => {
    const store = primitives();
    const expired = newId();
    const fractional = newId();
    await putItem(expired, Buffer.from('old'), Math.floor(Date.now() / 1000) - 1);
    await putItem(fractional, Buffer.from('live'), Date.now() / 1000 + 3600.123456789);
    expect(await store.readRecord(expired, soon())).toBeNull();
    expect((await getItem(expired))?.val).toBeDefined(); // still there: dynalite, like DynamoDB's TTL, has not deleted it
    expect((await store.readRecord(fractional, soon()))?.value.toString()).toBe('live');
  });

  test('an item without expiration never expires (as for DynamoDB TTL)', async () => {
    const id = newId();
    await putItem(id, Buffer.from('forever'));
    expect((await primitives().readRecord(id, soon()))?.value.toString()).toBe('forever');
  });

  test('a refresh moves a live expiry, and never brings back a deleted or expired item', async () => {
    const store = primitives();
    const live = newId();
    await putItem(live, Buffer.from('x'), Math.floor(Date.now() / 1000) + 10);
    await store.refreshRecord(live, 3600, soon());
    expect(Number((await getItem(live))!.expiration!.N)).toBeGreaterThan(Date.now() / 1000 + 3000);

    const gone = newId();
    await store.refreshRecord(gone, 3600, soon());
    expect(await getItem(gone)).toBeUndefined();

    const expired = newId();
    const past = Math.floor(Date.now() / 1000) - 5;
    await putItem(expired, Buffer.from('x'), past);
    await store.refreshRecord(expired, 3600, soon());
    expect((await getItem(expired))!.expiration!.N).toBe(String(past));
  });

  test('compare-and-set writes only over the expected bytes; a deleted or expired record is not brought back', async () => {
    const store = primitives();
    const id = newId();
    await putItem(id, Buffer.from('a'), Math.floor(Date.now() / 1000) + 60);
    const stale = await store.swapRecord(id, { value: Buffer.from('other') }, Buffer.from('b'), 60, soon());
    expect(stale).toEqual({ swapped: false, current: { value: Buffer.from('a') } });
    expect(await store.swapRecord(id, { value: Buffer.from('a') }, Buffer.from('b'), 60, soon())).toEqual({ swapped: true });
    expect(Buffer.from((await getItem(id))!.val!.B!).toString()).toBe('b');

    await client().send(new DeleteItemCommand({ TableName: 'Sessions', Key: { id: { S: id } } }));
    expect(await store.swapRecord(id, { value: Buffer.from('b') }, Buffer.from('c'), 60, soon())).toEqual({ swapped: false, current: null });
    expect(await getItem(id)).toBeUndefined();

    const expired = newId();
    await putItem(expired, Buffer.from('a'), Math.floor(Date.now() / 1000) - 1);
    expect(await store.swapRecord(expired, { value: Buffer.from('a') }, Buffer.from('b'), 60, soon())).toEqual({ swapped: false, current: null });
    expect(Buffer.from((await getItem(expired))!.val!.B!).toString()).toBe('a');
  });

  test('"only if absent" writes over nothing or an expired item, never over a live one', async () => {
    const store = primitives();
    const absent = newId();
    expect(await store.swapRecord(absent, null, Buffer.from('new'), 60, soon())).toEqual({ swapped: true });
    expect(await store.swapRecord(absent, null, Buffer.from('again'), 60, soon())).toEqual({ swapped: false, current: { value: Buffer.from('new') } });
    const expired = newId();
    await putItem(expired, Buffer.from('old'), Math.floor(Date.now() / 1000) - 1);
    expect(await store.swapRecord(expired, null, Buffer.from('new'), 60, soon())).toEqual({ swapped: true });
    expect(Buffer.from((await getItem(expired))!.val!.B!).toString()).toBe('new');
  });

  test('a custom table and key prefix', async () => {
    await client().send(
      new CreateTableCommand({
        TableName: 'shop_sessions',
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    for (let i = 0; i < 50 && (await client().send(new DescribeTableCommand({ TableName: 'shop_sessions' }))).Table?.TableStatus !== 'ACTIVE'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const store = new DynamoDBSessionInterface({ client: client(), tableName: 'shop_sessions', keyPrefix: 'shop:' });
    const app = await createApp({ imports: [SessionModule.forRoot({ interface: store, secretKey: 'k' })], controllers: [ValueController] });
    try {
      const set = await request(app.getHttpServer()).get('/value/set?value=cart').expect(200);
      const item = (await getItem(`shop:${set.body.sid}`, 'shop_sessions'))!;
      expect(new StoreSerializer('msgpack').loads(Buffer.from(item.val!.B!))).toEqual({ _permanent: true, value: 'cart' });
    } finally {
      await app.close();
    }
  });
});

@Controller('value')
class ValueController {
  @Get('set')
  set(@Session() session: SessionMixin, @Query('value') value: string) {
    session.set('value', value);
    return { sid: (session as unknown as { sid: string }).sid };
  }

  @Get('get')
  get(@Session('value') value?: string) {
    return { value: value ?? null };
  }
}

describe.each(PLATFORMS)('tables and unreachable servers on %s', (platform: Platform) => {
  test('createTable: false on a missing table fails the bootstrap; a table deleted later answers 500 (not 503), the log saying which table and what to do', async () => {
    const fix = `the DynamoDB table "missing_${platform}" does not exist: create it (hash key "id" of type S) or pass createTable: true`;
    const missing = new DynamoDBSessionInterface({ client: client(), tableName: `missing_${platform}` });
    await expect(createApp({ imports: [SessionModule.forRoot({ interface: missing, secretKey: 'k' })], controllers: [ValueController] }, undefined, platform)).rejects.toThrow(
      `Invalid DynamoDBSessionInterface option "tableName": ${fix}`,
    );

    const logger = new RecordingLogger();
    const tableName = `deleted_${platform}`;
    // Made by a store that creates it.
    await primitives({ tableName, createTable: true, storeTimeout: 10_000 }).replaceRecord('session:made', Buffer.from('x'), 60, { deadline: Date.now() + 10_000 });
    const store = new DynamoDBSessionInterface({ client: client(), tableName });
    const app = await createApp({ imports: [SessionModule.forRoot({ interface: store, secretKey: 'k' })], controllers: [ValueController] }, logger, platform);
    try {
      await request(app.getHttpServer()).get('/value/set?value=x').expect(200);
      await client().send(new DeleteTableCommand({ TableName: tableName }));
      await request(app.getHttpServer()).get('/value/set?value=x').expect(500);
      expect(logger.messages('error').join('\n')).toContain(`Invalid DynamoDBSessionInterface option "tableName": the DynamoDB table "${tableName}" does not exist`);
    } finally {
      await app.close();
    }
  });

  test('createTable: true creates a missing table at first use and logs that dynalite refused TTL, then goes on', async () => {
    const logger = new RecordingLogger();
    const tableName = `created_${platform}`;
    const store = new DynamoDBSessionInterface({ client: client(), tableName, createTable: true, storeTimeout: 10_000 });
    const app = await createApp({ imports: [SessionModule.forRoot({ interface: store, secretKey: 'k' })], controllers: [ValueController] }, logger, platform);
    try {
      const set = await request(app.getHttpServer()).get('/value/set?value=made').expect(200);
      expect((await getItem(`session:${set.body.sid}`, tableName))?.val).toBeDefined();
      expect(logger.messages('log')).toContain(`Created the DynamoDB table "${tableName}".`);
      expect(logger.messages('warn').join('\n')).toMatch(new RegExp(`Could not enable TTL on "expiration" of the DynamoDB table "${tableName}" \\(UnknownOperationException`));
      const got = await request(app.getHttpServer()).get('/value/get').set('Cookie', cookiePair(set)).expect(200);
      expect(got.body.value).toBe('made');
    } finally {
      await app.close();
    }
  });

  test('a refused connection fails the request at once with the address, not after retries or the budget', async () => {
    const port = await freePort();
    const refused = new DynamoDBClient({ ...server.clientConfig, endpoint: `http://127.0.0.1:${port}` });
    clients.push(refused);
    const logger = new RecordingLogger();
    const store = new DynamoDBSessionInterface({ client: refused, storeTimeout: 60_000 });
    const app = await createApp({ imports: [SessionModule.forRoot({ interface: store, secretKey: 'k' })], controllers: [ValueController] }, logger, platform);
    try {
      await request(app.getHttpServer()).get('/value/set?value=x').expect(503);
      await request(app.getHttpServer()).get('/value/get').set('Cookie', `session=${'A'.repeat(43)}`).expect(503);
      const errors = logger.messages('error');
      expect(errors).toHaveLength(2);
      for (const line of errors) {
        expect(line).toContain(`The session store (DynamoDB) failed: DynamoDB cannot be reached: connect ECONNREFUSED 127.0.0.1:${port}`);
      }
    } finally {
      await app.close();
    }
  });
});

describe('configuration mistakes fail at construction, naming the option', () => {
  const valid = () => ({ client: client() });
  test.each<[string, () => Record<string, unknown>, string]>([
    ['no client', () => ({}), 'Invalid DynamoDBSessionInterface option "client": required: a DynamoDBClient'],
    ['an endpoint URL as client', () => ({ client: 'http://127.0.0.1:8000' }), 'got the string "http://127.0.0.1:8000": pass new DynamoDBClient'],
    ['a client of another service', () => ({ client: { send: () => undefined, config: { serviceId: 'S3' } } }), 'got a client of S3'],
    ['an SDK v2 client', () => ({ client: { putItem: () => undefined, getItem: () => undefined } }), 'AWS SDK v2 client'],
    ['a table name DynamoDB refuses', () => ({ ...valid(), tableName: 'ab' }), '"tableName": expected a DynamoDB table name'],
    ['a table name that is not a string', () => ({ ...valid(), tableName: 42 }), '"tableName"'],
    ['createTable as text', () => ({ ...valid(), createTable: 'yes' }), '"createTable": expected true or false, got "yes"'],
    ['a misspelled option', () => ({ ...valid(), tablename: 'x' }), 'did you mean "tableName"'],
  ])('%s', (_case, options, message) => {
    expect(() => new DynamoDBSessionInterface(options() as unknown as DynamoDBSessionOptions)).toThrow(message);
  });

  test('the defaults are Flask-Session\'s: table "Sessions", no table creation', () => {
    const store = new DynamoDBSessionInterface(valid());
    expect([store.tableName, store.createTable, store.keyPrefix]).toEqual(['Sessions', false, 'session:']);
  });

  test('common options are still checked', () => {
    expect(() => new DynamoDBSessionInterface({ ...valid(), storeTimeout: -1 } as ServerSideSessionOptions as DynamoDBSessionOptions)).toThrow('"storeTimeout"');
  });
});
