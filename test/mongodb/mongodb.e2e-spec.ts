/**
 * MongoDBSessionInterface against the in-process stand-in (mongodb-stand-in.ts):
 * no MongoDB server can be had on these machines. The same contract runs
 * against a real server with scripts/test-mongodb.sh (MONGODB_URL).
 */
import type { MongoClient } from 'mongodb';
import { MongoDBSessionInterface } from '../../lib/mongodb/index.js';
import { describeStoreContract } from '../server-side/contract.js';
import { MongoStandInServer, type MongoClientStandIn } from './mongodb-stand-in.js';

const NAMESPACE = 'flask_session.sessions';
let server: MongoStandInServer;
const clients: MongoClientStandIn[] = [];

function client(): MongoClient {
  const standIn = server.client({ serverSelectionTimeoutMS: 2000 });
  clients.push(standIn);
  return standIn as unknown as MongoClient;
}

beforeAll(() => {
  server = new MongoStandInServer();
});
afterAll(() => server.close());

describeStoreContract('MongoDB (in-process stand-in)', {
  create: (options) => new MongoDBSessionInterface({ client: client(), ...options }),
  read: async (storeId) => {
    const document = server.documents(NAMESPACE).find((d) => d.id === storeId);
    return document?.val ? Buffer.from(document.val.buffer.subarray(0, document.val.position)) : null;
  },
  breakStore: async () => server.stop(),
  repairStore: async () => {
    server.start();
    // The clients' monitors check every 500 ms while a request's probe waits for the server.
    await new Promise((resolve) => setTimeout(resolve, 700));
  },
});
