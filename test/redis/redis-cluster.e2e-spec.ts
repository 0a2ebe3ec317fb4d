import { execFileSync } from 'node:child_process';
import { Cluster } from 'ioredis';
import { RedisSessionInterface } from '../../lib/redis/index.js';
import { RedisServer } from '../support/loopback-servers.js';
import { describeStoreContract } from '../server-side/contract.js';

let nodes: RedisServer[];
const clients: Cluster[] = [];

function cluster(): Cluster {
  const client = new Cluster(
    nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
    { clusterRetryStrategy: () => 100, redisOptions: { maxRetriesPerRequest: 1 } },
  );
  client.on('error', () => {}); // outages are part of the contract
  clients.push(client);
  return client;
}

async function clusterIsReady(): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const info = execFileSync('redis-cli', ['-p', String(nodes[0].port), 'cluster', 'info'], { encoding: 'utf8' });
    if (info.includes('cluster_state:ok')) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('The Redis Cluster did not become ready');
}

beforeAll(async () => {
  const clusterArgs = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'];
  nodes = await Promise.all([0, 1, 2].map(() => RedisServer.start(clusterArgs)));
  execFileSync(
    'redis-cli',
    ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
    { stdio: 'ignore' },
  );
  await clusterIsReady();
}, 60_000);

afterAll(async () => {
  clients.forEach((c) => c.disconnect());
  await Promise.all(nodes.map((n) => n.close()));
});

describeStoreContract('Redis Cluster (3 masters)', {
  create: (options) => new RedisSessionInterface({ client: cluster(), ...options }),
  read: async (storeId) => {
    const client = cluster();
    try {
      return await client.getBuffer(storeId);
    } finally {
      client.disconnect();
    }
  },
  breakStore: async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  },
  repairStore: async () => {
    await Promise.all(nodes.map((n) => n.resume()));
    await clusterIsReady();
    await new Promise((resolve) => setTimeout(resolve, 500));
  },
});
