/**
 * MongoDBSessionInterface with the REAL mongodb driver (7.x) and no MongoDB
 * server: what can be checked without one. A closed port (the connection is
 * refused), a port that accepts and never answers, and the driver's
 * behaviour after a failed first connection (its topology closes, and only
 * connect() opens a new one), which the interface relies on; and refusals
 * (a login, a command) as the driver reports them, from a wire-protocol
 * responder that answers the way MongoDB refuses (wire-responder.ts).
 */
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { BSON, MongoClient, type Document } from 'mongodb';
import { createServer, type Server, type Socket } from 'node:net';
import request from 'supertest';
import { Session, SessionModule } from '../../lib/index.js';
import { MongoDBSessionInterface, type MongoDBSessionOptions } from '../../lib/mongodb/index.js';
import { PLATFORMS, RecordingLogger, createApp, type Platform } from '../support/apps.js';
import { freePort } from '../support/loopback-servers.js';
import { hiddenIdIndexWarning } from './mongodb-specifics.js';
import { WireResponder, type Answer } from './wire-responder.js';

const HIDDEN_WARNING = hiddenIdIndexWarning('flask_session', 'sessions');

@Controller()
class ReadController {
  @Get('get')
  get(@Session('value') value?: string) {
    return { value: value ?? null };
  }
}

const clients: MongoClient[] = [];
afterAll(() => Promise.all(clients.map((client) => client.close())));

function mongoClient(url: string): MongoClient {
  const client = new MongoClient(url);
  clients.push(client);
  return client;
}

async function app(options: MongoDBSessionOptions, platform: Platform): Promise<{ app: INestApplication; logger: RecordingLogger }> {
  const logger = new RecordingLogger();
  const sessions = new MongoDBSessionInterface(options);
  return { app: await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [ReadController] }, logger, platform), logger };
}

const anySid = () => `session=${'A'.repeat(43)}`;

