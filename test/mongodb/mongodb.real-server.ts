/**
 * MongoDBSessionInterface against a REAL MongoDB server (4.4 or later: a test hides an index; the interface itself needs 4.2), given
 * by MONGODB_URL: run it with `bash scripts/test-mongodb.sh` (it is not part
 * of `npm test`, which cannot start a MongoDB server on these machines). The
 * same store contract and MongoDB-specific tests as on the in-process
 * stand-in, and checks of the server behaviour the stand-in reproduces. Each
 * run works in its own database, dropped at the end.
 */
import { MongoClient, type Document } from 'mongodb';
import { randomBytes } from 'node:crypto';
import { MongoDBSessionInterface } from '../../lib/mongodb/index.js';
import { describeStoreContract } from '../server-side/contract.js';
import { bytesOf, describeMongoDBSpecifics, type MongoRole } from './mongodb-specifics.js';

const url = process.env.MONGODB_URL;
if (!url) {
  throw new Error('These tests need a MongoDB server (4.4 or later): set MONGODB_URL, e.g. MONGODB_URL=mongodb://127.0.0.1:27017 bash scripts/test-mongodb.sh');
}
const dbName = `nest_session_test_${randomBytes(4).toString('hex')}`;
const clients: MongoClient[] = [];
const admin = new MongoClient(url);

function track(created: MongoClient): MongoClient {
  clients.push(created);
  return created;
}

function client(): MongoClient {
  return track(new MongoClient(url!));
}

beforeAll(async () => {
  const { version } = await admin.db('admin').command({ buildInfo: 1 });
  console.log(`MongoDB ${version} at ${url!.replace(/\/\/[^@/]*@/, '//…@')}, database ${dbName}`);
});
afterAll(async () => {
  try {
    // Users and roles outlive their database: the refusal tests' are dropped with it.
    await admin.db(dbName).command({ dropAllUsersFromDatabase: 1 });
    await admin.db(dbName).command({ dropAllRolesFromDatabase: 1 });
    await admin.db(dbName).dropDatabase();
  } finally {
    await Promise.all([admin, ...clients].map((c) => c.close()));
  }
});

/** MongoDB's name for a role of the tests: a built-in one, or the custom role without createIndex, made once in the test database. */
let customRole: Promise<string> | undefined;
function roleName(role: MongoRole): Promise<string> {
  if (role !== 'readWrite but not createIndex') return Promise.resolve(role);
  return (customRole ??= admin
    .db(dbName)
    .command({
      createRole: 'sessionsWithoutCreateIndex',
      privileges: [{ resource: { db: dbName, collection: '' }, actions: ['find', 'insert', 'update', 'remove', 'listIndexes'] }],
      roles: [],
    })
    .then(() => 'sessionsWithoutCreateIndex'));
}

/** The refusal tests need a server that refuses what a client without credentials asks (however its access control is set: --auth, a keyFile, x509). */
let accessControlChecked = false;
async function requireAccessControl(): Promise<void> {
  if (accessControlChecked) return;
  const anonymous = new MongoClient(url!.replace(/^(mongodb(?:\+srv)?:\/\/)[^@/]*@/, '$1'));
  try {
    const refusal = await anonymous.db(dbName).collection('probe').findOne({}).then(() => undefined, (error: { code?: number }) => error);
    if (refusal?.code !== 13) {
      throw new Error(
        'The refusal tests need a server that enforces access control (mongod --auth, or the mongo Docker image with ' +
          'MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD), MONGODB_URL logging in as a user who may create users.',
      );
    }
    accessControlChecked = true;
  } finally {
    await anonymous.close();
  }
}

describeStoreContract('MongoDB (real server)', {
  create: (options) => new MongoDBSessionInterface({ client: client(), db: dbName, ...options }),
  read: async (storeId) => {
    const document = await admin.db(dbName).collection('sessions').findOne({ id: storeId });
    return document?.val ? bytesOf(document.val) : null;
  },
});

