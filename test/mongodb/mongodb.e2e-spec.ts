/**
 * MongoDBSessionInterface against the in-process STAND-IN (mongodb-stand-in.ts):
 * no MongoDB server can be had on these machines. The store contract on both
 * platforms and the MongoDB-specific tests (mongodb-specifics.ts) run here
 * and, with scripts/test-mongodb.sh, against a real server; the tests below
 * them need to control the server (its clock, pauses, a refused first
 * connection) and so run on the stand-in only.
 */
import type { INestApplication } from '@nestjs/common';
import type { MongoClient } from 'mongodb';
import request from 'supertest';
import { SessionModule, StoreSerializer } from '../../lib/index.js';
import { MongoDBSessionInterface, type MongoDBSessionOptions } from '../../lib/mongodb/index.js';
import type { StoreCall } from '../../lib/server-side/server-side.session-interface.js';
import { describeStoreContract } from '../server-side/contract.js';
import { PLATFORMS, RecordingLogger, cookiePair, createApp, type Platform } from '../support/apps.js';
import { LoadController, SessionLoad, sleep, type LoadResult } from '../support/session-load.js';
import { MongoStandInServer } from './mongodb-stand-in.js';
import { ValueController, bytesOf, describeMongoDBSpecifics, newStoreId, type Primitives } from './mongodb-specifics.js';

const NAMESPACE = 'flask_session.sessions';
let server: MongoStandInServer;

function client(on = server): MongoClient {
  return on.client({ serverSelectionTimeoutMS: 2000 }) as unknown as MongoClient;
}

/** Servers with access control, one per user (the refusal tests). */
const securedServers: MongoStandInServer[] = [];

beforeAll(() => {
  server = new MongoStandInServer();
});
afterAll(() => {
  for (const each of [server, ...securedServers]) each.close();
});

describeStoreContract('MongoDB (in-process stand-in)', {
  create: (options) => new MongoDBSessionInterface({ client: client(), ...options }),
  read: async (storeId) => {
    const document = server.documents(NAMESPACE).find((d) => d.id === storeId);
    return document?.val ? bytesOf(document.val) : null;
  },
  breakStore: async () => server.stop(),
  repairStore: async () => {
    server.start();
    // The clients' monitors check every 500 ms while a request's probe waits for the server.
    await sleep(700);
  },
});

describeMongoDBSpecifics('MongoDB (in-process stand-in)', {
  client: () => client(),
  db: 'specifics',
  documents: async (collection) => server.documents(`specifics.${collection}`),
  indexes: async (collection) =>
    server.indexes(`specifics.${collection}`).map(({ name, field, unique, expireAfterSeconds }) => ({ name, key: { [field]: 1 }, unique, expireAfterSeconds })),
  insert: async (collection, document) => server.insertRaw(`specifics.${collection}`, document),
  remove: async (collection, id) => server.removeRaw(`specifics.${collection}`, 'id', id),
  // A server of its own: access control on the shared one would refuse every other test's client.
  user: async (role, { wrongPassword = false } = {}) => {
    const secured = new MongoStandInServer();
    securedServers.push(secured);
    secured.addUser('app', 'secret', 'specifics', role);
    const auth = { username: 'app', password: wrongPassword ? 'wrong' : 'secret' };
    return {
      client: secured.client({ serverSelectionTimeoutMS: 2000, auth }) as unknown as MongoClient,
      setRole: async (next) => secured.setRole('app', next),
      createIndexes: async (collection, { hiddenId = false } = {}) => {
        secured.createIndexRaw(`specifics.${collection}`, { field: 'id', unique: true, hidden: hiddenId });
        secured.createIndexRaw(`specifics.${collection}`, { field: 'expiration', unique: false, expireAfterSeconds: 0 });
      },
    };
  },
});

const soon = (): StoreCall => ({ deadline: Date.now() + 10_000 });
const refusedLate = /the write reached MongoDB after the request's deadline and was refused/;

