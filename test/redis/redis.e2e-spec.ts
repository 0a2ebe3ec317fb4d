import { Redis } from 'ioredis';
import { RedisSessionInterface } from '../../lib/redis/index.js';
import { RedisServer } from '../support/loopback-servers.js';
import { describeStoreContract } from '../server-side/contract.js';

let server: RedisServer;
const clients: Redis[] = [];

function client(): Redis {
  // A short retry delay, so the client is back quickly once the server is.
  const redis = new Redis(server.url, { lazyConnect: false, retryStrategy: () => 50, maxRetriesPerRequest: 1 });
  redis.on('error', () => {}); // outages are part of the contract; the interface reports them
  clients.push(redis);
  return redis;
}

beforeAll(async () => {
  server = await RedisServer.start();
});
afterAll(async () => {
  clients.forEach((c) => c.disconnect());
  await server.close();
});

describeStoreContract('Redis', {
  create: (options) => new RedisSessionInterface({ client: client(), ...options }),
  read: async (storeId) => {
    const redis = client();
    try {
      return await redis.getBuffer(storeId);
    } finally {
      redis.disconnect();
    }
  },
  breakStore: () => server.stop(),
  repairStore: async () => {
    await server.resume();
    await new Promise((resolve) => setTimeout(resolve, 300));
  },
});

test('a hung store (accepts, never answers) costs a request storeTimeout, then a 503', async () => {
  const { createServer } = await import('node:net');
  const { Controller, Get } = await import('@nestjs/common');
  const { Session, SessionModule } = await import('../../lib/index.js');
  const { createApp } = await import('../support/apps.js');
  const request = (await import('supertest')).default;
  const sockets: import('node:net').Socket[] = [];
  const silent = createServer((socket) => sockets.push(socket)); // holds every connection open and never replies
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as { port: number }).port;
  const hung = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: null });
  hung.on('error', () => {});

  @Controller()
  class HungController {
    @Get('get')
    get(@Session('value') value?: string) {
      return { value: value ?? null };
    }
  }
  const app = await createApp({
    imports: [SessionModule.forRoot({ interface: new RedisSessionInterface({ client: hung, storeTimeout: 300 }), secretKey: 'k' })],
    controllers: [HungController],
  });
  try {
    const started = Date.now();
    const response = await request(app.getHttpServer()).get('/get').set('Cookie', `session=${'A'.repeat(43)}`);
    expect(response.status).toBe(503);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(5000);
  } finally {
    await app.close();
    hung.disconnect();
    sockets.forEach((socket) => socket.destroy());
    await new Promise((resolve) => silent.close(resolve));
  }
});

test("a user Redis's ACL refuses a command (NOPERM), or a wrong password, answers 500 naming it, not 503; what it may do still works", async () => {
  const { Controller, Get, Query } = await import('@nestjs/common');
  const { Session, SessionModule } = await import('../../lib/index.js');
  const { RecordingLogger, cookiePair, createApp } = await import('../support/apps.js');
  const request = (await import('supertest')).default;
  type Bag = { get(key: string): unknown; set(key: string, value: unknown): void };

  @Controller()
  class ValueController {
    @Get('get')
    get(@Session() session: Bag) {
      return { value: session.get('value') ?? null };
    }
    @Get('set')
    set(@Session() session: Bag, @Query('value') value: string) {
      session.set('value', value);
      return '';
    }
  }
  const admin = client();
  await admin.call('ACL', 'SETUSER', 'limited', 'on', '>limited-pw', '~*', '&*', '+@all');
  const limited = new Redis(server.url.replace('redis://', 'redis://limited:limited-pw@'), { retryStrategy: () => 50, maxRetriesPerRequest: 1 });
  limited.on('error', () => {});
  const logger = new RecordingLogger();
  const app = await createApp(
    { imports: [SessionModule.forRoot({ interface: new RedisSessionInterface({ client: limited }), secretKey: 'k' })], controllers: [ValueController] },
    logger,
  );
  try {
    const set = await request(app.getHttpServer()).get('/set?value=a').expect(200);
    // The write script refused, then a command within it.
    for (const rule of [['-evalsha', '-eval'], ['+evalsha', '+eval', '-set']]) {
      await admin.call('ACL', 'SETUSER', 'limited', ...rule);
      const refused = await request(app.getHttpServer()).get('/set?value=b').set('Cookie', cookiePair(set));
      expect(refused.status).toBe(500);
      await request(app.getHttpServer()).get('/get').set('Cookie', cookiePair(set)).expect(200, { value: 'a' });
    }
    // A wrong password: refused at login, a 500 naming it, not a 503.
    const wrong = new Redis(server.url.replace('redis://', 'redis://limited:not-it@'), { retryStrategy: () => 50, maxRetriesPerRequest: 1 });
    wrong.on('error', () => {});
    const wrongApp = await createApp(
      { imports: [SessionModule.forRoot({ interface: new RedisSessionInterface({ client: wrong }), secretKey: 'k' })], controllers: [ValueController] },
      logger,
    );
    try {
      await request(wrongApp.getHttpServer()).get('/set?value=c').expect(500);
      expect(logger.messages('error').at(-1)).toMatch(/option "client": Redis refused the client's login: WRONGPASS/);
    } finally {
      await wrongApp.close();
      wrong.disconnect();
    }
    const errors = logger.messages('error').join('\n');
    expect(errors).toMatch(/option "client": Redis refused the client's user: NOPERM .*'evalsha'.*The store needs GET, EVALSHA and EVAL/);
    // Redis 7.0 words a refusal within a script so; later versions say NOPERM there too.
    expect(errors).toMatch(/option "client": Redis refused the client's user: (.*NOPERM .*'set'|ERR The user executing the script can't run this command)/);
  } finally {
    await app.close();
    limited.disconnect();
    await admin.call('ACL', 'DELUSER', 'limited');
  }
});
