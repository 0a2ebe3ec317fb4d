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