describe("the server's clock (stand-in only: its clock can be set)", () => {
  test('a server 5 s behind still refuses a late write, and one 5 s ahead accepts a write in time: the offset is measured', async () => {
    const behind = new MongoStandInServer({ clockOffsetMs: -5000 });
    const ahead = new MongoStandInServer({ clockOffsetMs: 5000 });
    try {
      const slow = new MongoDBSessionInterface({ client: client(behind), storeTimeout: 2000 }) as unknown as Primitives;
      const id = newStoreId();
      await slow.replaceRecord(id, Buffer.from('kept'), 60, soon());
      // Sent 40 ms before the deadline, less than the 100 ms margin: the server (5 s behind) must still say too late.
      await expect(slow.swapRecord(id, { value: Buffer.from('kept') }, Buffer.from('late'), 60, { deadline: Date.now() + 40 })).rejects.toThrow(refusedLate);
      expect(bytesOf(behind.documents(NAMESPACE)[0]!.val).toString()).toBe('kept');

      const fast = new MongoDBSessionInterface({ client: client(ahead), storeTimeout: 2000 }) as unknown as Primitives;
      await fast.replaceRecord(id, Buffer.from('a'), 60, { deadline: Date.now() + 1000 });
      expect(await fast.swapRecord(id, { value: Buffer.from('a') }, Buffer.from('b'), 60, { deadline: Date.now() + 1000 })).toEqual({ swapped: true });
    } finally {
      behind.close();
      ahead.close();
    }
  });

  test('a server clock that jumps ahead after the offset was measured: the refused write measures again and is tried once more', async () => {
    const jumpy = new MongoStandInServer();
    try {
      const store = new MongoDBSessionInterface({ client: client(jumpy), storeTimeout: 2000 }) as unknown as Primitives;
      const id = newStoreId();
      await store.replaceRecord(id, Buffer.from('a'), 60, soon());
      jumpy.clockOffsetMs = 3000;
      const before = jumpy.operations.filter((name) => name === 'hello').length;
      expect(await store.swapRecord(id, { value: Buffer.from('a') }, Buffer.from('b'), 60, { deadline: Date.now() + 1000 })).toEqual({ swapped: true });
      expect(jumpy.operations.filter((name) => name === 'hello').length).toBe(before + 1);
    } finally {
      jumpy.close();
    }
  });
});

describe('store calls per request (stand-in only: it counts them)', () => {
  test('a new session is one upsert, a change one read and one filtered update; concurrent changes of one session cost about one update each: nothing is select-then-insert', async () => {
    // 4 ms per operation, so that concurrent requests overlap as over a network.
    const counted = new MongoStandInServer({ latencyMs: 4 });
    const app = await createApp({ imports: [SessionModule.forRoot({ interface: new MongoDBSessionInterface({ client: client(counted) }), secretKey: 'k' })], controllers: [ValueController] });
    try {
      const calls = async (send: () => Promise<unknown>) => {
        const before = counted.operations.length;
        await send();
        return counted.operations.slice(before).filter((name) => !['hello', 'createIndex'].includes(name));
      };
      let cookie = '';
      expect(
        await calls(async () => {
          cookie = cookiePair(await request(app.getHttpServer()).get('/value/set?value=1').expect(200));
        }),
      ).toEqual(['findOneAndUpdate']);
      expect(await calls(() => request(app.getHttpServer()).get('/value/set?value=2').set('Cookie', cookie).expect(200))).toEqual(['findOne', 'updateOne']);
      // 32 requests changing one session at once: they take turns in this process, and one that would
      // compare against a record already replaced is told the new one without a store call.
      const concurrent = await calls(() =>
        Promise.all(Array.from({ length: 32 }, (_, i) => request(app.getHttpServer()).get(`/value/set?value=c${i}`).set('Cookie', cookie).expect(200))),
      );
      expect(concurrent.filter((name) => name === 'findOne')).toHaveLength(32);
      expect(concurrent.filter((name) => name === 'updateOne').length).toBeLessThanOrEqual(64);
    } finally {
      await app.close();
      counted.close();
    }
  });
});