describeMongoDBSpecifics('MongoDB (real server)', {
  client,
  db: dbName,
  documents: (collection) => admin.db(dbName).collection(collection).find({}).toArray(),
  indexes: (collection) => admin.db(dbName).collection(collection).indexes() as Promise<Array<{ name: string; key: Document; unique?: boolean; expireAfterSeconds?: number }>>,
  insert: async (collection, document) => {
    await admin.db(dbName).collection(collection).insertOne(document);
  },
  remove: async (collection, id) => {
    await admin.db(dbName).collection(collection).deleteMany({ id });
  },
  user: async (role, { wrongPassword = false } = {}) => {
    await requireAccessControl();
    const username = `user_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    await admin.db(dbName).command({ createUser: username, pwd: password, roles: [{ role: await roleName(role), db: dbName }] });
    let current = role;
    // Options take the place of the URL's credentials (a multi-host URL included).
    const auth = { username, password: wrongPassword ? `${password}-wrong` : password };
    return {
      client: track(new MongoClient(url!, { auth, authSource: dbName })),
      createIndexes: async (collection, { hiddenId = false } = {}) => {
        // MongoDB before 4.4 refuses any `hidden` field, false included.
        await admin.db(dbName).collection(collection).createIndex({ id: 1 }, { unique: true, ...(hiddenId ? { hidden: true } : {}) });
        await admin.db(dbName).collection(collection).createIndex({ expiration: 1 }, { expireAfterSeconds: 0 });
      },
      setRole: async (next) => {
        await admin.db(dbName).command({ grantRolesToUser: username, roles: [{ role: await roleName(next), db: dbName }] });
        await admin.db(dbName).command({ revokeRolesFromUser: username, roles: [{ role: await roleName(current), db: dbName }] });
        // A mongos caches users for up to 30 s (userCacheInvalidationIntervalSecs); mongod applies the change at once.
        await admin.db('admin').command({ invalidateUserCache: 1 }).catch(() => undefined);
        current = next;
      },
    };
  },
});

describe('the server behaviour the in-process stand-in reproduces', () => {
  const collection = () => admin.db(dbName).collection(`fidelity_${randomBytes(4).toString('hex')}`);

  test('hello answers localTime, a Date (the clock offset is measured from it)', async () => {
    const reply = await admin.db(dbName).command({ hello: 1 });
    expect(reply.localTime).toBeInstanceOf(Date);
    expect(Math.abs(reply.localTime.getTime() - Date.now())).toBeLessThan(60_000);
  });

  test('$expr is refused in the filter of an upsert (error 224), so upserts carry the deadline in their pipeline', async () => {
    await expect(collection().updateOne({ id: 'x', $expr: { $lte: ['$$NOW', new Date()] } }, { $set: { a: 1 } }, { upsert: true })).rejects.toMatchObject({ code: 224 });
  });

  test('a pipeline upsert starts from the filter\'s equalities; a $set to a missing field adds nothing; $$NOW is a Date', async () => {
    const sessions = collection();
    const after = await sessions.findOneAndUpdate(
      { id: 'x' },
      [{ $set: { kept: { $cond: [{ $lte: ['$$NOW', new Date(Date.now() + 60_000)] }, 'yes', 'no'] }, gone: '$missing', now: '$$NOW' } }],
      { upsert: true, returnDocument: 'after', projection: { _id: 0 } },
    );
    expect(Object.keys(after!)).toEqual(['id', 'kept', 'now']);
    expect(after!.kept).toBe('yes');
    expect(after!.now).toBeInstanceOf(Date);
  });

  test('a unique index over duplicates fails with 11000; the same name with other options with 85 or 86', async () => {
    const sessions = collection();
    await sessions.insertMany([{ id: 'same' }, { id: 'same' }]);
    await expect(sessions.createIndex({ id: 1 }, { unique: true })).rejects.toMatchObject({ code: 11000 });
    await sessions.createIndex({ id: 1 });
    const conflict = await sessions.createIndex({ id: 1 }, { unique: true }).catch((error: { code?: number }) => error);
    expect([85, 86]).toContain((conflict as { code?: number }).code);
  });

  test('BinData written from a Buffer is subtype 0 and compares equal to the same bytes in a filter', async () => {
    const sessions = collection();
    await sessions.insertOne({ id: 'b', val: Buffer.from([1, 2, 3]) });
    const found = await sessions.findOne({ val: Buffer.from([1, 2, 3]) });
    expect(found?.val.sub_type).toBe(0);
    expect(await sessions.findOne({ val: Buffer.from([1, 2]) })).toBeNull();
  });
});
