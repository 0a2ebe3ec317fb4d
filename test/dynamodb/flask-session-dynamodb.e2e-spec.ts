/**
 * Sessions shared with Flask-Session 0.8's DynamoDB backend, both ways, on
 * dynalite: the Python peer (test/compat/flask_session_dynamodb_peer.py, 0.8's
 * record code through Debian's boto3 resource API) writes and reads the same
 * table as DynamoDBSessionInterface behind a Nest app.
 */
import { DescribeTableCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { Session, SessionModule, type SerializationFormat, type SessionMixin } from '../../lib/index.js';
import { DynamoDBSessionInterface } from '../../lib/dynamodb/index.js';
import { PLATFORMS, cookiePair, createApp, type Platform } from '../support/apps.js';
import { DynaliteServer } from '../support/dynalite-server.js';
import { describeValue } from '../support/flask.js';
import { flaskSessionDynamoDB } from '../support/flask-session-peers.js';

@Controller()
class CompatController {
  @Get('describe')
  describe(@Session() session: SessionMixin) {
    return { session: describeValue(session.toJSON()), new: session.new };
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

  @Get('add')
  add(@Session() session: SessionMixin) {
    session.set('added_by', 'nest');
    return '';
  }
}

/** The peers' sample session. */
const COMMON = { _permanent: true, user_id: 7, name: 'h\u00e9llo', ratio: 0.5, flags: [true, false, null], nested: { a: [1, 2, { b: 'c' }] } };
const TYPED = { when: { $date: '2024-01-02T03:04:05Z' }, raw: { $bytes: 'AP8=' } };
const newSid = () => randomBytes(32).toString('base64url');

let server: DynaliteServer;
let client: DynamoDBClient;
beforeAll(async () => {
  server = await DynaliteServer.start({ createTableMs: 100 });
  client = new DynamoDBClient(server.clientConfig);
  // The table as Flask-Session 0.8 creates it.
  expect(await flaskSessionDynamoDB({ op: 'create', config: server.boto3Config })).toEqual({ created: true });
}, 60_000);
afterAll(async () => {
  client?.destroy();
  await server?.close();
});

describe.each(PLATFORMS)('on %s', (platform: Platform) => {
  let app: INestApplication;
  afterEach(() => app?.close());

  async function nest(serializationFormat: SerializationFormat = 'msgpack', options: { refreshAfter?: number } = {}) {
    const sessions = new DynamoDBSessionInterface({ client, serializationFormat, ...options });
    app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [CompatController] }, false, platform);
    return app.getHttpServer();
  }

  test('a msgpack session Flask-Session 0.8 wrote (a fractional expiration) opens in nest-session', async () => {
    const sid = newSid();
    const { expiration } = await flaskSessionDynamoDB({ op: 'write', config: server.boto3Config, sid });
    expect(expiration).toMatch(/^\d+\.\d+$/);
    const response = await request(await nest()).get('/describe').set('Cookie', `session=${sid}`).expect(200);
    expect(response.body).toEqual({ session: { ...COMMON, ...TYPED }, new: false });
  });

  test('a JSON session Flask-Session 0.8 wrote opens in nest-session', async () => {
    const sid = newSid();
    await flaskSessionDynamoDB({ op: 'write', config: server.boto3Config, sid, format: 'json' });
    const response = await request(await nest('json')).get('/describe').set('Cookie', `session=${sid}`).expect(200);
    expect(response.body).toEqual({ session: COMMON, new: false });
  });

  test('an expired item Flask-Session wrote (TTL not having deleted it) is no session to nest-session', async () => {
    const sid = newSid();
    await flaskSessionDynamoDB({ op: 'write', config: server.boto3Config, sid, lifetime: -60 });
    const response = await request(await nest()).get('/describe').set('Cookie', `session=${sid}`).expect(200);
    expect(response.body).toEqual({ session: { _permanent: true }, new: true });
  });

  test.each(['msgpack', 'json'] as const)('a %s session nest-session wrote reads back in Flask-Session with the same values, expiration in whole seconds', async (format) => {
    const http = await nest(format);
    const written = await request(http).get('/write').expect(200);
    const read = await flaskSessionDynamoDB({ op: 'read', config: server.boto3Config, sid: written.body.sid, format });
    expect(read.session).toEqual(COMMON);
    expect(read.types).toEqual({ id: 'S', val: 'B', expiration: 'N' });
    expect(read.expiration).toMatch(/^\d+$/);
    const lifetime = 31 * 24 * 3600;
    expect(Math.abs(Number(read.expiration) - (Date.now() / 1000 + lifetime))).toBeLessThan(60);
    if (format === 'msgpack') {
      const typed = await request(http).get('/write-types').set('Cookie', cookiePair(written)).expect(200);
      const again = await flaskSessionDynamoDB({ op: 'read', config: server.boto3Config, sid: typed.body.sid });
      expect(again.session).toEqual({ ...COMMON, ...TYPED });
    }
  });

  test('nest-session changes and refreshes a Flask-Session item in place; Flask-Session reads the result', async () => {
    const sid = newSid();
    const { expiration: before } = await flaskSessionDynamoDB({ op: 'write', config: server.boto3Config, sid, lifetime: 3600 });
    const http = await nest('msgpack', { refreshAfter: 0 });
    await request(http).get('/add').set('Cookie', `session=${sid}`).expect(200);
    const changed = await flaskSessionDynamoDB({ op: 'read', config: server.boto3Config, sid });
    expect(changed.session).toEqual({ ...COMMON, ...TYPED, added_by: 'nest' });
    await request(http).get('/describe').set('Cookie', `session=${sid}`).expect(200); // an unchanged session: only the expiry moves
    const { Item } = await client.send(new GetItemCommand({ TableName: 'Sessions', Key: { id: { S: `session:${sid}` } }, ConsistentRead: true }));
    expect(Item!.expiration!.N).toMatch(/^\d+$/);
    expect(Number(Item!.expiration!.N)).toBeGreaterThan(Number(before) + 30 * 24 * 3600);
    expect((await flaskSessionDynamoDB({ op: 'read', config: server.boto3Config, sid })).session).toEqual({ ...COMMON, ...TYPED, added_by: 'nest' });
  });
});

test("a table nest-session creates (createTable) is Flask-Session's: its create finds it, its items go in", async () => {
  const sessions = new DynamoDBSessionInterface({ client, tableName: 'NestCreated', createTable: true, storeTimeout: 10_000 });
  const app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [CompatController] });
  try {
    const written = await request(app.getHttpServer()).get('/write').expect(200);
    const { Table } = await client.send(new DescribeTableCommand({ TableName: 'NestCreated' }));
    expect([Table?.KeySchema, Table?.AttributeDefinitions, Table?.BillingModeSummary?.BillingMode]).toEqual([
      [{ AttributeName: 'id', KeyType: 'HASH' }],
      [{ AttributeName: 'id', AttributeType: 'S' }],
      'PAY_PER_REQUEST',
    ]);
    expect(await flaskSessionDynamoDB({ op: 'create', config: server.boto3Config, table: 'NestCreated' })).toEqual({ created: false });
    expect((await flaskSessionDynamoDB({ op: 'read', config: server.boto3Config, table: 'NestCreated', sid: written.body.sid })).session).toEqual(COMMON);
    const sid = newSid();
    await flaskSessionDynamoDB({ op: 'write', config: server.boto3Config, table: 'NestCreated', sid });
    expect((await request(app.getHttpServer()).get('/describe').set('Cookie', `session=${sid}`).expect(200)).body.session).toEqual({ ...COMMON, ...TYPED });
  } finally {
    await app.close();
  }
});