describe.each(PLATFORMS)('the real driver without a server, on %s', (platform: Platform) => {
  test('a refused connection fails each request at once with the address, not after the budget; a client whose first connection failed is connected again', async () => {
    const port = await freePort();
    const client = mongoClient(`mongodb://127.0.0.1:${port}/?serverSelectionTimeoutMS=300`);
    let topologies = 0;
    client.on('topologyOpening', () => topologies++);
    const { app: nest, logger } = await app({ client, storeTimeout: 60_000 }, platform);
    try {
      await request(nest.getHttpServer()).get('/get').set('Cookie', anySid()).expect(503);
      // The driver closes the topology of a first connection that fails (after serverSelectionTimeoutMS)...
      await new Promise((resolve) => setTimeout(resolve, 600));
      await request(nest.getHttpServer()).get('/get').set('Cookie', anySid()).expect(503);
      const errors = logger.messages('error');
      expect(errors).toHaveLength(2);
      for (const line of errors) expect(line).toContain(`The session store (MongoDB) failed: MongoDB cannot be reached: connect ECONNREFUSED 127.0.0.1:${port}`);
      // ...and the interface opened a new one rather than meet "Topology is closed" from then on.
      expect(topologies).toBe(2);
      await request(nest.getHttpServer()).get('/none').expect(404);
    } finally {
      await nest.close();
    }
  });

  test('a server that accepts and never answers costs a request its budget, then a 503', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const client = mongoClient(`mongodb://127.0.0.1:${port}/?serverSelectionTimeoutMS=30000`);
    const { app: nest, logger } = await app({ client, storeTimeout: 300 }, platform);
    try {
      await request(nest.getHttpServer()).get('/get').set('Cookie', anySid()).expect(503);
      expect(logger.messages('error')[0]).toContain("the request's store budget of 300 ms (storeTimeout) ran out");
    } finally {
      await nest.close();
      sockets.forEach((socket) => socket.destroy());
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('refusals, as the real driver reports them (a wire-protocol responder refusing as MongoDB does)', () => {
  const refuse = (errmsg: string, code: number, codeName: string) => ({ ok: 0, errmsg, code, codeName });
  const AUTHENTICATION_FAILED = refuse('Authentication failed.', 18, 'AuthenticationFailed');
  let responder: WireResponder | undefined;
  afterEach(async () => {
    await responder?.close();
    responder = undefined;
  });

  test.each<[string, string, Answer, RegExp]>([
    ['a wrong password (18)', 'app:wrong', (name) => (name === 'saslStart' ? AUTHENTICATION_FAILED : undefined), /MongoDB refused the client's login: Authentication failed\. Check the user name, the password and authSource/],
    [
      "Atlas's bad auth (8000)",
      'app:wrong',
      (name) => (name === 'saslStart' ? refuse('bad auth : authentication failed', 8000, 'AtlasError') : undefined),
      /MongoDB refused the client's login: bad auth : authentication failed\. Check/,
    ],
    [
      'a user without the role (13)',
      '',
      (name) => (name === 'createIndexes' ? refuse('not authorized on flask_session to execute command { createIndexes: "sessions" }', 13, 'Unauthorized') : undefined),
      /MongoDB refused the client's user a command: not authorized on flask_session .*readWrite on the database flask_session/,
    ],
    [
      "Atlas's shared tiers refusing a command (8000)",
      '',
      (name) => (name === 'createIndexes' ? refuse('user is not allowed to do action [createIndex] on [flask_session.sessions]', 8000, 'AtlasError') : undefined),
      /MongoDB refused the client's user a command: user is not allowed to do action \[createIndex\]/,
    ],
    [
      'no credentials where a login is required (13)',
      '',
      (name) => (name === 'createIndexes' ? refuse('Command createIndexes requires authentication', 13, 'Unauthorized') : undefined),
      /MongoDB requires a login, and the client has no credentials: Command createIndexes requires authentication\. Put the user and password/,
    ],
    ['Kerberos asked for, its package not installed', 'app&authMechanism=GSSAPI', () => undefined, /the MongoClient cannot connect as configured: .*kerberos/i],
  ])('%s fails the bootstrap with a configuration error on "client"', async (_case, credentials, answer, message) => {
    responder = await WireResponder.start(answer);
    const [user, options] = credentials.split(/(?=&)/);
    const client = mongoClient(responder.url(user, options));
    const bootstrap = app({ client }, 'express');
    await expect(bootstrap).rejects.toThrow(/Invalid MongoDBSessionInterface option "client"/);
    await expect(bootstrap).rejects.toThrow(message);
  });

  test('a user refused createIndex boots on the indexes an administrator made (read with listIndexes), and not without them, nor when it may only read', async () => {
    const made: Document[] = [
      { v: 2, key: { _id: 1 }, name: '_id_' },
      { v: 2, key: { id: 1 }, name: 'id_1', unique: true },
      { v: 2, key: { expiration: 1 }, name: 'expiration_1', expireAfterSeconds: 0 },
    ];
    let listed = made.slice(0, 1);
    let actions = ['find', 'listIndexes'];
    responder = await WireResponder.start((name) => {
      if (name === 'createIndexes') return refuse('not authorized on flask_session to execute command { createIndexes: "sessions" }', 13, 'Unauthorized');
      if (name === 'listIndexes') return { ok: 1, cursor: { id: BSON.Long.fromNumber(0), ns: 'flask_session.sessions', firstBatch: listed } };
      if (name === 'connectionStatus') {
        const authInfo = { authenticatedUsers: [{ user: 'app', db: 'flask_session' }], authenticatedUserPrivileges: [{ resource: { db: 'flask_session', collection: '' }, actions }] };
        return { authInfo, ok: 1 };
      }
      return undefined;
    });
    const boot = () => app({ client: mongoClient(responder!.url()) }, 'express');
    await expect(boot()).rejects.toThrow(/createIndexes.*\{ id: 1 \} unique and \{ expiration: 1 \}/);
    listed = made;
    // The indexes are there, but the user may only read.
    await expect(boot()).rejects.toThrow(/the client's user may not insert, update, remove on flask_session\.sessions/);
    actions = ['find', 'insert', 'update', 'remove', 'listIndexes'];
    const { app: nest, logger } = await boot();
    try {
      await request(nest.getHttpServer()).get('/get').set('Cookie', anySid()).expect(200, { value: null });
      expect(responder.commands.filter((name) => name === 'listIndexes')).toHaveLength(3);
      expect(logger.messages('warn').join('\n')).not.toMatch(/is hidden/);
    } finally {
      await nest.close();
    }
    // A hidden unique index on "id" (as listIndexes shows it) boots too, with a warning; one listed as hidden: false, without.
    for (const hidden of [true, false]) {
      listed = [made[0]!, { ...made[1], hidden }, made[2]!];
      const { app: booted, logger: log } = await boot();
      try {
        const warnings = log.messages('warn').join('\n');
        if (hidden) expect(warnings).toMatch(HIDDEN_WARNING);
        else expect(warnings).not.toMatch(/is hidden/);
      } finally {
        await booted.close();
      }
    }
  });

  test('where createIndex succeeds, a hidden unique index on "id" an administrator made (createIndex leaves it so) is warned about at bootstrap', async () => {
    let listed: Document[] = [{ v: 2, key: { _id: 1 }, name: '_id_' }, { v: 2, key: { id: 1 }, name: 'id_1', unique: true, hidden: true }];
    responder = await WireResponder.start((name) =>
      name === 'listIndexes' ? { ok: 1, cursor: { id: BSON.Long.fromNumber(0), ns: 'flask_session.sessions', firstBatch: listed } } : undefined,
    );
    const hidden = await app({ client: mongoClient(responder.url()) }, 'express');
    try {
      expect(hidden.logger.messages('warn').join('\n')).toMatch(HIDDEN_WARNING);
    } finally {
      await hidden.app.close();
    }
    // A visible one beside it: no warning.
    listed = [...listed, { v: 2, key: { id: -1 }, name: 'id_-1', unique: true }];
    const visible = await app({ client: mongoClient(responder.url()) }, 'express');
    try {
      expect(visible.logger.messages('warn').join('\n')).not.toMatch(/is hidden/);
    } finally {
      await visible.app.close();
    }
  });

  test('the responder answering, the application boots and serves; a command refused later answers 500 naming the role, not 503', async () => {
    let refusing = false;
    responder = await WireResponder.start((name) =>
      refusing && name === 'find' ? refuse('not authorized on flask_session to execute command { find: "sessions" }', 13, 'Unauthorized') : undefined,
    );
    // No credentials: a successful login would need SCRAM's server side, which the responder does not have.
    const { app: nest, logger } = await app({ client: mongoClient(responder.url()) }, 'express');
    try {
      await request(nest.getHttpServer()).get('/get').set('Cookie', anySid()).expect(200, { value: null });
      // The set-up and the read went through the responder.
      expect(responder.commands).toEqual(expect.arrayContaining(['createIndexes', 'find']));
      refusing = true;
      await request(nest.getHttpServer()).get('/get').set('Cookie', anySid()).expect(500);
      expect(logger.messages('error').join('\n')).toMatch(/MongoDB refused the client's user a command: not authorized on flask_session to execute command \{ find: .*readWrite/);
    } finally {
      await nest.close();
    }
  });
});

describe('configuration mistakes fail at construction, naming the option', () => {
  const client = () => mongoClient('mongodb://127.0.0.1:1');
  test.each<[string, () => Record<string, unknown>, string]>([
    ['no client', () => ({}), 'Invalid MongoDBSessionInterface option "client": required: a MongoClient'],
    ['a URL as client', () => ({ client: 'mongodb://127.0.0.1:27017' }), 'got the string "mongodb://127.0.0.1:27017": pass new MongoClient('],
    ['a Db as client', () => ({ client: client().db('x') }), 'this looks like a Db'],
    ['a Collection as client', () => ({ client: client().db('x').collection('y') }), 'this looks like a Collection'],
    ['a database name with a dot', () => ({ client: client(), db: 'flask.session' }), '"db": expected a MongoDB database name'],
    ['an empty database name', () => ({ client: client(), db: '' }), '"db"'],
    ['a collection name with $', () => ({ client: client(), collection: 'a$b' }), '"collection": expected a MongoDB collection name'],
    ['a system collection', () => ({ client: client(), collection: 'system.users' }), '"collection"'],
    ['a collection that is not a string', () => ({ client: client(), collection: 5 }), '"collection"'],
    ['a misspelled option', () => ({ client: client(), DB: 'x' }), 'did you mean "db"'],
    ['an unknown option', () => ({ client: client(), database: 'x' }), 'unknown option; expected one of'],
  ])('%s', (_case, options, message) => {
    expect(() => new MongoDBSessionInterface(options() as unknown as MongoDBSessionOptions)).toThrow(message);
  });

  test("the defaults are Flask-Session's: database flask_session, collection sessions", () => {
    const sessions = new MongoDBSessionInterface({ client: client() });
    expect([sessions.dbName, sessions.collectionName, sessions.keyPrefix]).toEqual(['flask_session', 'sessions', 'session:']);
  });
});
