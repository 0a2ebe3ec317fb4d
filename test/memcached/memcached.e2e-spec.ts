import { Controller, Get } from '@nestjs/common';
import { createCache } from 'cache-manager';
import { Redis } from 'ioredis';
import memjs from 'memjs';
import { createServer, type Socket } from 'node:net';
import request from 'supertest';
import { Session, SessionConfigurationError, SessionModule, SessionStoreUnavailableError } from '../../lib/index.js';
import type { StoreCall, StoredRecord, SwapOutcome } from '../../lib/server-side/server-side.session-interface.js';
import { MemcachedSessionInterface, memcachedExpiry, type MemcachedSessionOptions } from '../../lib/memcached/index.js';
import { RecordingLogger, createApp } from '../support/apps.js';
import { MemcachedServer, freePort } from '../support/loopback-servers.js';
import { describeStoreContract } from '../server-side/contract.js';

let server: MemcachedServer;
const clients: memjs.Client[] = [];

function client(address = server.address, options: memjs.ClientOptions & memjs.ServerOptions = {}): memjs.Client {
  const memcached = memjs.Client.create(address, { retries: 0, timeout: 0.5, logger: { log: () => {} }, ...options });
  clients.push(memcached);
  return memcached;
}

beforeAll(async () => {
  server = await MemcachedServer.start();
});
afterAll(async () => {
  clients.forEach((c) => c.close());
  await server.close();
});

describeStoreContract('Memcached', {
  create: (options) => new MemcachedSessionInterface({ client: client(), ...options }),
  read: async (storeId) => (await client().get(storeId)).value ?? null,
  breakStore: () => server.stop(),
  repairStore: () => server.resume(),
});

test("Flask-Session's 30-day rule: a longer expiry is sent as a Unix time", () => {
  const now = Date.UTC(2026, 0, 1);
  expect(memcachedExpiry(3600, now)).toBe(3600);
  expect(memcachedExpiry(2592000, now)).toBe(2592000);
  expect(memcachedExpiry(2678400, now)).toBe(now / 1000 + 2678400);
});

