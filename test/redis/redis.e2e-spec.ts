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
