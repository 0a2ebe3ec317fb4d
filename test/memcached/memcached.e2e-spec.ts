import memjs from 'memjs';
import { MemcachedSessionInterface, memcachedExpiry } from '../../lib/memcached/index.js';
import { MemcachedServer } from '../support/loopback-servers.js';
import { describeStoreContract } from '../server-side/contract.js';

let server: MemcachedServer;
const clients: memjs.Client[] = [];

function client(): memjs.Client {
  const memcached = memjs.Client.create(server.address, { retries: 0, timeout: 0.5, logger: { log: () => {} } });
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