describe.each(PLATFORMS)('faults (stand-in only: it is paused, stopped, started) on %s', (platform: Platform) => {
  const BUDGET = 400;
  const TOLERANCE = 1500;
  let faulty: MongoStandInServer;
  let app: INestApplication;
  let logger: RecordingLogger;

  async function start(options: Partial<MongoDBSessionOptions> = {}, clientOptions = { serverSelectionTimeoutMS: 2000 }) {
    logger = new RecordingLogger();
    const sessions = new MongoDBSessionInterface({ client: faulty.client(clientOptions) as unknown as MongoClient, storeTimeout: BUDGET, ...options });
    app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [LoadController, ValueController] }, logger, platform);
    return SessionLoad.listen(app);
  }
  beforeEach(() => {
    // 6 ms per operation, so that writes are in flight when the server is paused.
    faulty = new MongoStandInServer({ latencyMs: 6 });
  });
  afterEach(async () => {
    await app?.close();
    faulty.close();
  });

  const storedKeys = (sid: string) => {
    const document = faulty.documents(NAMESPACE).find((d) => d.id === `session:${sid}`);
    return new Set(document?.val ? Object.keys(new StoreSerializer('msgpack').loads(bytesOf(document.val))) : []);
  };

  test('paused past the budget under load: every write answered 503 is refused when the server resumes; no lost update; other routes unaffected', async () => {
    const url = await start();
    const cookies: string[] = [];
    for (let i = 0; i < 4; i++) cookies.push(cookiePair(await request(url).get('/load/put?key=created').expect(200)));
    const load = new SessionLoad(url, cookies, 6);
    await sleep(400);
    faulty.pause();
    await sleep(BUDGET * 3);
    faulty.resume();
    await sleep(800);
    const results = await load.stop();
    expect(results.filter((r) => r.status !== 200 && r.status !== 503)).toEqual([]);
    expect(results.filter((r) => r.route === 'none' && r.status !== 200)).toEqual([]);
    expect(results.filter((r) => r.finishedAt - r.startedAt > BUDGET + TOLERANCE)).toEqual([]);
    const puts = results.filter((r) => r.route === 'put');
    expect(puts.filter((r) => r.status === 503).length).toBeGreaterThan(0);
    const sids = cookies.map((cookie) => cookie.slice('session='.length));
    const stored = sids.map(storedKeys);
    const landed = (r: LoadResult) => stored[r.session!]!.has(r.key!);
    expect(puts.filter((r) => r.status === 200 && !landed(r))).toEqual([]);
    // $$NOW in every write: even those already sent when the server stopped are refused.
    expect(puts.filter((r) => r.status === 503 && landed(r))).toEqual([]);
  }, 30_000);

  test('killed and started again: refused at once naming the address, recovers without a restart', async () => {
    const url = await start();
    const created = await request(url).get('/value/set?value=kept').expect(200);
    faulty.stop();
    await sleep(50);
    await request(url).get('/value/get').set('Cookie', cookiePair(created)).expect(503);
    await request(url).get('/value/set?value=new').expect(503);
    await request(url).get('/load/none').expect(200);
    const errors = logger.messages('error');
    expect(errors.length).toBe(2);
    for (const line of errors) expect(line).toContain('The session store (MongoDB) failed: MongoDB cannot be reached: connect ECONNREFUSED 127.0.0.1:27017');
    faulty.start();
    await sleep(700);
    expect((await request(url).get('/value/get').set('Cookie', cookiePair(created)).expect(200)).body).toEqual({ value: 'kept' });
  });

  test('down when the first request comes: fails at once, and the closed client is connected again once the server is back', async () => {
    faulty.stop();
    const url = await start({}, { serverSelectionTimeoutMS: 300 });
    await request(url).get('/value/set?value=x').expect(503);
    expect(logger.messages('error')[0]).toContain('MongoDB cannot be reached: connect ECONNREFUSED 127.0.0.1:27017');
    // The driver gives up its first connection after serverSelectionTimeoutMS and closes its topology.
    await sleep(500);
    faulty.start();
    const set = await request(url).get('/value/set?value=back').expect(200);
    expect((await request(url).get('/value/get').set('Cookie', cookiePair(set)).expect(200)).body).toEqual({ value: 'back' });
    expect(logger.messages('error').join('\n')).not.toContain('Topology is closed');
  });
});
