import KeyvRedis from '@keyv/redis';
import { createCache, type Cache } from 'cache-manager';
import { Keyv } from 'keyv';
import { CacheManagerSessionInterface } from '../../lib/cache-manager/index.js';
import { RedisServer } from '../support/loopback-servers.js';
import { describeStoreContract } from '../server-side/contract.js';

const memory = createCache();
describeStoreContract('cache-manager (memory)', {
  create: (options) => new CacheManagerSessionInterface({ client: memory, ...options }),
  read: async (storeId) => {
    const text = await memory.get<string>(storeId);
    return text ? Buffer.from(text, 'base64') : null;
  },
});

let server: RedisServer;
let viaRedis: Cache;
beforeAll(async () => {
  server = await RedisServer.start();
  const store = new KeyvRedis(server.url, { throwOnConnectError: false, throwOnErrors: true });
  viaRedis = createCache({ stores: [new Keyv({ store, namespace: '' })] });
});
afterAll(async () => {
  await viaRedis.disconnect().catch(() => {});
  await server.close();
});

describeStoreContract('cache-manager (Redis through Keyv)', {
  create: (options) => new CacheManagerSessionInterface({ client: viaRedis, ...options }),
  read: async (storeId) => {
    const text = await viaRedis.get<string>(storeId);
    return text ? Buffer.from(text, 'base64') : null;
  },
  breakStore: () => server.stop(),
  repairStore: async () => {
    await server.resume();
    await new Promise((resolve) => setTimeout(resolve, 500));
  },
});