/** The store primitives, which are protected: the tests call them as the base class does. */
interface Primitives {
  readRecord(storeId: string, call: StoreCall): Promise<StoredRecord | null>;
  swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome>;
  replaceRecord(storeId: string, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<void>;
  deleteRecord(storeId: string, call: StoreCall): Promise<void>;
  refreshRecord(storeId: string, ttlSeconds: number, call: StoreCall): Promise<void>;
}

function store(options: Partial<MemcachedSessionOptions> = {}): Primitives {
  return new MemcachedSessionInterface({ client: client(), ...options }) as unknown as Primitives;
}

const budget = (ms = 5000): StoreCall => ({ deadline: Date.now() + ms });
const bytes = (text: string) => Buffer.from(text);
let keys = 0;
const freshKey = () => `session:cas-test-${process.pid}-${keys++}`;

describe('compare-and-set on the CAS token', () => {
  it('reads a record with its CAS token', async () => {
    const sessions = store();
    const key = freshKey();
    await sessions.replaceRecord(key, bytes('v1'), 60, budget());
    const record = await sessions.readRecord(key, budget());
    expect(record?.value).toEqual(bytes('v1'));
    expect(Buffer.isBuffer(record?.version) && (record.version as Buffer).length).toBe(8);
    expect(await sessions.readRecord(freshKey(), budget())).toBeNull();
  });

  it('two swaps from the same record, one after the other: the second loses and gets the first', async () => {
    const sessions = store();
    const key = freshKey();
    await sessions.replaceRecord(key, bytes('start'), 60, budget());
    const read = (await sessions.readRecord(key, budget()))!;
    expect(await sessions.swapRecord(key, read, bytes('first'), 60, budget())).toEqual({ swapped: true });
    const second = await sessions.swapRecord(key, read, bytes('second'), 60, budget());
    expect(second.swapped).toBe(false);
    const current = (second as { current: StoredRecord }).current;
    expect(current.value).toEqual(bytes('first'));
    expect(current.version).not.toEqual(read.version);
    expect((await sessions.readRecord(key, budget()))!.value).toEqual(bytes('first'));
  });

  it('two interleaved swaps on one record over two connections: exactly one wins, every round', async () => {
    const [one, two] = [store(), store()];
    for (let round = 0; round < 50; round++) {
      const key = freshKey();
      await one.replaceRecord(key, bytes('start'), 60, budget());
      const [readByOne, readByTwo] = await Promise.all([one.readRecord(key, budget()), two.readRecord(key, budget())]);
      const outcomes = await Promise.all([
        one.swapRecord(key, readByOne, bytes('one'), 60, budget()),
        two.swapRecord(key, readByTwo, bytes('two'), 60, budget()),
      ]);
      expect(outcomes.filter((o) => o.swapped)).toHaveLength(1);
      const winner = outcomes[0].swapped ? 'one' : 'two';
      const loser = outcomes.find((o) => !o.swapped) as { current: StoredRecord };
      expect(loser.current.value).toEqual(bytes(winner));
      expect((await one.readRecord(key, budget()))!.value).toEqual(bytes(winner));
    }
  });

  it('a swap on a record deleted meanwhile reports it gone and does not recreate it', async () => {
    const sessions = store();
    const key = freshKey();
    await sessions.replaceRecord(key, bytes('logged-in'), 60, budget());
    const read = (await sessions.readRecord(key, budget()))!;
    await sessions.deleteRecord(key, budget());
    expect(await sessions.swapRecord(key, read, bytes('late'), 60, budget())).toEqual({ swapped: false, current: null });
    expect(await sessions.readRecord(key, budget())).toBeNull();
  });

  it('expecting no record: adds only while there is none', async () => {
    const sessions = store();
    const key = freshKey();
    expect(await sessions.swapRecord(key, null, bytes('first'), 60, budget())).toEqual({ swapped: true });
    const second = await sessions.swapRecord(key, null, bytes('second'), 60, budget());
    expect(second.swapped).toBe(false);
    expect((second as { current: StoredRecord }).current.value).toEqual(bytes('first'));
  });

  it('replaces a record whatever it holds, and creates a missing one', async () => {
    const sessions = store();
    const key = freshKey();
    await sessions.replaceRecord(key, bytes('one'), 60, budget());
    await sessions.replaceRecord(key, bytes('two'), 60, budget());
    expect((await sessions.readRecord(key, budget()))!.value).toEqual(bytes('two'));
  });

  it('a refresh moves the expiry, and never recreates a deleted record', async () => {
    const sessions = store();
    const [refreshed, control, deleted] = [freshKey(), freshKey(), freshKey()];
    await sessions.replaceRecord(refreshed, bytes('kept'), 1, budget());
    await sessions.replaceRecord(control, bytes('expires'), 1, budget());
    await sessions.refreshRecord(refreshed, 60, budget());
    await sessions.refreshRecord(deleted, 60, budget());
    await new Promise((resolve) => setTimeout(resolve, 2100));
    expect((await sessions.readRecord(refreshed, budget()))?.value).toEqual(bytes('kept'));
    expect(await sessions.readRecord(control, budget())).toBeNull();
    expect(await sessions.readRecord(deleted, budget())).toBeNull();
  });

  it('ignores the serializer of the client: records are the bytes Flask-Session reads', async () => {
    const jsonClient = client(server.address, {
      serializer: {
        serialize: (_opcode, value, extras) => ({ value: JSON.stringify(value), extras }),
        deserialize: (_opcode, value, extras) => ({ value: value && JSON.parse(value.toString()), extras }),
      },
    } as memjs.ClientOptions);
    const sessions = new MemcachedSessionInterface({ client: jsonClient }) as unknown as Primitives;
    const key = freshKey();
    await sessions.replaceRecord(key, Buffer.from([0x81, 0xa1, 0x61, 0x01]), 60, budget());
    expect((await client().get(key)).value).toEqual(Buffer.from([0x81, 0xa1, 0x61, 0x01]));
  });

  it('refuses to change a record of a server without CAS tokens (memcached -C), naming the cause', async () => {
    const noCas = await MemcachedServer.start(['-C']);
    try {
      const sessions = new MemcachedSessionInterface({ client: client(noCas.address) }) as unknown as Primitives;
      const key = freshKey();
      await sessions.replaceRecord(key, bytes('one'), 60, budget());
      const read = (await sessions.readRecord(key, budget()))!;
      await expect(sessions.swapRecord(key, read, bytes('two'), 60, budget())).rejects.toThrow(/CAS disabled, memcached -C/);
      expect((await sessions.readRecord(key, budget()))!.value).toEqual(bytes('one'));
    } finally {
      await noCas.close();
    }
  });

  it('names what Memcached refused, e.g. a record over its item size limit', async () => {
    const sessions = store();
    const key = freshKey();
    await expect(sessions.replaceRecord(key, Buffer.alloc(2 * 1024 * 1024), 60, budget())).rejects.toThrow(/"Too large\." to add .*item size limit/);
  });
});

describe('configuration mistakes fail at construction, naming the option', () => {
  const create = (options: Record<string, unknown>) => () => new MemcachedSessionInterface(options as unknown as MemcachedSessionOptions);

  it.each<[string, () => Record<string, unknown>, RegExp]>([
    ['no client', () => ({}), /"client": required: a memjs Client, e\.g\. memjs\.Client\.create\('127\.0\.0\.1:11211'\)/],
    ['an address instead of a client', () => ({ client: '127.0.0.1:11211' }), /"client": expected a memjs Client, got the string "127\.0\.0\.1:11211": pass memjs\.Client\.create\("127\.0\.0\.1:11211"\)/],
    ['the memjs module', () => ({ client: memjs }), /"client": got the memjs module .* pass memjs\.Client\.create/],
    ['an ioredis client', () => ({ client: new Redis({ lazyConnect: true }) }), /"client": this looks like a Redis client; .*memjs Client .*RedisSessionInterface/],
    ['a cache-manager Cache', () => ({ client: createCache() }), /"client": this looks like a cache-manager Cache; .*memjs Client .*CacheManagerSessionInterface/],
    ['a client of the "memcached" package', () => ({ client: { servers: ['127.0.0.1:11211'], gets() {}, cas() {}, get() {}, set() {} } }), /"client": this looks like a client of the "memcached" package; .*memjs Client/],
    ['some other object', () => ({ client: { get() {} } }), /"client": expected a memjs Client \(memjs 1\.x, memjs\.Client\.create\('127\.0\.0\.1:11211'\)\), got a Object/],
  ])('%s', (_case, options, message) => {
    const attempt = create(options());
    expect(attempt).toThrow(SessionConfigurationError);
    expect(attempt).toThrow(message);
    expect(attempt).toThrow(/MemcachedSessionInterface/);
  });

  it('keys longer than Memcached takes (250 bytes)', () => {
    expect(create({ client: client(), keyPrefix: 'p'.repeat(210) })).toThrow(/"keyPrefix": keys would be 253 bytes .* at most 250/);
    expect(create({ client: client(), sidLength: 188 })).toThrow(/"sidLength": keys would be 259 bytes/);
    expect(() => create({ client: client(), keyPrefix: 'p'.repeat(207) })()).not.toThrow();
  });
});

/**
 * A TCP server that counts the memcached requests it receives and answers
 * none: it resets each connection on its first request, or closes it (FIN)
 * with `closing`.
 */
async function resettingServer(closing = false) {
  const requests: number[] = [];
  const sockets: Socket[] = [];
  const tcp = createServer((socket) => {
    sockets.push(socket);
    socket.on('data', (data) => {
      for (let at = 0; at + 24 <= data.length; at += 24 + data.readUInt32BE(at + 8)) requests.push(data[at + 1]);
      if (closing) socket.end();
      else socket.resetAndDestroy();
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  const { port } = tcp.address() as { port: number };
  return {
    address: `127.0.0.1:${port}`,
    requests,
    close: () => {
      sockets.forEach((s) => s.destroy());
      return new Promise((resolve) => tcp.close(resolve));
    },
  };
}

describe('honest failures', () => {
  it("sends each command once, whatever the client's retries and failover", async () => {
    const fake = await resettingServer();
    try {
      const retrying = client(fake.address, { retries: 5, retry_delay: 0.01, failover: true, failoverTime: 0.01 });
      const sessions = new MemcachedSessionInterface({ client: retrying }) as unknown as Primitives;
      await expect(sessions.readRecord('session:x', budget())).rejects.toThrow(new RegExp(`Memcached at ${fake.address}`));
      await expect(sessions.swapRecord('session:x', null, bytes('v'), 60, budget())).rejects.toThrow(new RegExp(`Memcached at ${fake.address}`));
      await new Promise((resolve) => setTimeout(resolve, 300)); // time for any resend to arrive
      expect(fake.requests).toEqual([0x00, 0x02]); // one get, one add
      // The same client's own commands are retried: the server would have seen a resend.
      await retrying.get('other').catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(fake.requests.length).toBeGreaterThan(3);
    } finally {
      await fake.close();
    }
  });

  it('a store call after the request spent its whole budget is a 503 (SessionStoreUnavailableError), not a 500', async () => {
    const sessions = new MemcachedSessionInterface({ client: client(), storeTimeout: 300 });
    const callStore = (sessions as unknown as { callStore(spent: { ms: number }, run: () => Promise<unknown>): Promise<unknown> }).callStore.bind(sessions);
    let ran = false;
    const error = await callStore({ ms: 300 }, async () => (ran = true)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionStoreUnavailableError);
    expect((error as Error).message).toBe("The session store (Memcached) failed: the request's store budget of 300 ms (storeTimeout) ran out");
    expect(ran).toBe(false);
  });

  it('a connection the server closes with commands unanswered fails them at once, not at their deadline', async () => {
    const fake = await resettingServer(true);
    try {
      const sessions = new MemcachedSessionInterface({ client: client(fake.address, { timeout: 600 }) }) as unknown as Primitives;
      // A budget longer than Jest's test timeout: waiting for it would fail the test.
      await expect(sessions.readRecord('session:x', budget(600_000))).rejects.toThrow(`Memcached at ${fake.address}: the server closed the connection`);
      await expect(sessions.readRecord('session:x', budget(600_000))).rejects.toThrow(`Memcached at ${fake.address}: the server closed the connection`);
      expect(fake.requests).toEqual([0x00, 0x00]);
    } finally {
      await fake.close();
    }
  });

  it('sends nothing once the budget has run out', async () => {
    const fake = await resettingServer();
    try {
      const sessions = new MemcachedSessionInterface({ client: client(fake.address) }) as unknown as Primitives;
      await expect(sessions.replaceRecord('session:x', bytes('v'), 60, { deadline: Date.now() - 1 })).rejects.toThrow(/nothing sent to Memcached: the request's store budget/);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(fake.requests).toEqual([]);
    } finally {
      await fake.close();
    }
  });

  it('fails at once on a refused connection, naming the address, not after the budget', async () => {
    const closedPort = await freePort();
    const address = `127.0.0.1:${closedPort}`;
    // A budget longer than Jest's test timeout: waiting for it would fail the test.
    const sessions = new MemcachedSessionInterface({ client: client(address), storeTimeout: 600_000 });
    const error = await (sessions as unknown as Primitives).readRecord('session:x', budget(600_000)).catch((e: Error) => e);
    expect((error as Error).message).toBe(`Memcached at ${address} refused the connection (ECONNREFUSED)`);

    @Controller()
    class RefusedController {
      @Get('get')
      get(@Session('value') value?: string) {
        return { value: value ?? null };
      }
    }
    const logger = new RecordingLogger();
    const app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [RefusedController] }, logger);
    try {
      const response = await request(app.getHttpServer()).get('/get').set('Cookie', `session=${'A'.repeat(43)}`);
      expect(response.status).toBe(503);
      expect(logger.messages('error')).toContain(
        `Opening the session failed: The session store (Memcached) failed: Memcached at ${address} refused the connection (ECONNREFUSED)`,
      );
    } finally {
      await app.close();
    }
  });

  it('a paused server costs the budget, then a 503; once it answers again, a new connection is used without a restart', async () => {
    const own = await MemcachedServer.start();
    try {
      const memcached = client(own.address, { timeout: 60 }); // memjs would wait a minute: the budget decides
      const sessions = new MemcachedSessionInterface({ client: memcached, storeTimeout: 200 }) as unknown as Primitives;
      const key = freshKey();
      await sessions.replaceRecord(key, bytes('before'), 60, budget());
      const before = (memcached.servers[0] as unknown as { _socket?: Socket })._socket;
      await own.pause();
      try {
        await expect(sessions.readRecord(key, budget(200))).rejects.toThrow(new RegExp(`no answer from Memcached at ${own.address} within the request's store budget of 200 ms`));
      } finally {
        await own.resume();
      }
      expect((await sessions.readRecord(key, budget()))!.value).toEqual(bytes('before'));
      expect((memcached.servers[0] as unknown as { _socket?: Socket })._socket).not.toBe(before);
    } finally {
      await own.close();
    }
  });

  it('a command that runs out of budget early leaves its connection, and the commands waiting on it, alone', async () => {
    const own = await MemcachedServer.start();
    try {
      const memcached = client(own.address, { timeout: 60 });
      const sessions = new MemcachedSessionInterface({ client: memcached, storeTimeout: 2000 }) as unknown as Primitives;
      const key = freshKey();
      await sessions.replaceRecord(key, bytes('kept'), 60, budget());
      const connection = (memcached.servers[0] as unknown as { _socket?: Socket })._socket;
      await own.pause();
      let patient: Promise<StoredRecord | null>;
      try {
        patient = sessions.readRecord(key, budget(2000));
        // Out of budget after 20 ms: far less than half the store budget, so no sign the server is gone.
        await expect(sessions.readRecord(key, budget(20))).rejects.toThrow(/no answer from Memcached/);
      } finally {
        await own.resume();
      }
      expect((await patient)!.value).toEqual(bytes('kept'));
      expect((memcached.servers[0] as unknown as { _socket?: Socket })._socket).toBe(connection);
    } finally {
      await own.close();
    }
  });
});
