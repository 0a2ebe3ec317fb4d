/**
 * MongoDB-specific behaviour of MongoDBSessionInterface, written against the
 * driver's API so that it runs on the in-process stand-in (mongodb.e2e-spec.ts)
 * and on a real server (mongodb.real-server.ts, scripts/test-mongodb.sh):
 * Flask-Session's document layout, the indexes, expiry on read, the
 * conditional writes, and writes refused by the server's clock.
 */
import { Controller, Get, Query } from '@nestjs/common';
import type { Document, MongoClient } from 'mongodb';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { Session, SessionModule, StoreSerializer, type SessionMixin } from '../../lib/index.js';
import { MongoDBSessionInterface, type MongoDBSessionOptions } from '../../lib/mongodb/index.js';
import type { StoreCall, StoredRecord, SwapOutcome } from '../../lib/server-side/server-side.session-interface.js';
import { RecordingLogger, cookiePair, createApp } from '../support/apps.js';

export interface MongoTarget {
  /** A new client of the server. */
  client(): MongoClient;
  /** The database these tests use. */
  db: string;
  /** The documents of a collection, as stored. */
  documents(collection: string): Promise<Document[]>;
  /** The indexes of a collection. */
  indexes(collection: string): Promise<Array<{ name: string; key: Document; unique?: boolean; expireAfterSeconds?: number }>>;
  /** Inserts a document as another writer would (Flask-Session 0.8 has no unique index). */
  insert(collection: string, document: Document): Promise<void>;
  /** Deletes every document with this id. */
  remove(collection: string, id: string): Promise<void>;
  /**
   * A client logged in as a new user of its own with `role` on {@link db}, on
   * a server that enforces access control; with `wrongPassword`, the client
   * logs in with a password that is not the user's.
   */
  user(role: MongoRole, options?: { wrongPassword?: boolean }): Promise<MongoUser>;
}

/** The roles the tests give their users: MongoDB's built-in read and readWrite, and a custom role with readWrite's actions but createIndex. */
export type MongoRole = 'read' | 'readWrite' | 'readWrite but not createIndex';

export interface MongoUser {
  client: MongoClient;
  /** Creates the store's indexes on `collection` as an administrator: { id: 1 } unique (hidden with `hiddenId`), { expiration: 1 } TTL 0. */
  createIndexes(collection: string, options?: { hiddenId?: boolean }): Promise<void>;
  /** Gives the user `role` instead of the one it has (grantRolesToUser, then revokeRolesFromUser), as an administrator. */
  setRole(role: MongoRole): Promise<void>;
}

/** The bootstrap's warning about a hidden unique index id_1 on `db`.`collection`. */
export function hiddenIdIndexWarning(db: string, collection: string): RegExp {
  return new RegExp(
    `${db}\\.${collection}'s unique index on "id" \\("id_1"\\) is hidden: .*scans every session stored\\. ` +
      `An administrator can unhide it: db\\.getSiblingDB\\("${db}"\\)\\.getCollection\\("${collection}"\\)\\.unhideIndex\\("id_1"\\)`,
  );
}

/** The primitives, called directly (they are protected: the base class calls them). */
export interface Primitives {
  readRecord(storeId: string, call: StoreCall): Promise<StoredRecord | null>;
  swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttl: number, call: StoreCall): Promise<SwapOutcome>;
  replaceRecord(storeId: string, value: Buffer, ttl: number, call: StoreCall): Promise<void>;
  deleteRecord(storeId: string, call: StoreCall): Promise<void>;
  refreshRecord(storeId: string, ttl: number, call: StoreCall): Promise<void>;
}

@Controller('value')
export class ValueController {
  @Get('set')
  set(@Session() session: SessionMixin, @Query('value') value: string) {
    session.set('value', value);
    return { sid: (session as unknown as { sid: string }).sid };
  }

  @Get('get')
  get(@Session('value') value?: string) {
    return { value: value ?? null };
  }
}

export const newStoreId = () => `session:${randomBytes(32).toString('base64url')}`;
/** Bytes of BinData as the driver returns it. */
export const bytesOf = (value: { buffer: Uint8Array; position: number }) => Buffer.from(value.buffer.subarray(0, value.position));

export function describeMongoDBSpecifics(name: string, target: MongoTarget): void {
  describe(`${name}: Flask-Session's layout, indexes, expiry and deadlines`, () => {
    /** Each test its own collection, so that index and duplicate tests do not meet. */
    let collection: string;
    let counter = 0;
    beforeEach(() => {
      collection = `sessions_${++counter}`;
    });
    const create = (options: Partial<MongoDBSessionOptions> = {}) =>
      new MongoDBSessionInterface({ client: target.client(), db: target.db, collection, ...options });
    const primitives = (options: Partial<MongoDBSessionOptions> = {}) => create(options) as unknown as Primitives;
    const soon = (): StoreCall => ({ deadline: Date.now() + 10_000 });
    /**
     * A deadline our clock has not reached but the server's check has: the
     * interface gives the server its deadline less a margin (min(100,
     * storeTimeout / 10) ms, 100 here), so a call 40 ms before its deadline is
     * sent, and refused by the server's $$NOW.
     */
    const late = (): StoreCall => ({ deadline: Date.now() + 40 });
    const documentOf = async (id: string) => (await target.documents(collection)).filter((d) => d.id === id);
    /** An application on `client`'s user and the collection `on`, with what it logs. */
    const bootstrapLogged = async (client: MongoClient, on: string) => {
      const logger = new RecordingLogger();
      const app = await createApp({ imports: [SessionModule.forRoot({ interface: create({ client, collection: on }), secretKey: 'k' })], controllers: [ValueController] }, logger);
      return { app, logger };
    };
    const hiddenWarning = (on: string) => hiddenIdIndexWarning(target.db, on);

    test('a session is one document { _id, id: "session:" + sid, val: BinData 0, expiration: Date }, with indexes id_1 (unique) and expiration_1 (TTL 0)', async () => {
      const store = create();
      const app = await createApp({ imports: [SessionModule.forRoot({ interface: store, secretKey: 'k' })], controllers: [ValueController] });
      try {
        const before = Date.now();
        const set = await request(app.getHttpServer()).get('/value/set?value=shop').expect(200);
        const [document, ...others] = await documentOf(`session:${set.body.sid}`);
        expect(others).toEqual([]);
        expect(Object.keys(document!)).toEqual(['_id', 'id', 'val', 'expiration']);
        expect(document!.val.sub_type).toBe(0);
        expect(new StoreSerializer('msgpack').loads(bytesOf(document!.val))).toEqual({ _permanent: true, value: 'shop' });
        expect(document!.expiration).toBeInstanceOf(Date);
        const lifetime = 31 * 24 * 3600 * 1000;
        expect(document!.expiration.getTime()).toBeGreaterThanOrEqual(before + lifetime);
        expect(document!.expiration.getTime()).toBeLessThanOrEqual(Date.now() + lifetime);
        const indexes = (await target.indexes(collection)).map(({ name, key, unique, expireAfterSeconds }) => ({ name, key, unique: unique ?? false, expireAfterSeconds }));
        expect(indexes).toEqual(
          expect.arrayContaining([
            { name: 'id_1', key: { id: 1 }, unique: true, expireAfterSeconds: undefined },
            { name: 'expiration_1', key: { expiration: 1 }, unique: false, expireAfterSeconds: 0 },
          ]),
        );
      } finally {
        await app.close();
      }
    });

    test('a document written the Flask-Session 0.8 way opens; an expired one the TTL monitor has not removed yet reads as absent', async () => {
      const client = target.client();
      const sessions = client.db(target.db).collection(collection);
      const sid = randomBytes(32).toString('base64url');
      const expiredSid = randomBytes(32).toString('base64url');
      const value = new StoreSerializer('msgpack').dumps({ _permanent: true, value: 'from flask' });
      // mongodb.py: update_one({"id": store_id}, {"$set": {"id": …, "val": …, "expiration": …}}, True)
      await sessions.updateOne({ id: `session:${sid}` }, { $set: { id: `session:${sid}`, val: value, expiration: new Date(Date.now() + 3600_000) } }, { upsert: true });
      await sessions.updateOne({ id: `session:${expiredSid}` }, { $set: { id: `session:${expiredSid}`, val: value, expiration: new Date(Date.now() - 1000) } }, { upsert: true });
      const app = await createApp({ imports: [SessionModule.forRoot({ interface: create(), secretKey: 'k' })], controllers: [ValueController] });
      try {
        expect((await request(app.getHttpServer()).get('/value/get').set('Cookie', `session=${sid}`)).body).toEqual({ value: 'from flask' });
        expect((await request(app.getHttpServer()).get('/value/get').set('Cookie', `session=${expiredSid}`)).body).toEqual({ value: null });
        expect(await documentOf(`session:${expiredSid}`)).toHaveLength(1); // still stored: only the TTL monitor removes it
      } finally {
        await app.close();
      }
    });

    test('compare-and-set writes only over the expected bytes, and never over a deleted or expired document', async () => {
      const store = primitives();
      const id = newStoreId();
      await store.replaceRecord(id, Buffer.from('a'), 60, soon());
      expect(await store.swapRecord(id, { value: Buffer.from('other') }, Buffer.from('b'), 60, soon())).toEqual({ swapped: false, current: { value: Buffer.from('a') } });
      expect(await store.swapRecord(id, { value: Buffer.from('a') }, Buffer.from('b'), 60, soon())).toEqual({ swapped: true });
      expect((await store.readRecord(id, soon()))?.value.toString()).toBe('b');
      await store.deleteRecord(id, soon());
      expect(await store.swapRecord(id, { value: Buffer.from('b') }, Buffer.from('c'), 60, soon())).toEqual({ swapped: false, current: null });
      expect(await documentOf(id)).toEqual([]);

      const expired = newStoreId();
      await target.insert(collection, { id: expired, val: Buffer.from('a'), expiration: new Date(Date.now() - 1000) });
      expect(await store.swapRecord(expired, { value: Buffer.from('a') }, Buffer.from('b'), 60, soon())).toEqual({ swapped: false, current: null });
      expect(bytesOf((await documentOf(expired))[0]!.val).toString()).toBe('a');
    });

    test('"only if absent" writes over nothing or an expired document, never over a live one', async () => {
      const store = primitives();
      const id = newStoreId();
      expect(await store.swapRecord(id, null, Buffer.from('new'), 60, soon())).toEqual({ swapped: true });
      expect(await store.swapRecord(id, null, Buffer.from('again'), 60, soon())).toEqual({ swapped: false, current: { value: Buffer.from('new') } });
      const expired = newStoreId();
      await target.insert(collection, { id: expired, val: Buffer.from('old'), expiration: new Date(Date.now() - 1000) });
      expect(await store.swapRecord(expired, null, Buffer.from('new'), 60, soon())).toEqual({ swapped: true });
      expect((await store.readRecord(expired, soon()))?.value.toString()).toBe('new');
      expect(await documentOf(expired)).toHaveLength(1);
    });

    test('a refresh moves a live expiry and never brings back a deleted or expired document', async () => {
      const store = primitives();
      const live = newStoreId();
      await store.replaceRecord(live, Buffer.from('x'), 10, soon());
      await store.refreshRecord(live, 3600, soon());
      expect((await documentOf(live))[0]!.expiration.getTime()).toBeGreaterThan(Date.now() + 3000_000);
      const gone = newStoreId();
      await store.refreshRecord(gone, 3600, soon());
      expect(await documentOf(gone)).toEqual([]);
      const expired = newStoreId();
      const past = new Date(Date.now() - 5000);
      await target.insert(collection, { id: expired, val: Buffer.from('x'), expiration: past });
      await store.refreshRecord(expired, 3600, soon());
      expect((await documentOf(expired))[0]!.expiration.getTime()).toBe(past.getTime());
    });

    test("every write that reaches the server after its deadline is refused by the server's clock ($$NOW)", async () => {
      const store = primitives({ storeTimeout: 2000 });
      const id = newStoreId();
      await store.replaceRecord(id, Buffer.from('kept'), 60, soon());
      const [stored] = await documentOf(id);
      const refused = /the write reached MongoDB after the request's deadline and was refused/;
      await expect(store.swapRecord(id, { value: Buffer.from('kept') }, Buffer.from('late swap'), 3600, late())).rejects.toThrow(refused);
      await expect(store.refreshRecord(id, 3600, late())).rejects.toThrow(refused);
      await expect(store.replaceRecord(id, Buffer.from('late replace'), 3600, late())).rejects.toThrow(refused);
      await expect(store.deleteRecord(id, late())).rejects.toThrow(refused);
      expect(await documentOf(id)).toEqual([stored]);
    });

    test('an upsert that has to insert after its deadline leaves a document without val, long expired, that no read returns', async () => {
      const store = primitives({ storeTimeout: 2000 });
      const id = newStoreId();
      await store.readRecord(id, soon()); // the indexes made, so that the late call is sent at once
      await expect(store.replaceRecord(id, Buffer.from('late new session'), 3600, late())).rejects.toThrow(/after the request's deadline/);
      const [tombstone, ...others] = await documentOf(id);
      expect(others).toEqual([]);
      expect(Object.keys(tombstone!).sort()).toEqual(['_id', 'expiration', 'id']);
      expect(tombstone!.expiration.getTime()).toBe(0);
      expect(await store.readRecord(id, soon())).toBeNull();
      // A later write in time takes the document over.
      await store.replaceRecord(id, Buffer.from('in time'), 60, soon());
      expect((await store.readRecord(id, soon()))?.value.toString()).toBe('in time');
    });

    test('documents sharing an id (left by Flask-Session 0.8) stop the set-up with a 503 naming them; removing them recovers without a restart', async () => {
      const id = newStoreId();
      await target.insert(collection, { id, val: Buffer.from('one'), expiration: new Date(Date.now() + 60_000) });
      await target.insert(collection, { id, val: Buffer.from('two'), expiration: new Date(Date.now() + 60_000) });
      const logger = new RecordingLogger();
      const app = await createApp({ imports: [SessionModule.forRoot({ interface: create(), secretKey: 'k' })], controllers: [ValueController] }, logger);
      try {
        await request(app.getHttpServer()).get('/value/set?value=x').expect(503);
        expect(logger.messages('error').join('\n')).toMatch(
          new RegExp(`the unique index on "id" of ${target.db}\\.${collection} cannot be created: several documents share an id \\(.*E11000 duplicate key error`),
        );
        await target.remove(collection, id);
        // A failed set-up is tried again after 5 s.
        await new Promise((resolve) => setTimeout(resolve, 5100));
        const set = await request(app.getHttpServer()).get('/value/set?value=back').expect(200);
        expect((await request(app.getHttpServer()).get('/value/get').set('Cookie', cookiePair(set))).body).toEqual({ value: 'back' });
      } finally {
        await app.close();
      }
    }, 20_000);

    test("a login or a role the server refuses fails the bootstrap, naming what to fix; a role taken away later answers 500 (the developer's to fix), not 503", async () => {
      const bootstrap = (client: MongoClient) =>
        createApp({ imports: [SessionModule.forRoot({ interface: create({ client }), secretKey: 'k' })], controllers: [ValueController] });
      const wrongPassword = await target.user('readWrite', { wrongPassword: true });
      await expect(bootstrap(wrongPassword.client)).rejects.toThrow(
        /option "client": MongoDB refused the client's login: Authentication failed\. Check the user name, the password and authSource/,
      );
      const reader = await target.user('read');
      await expect(bootstrap(reader.client)).rejects.toThrow(
        new RegExp(`option "client": MongoDB refused the client's user a command: not authorized on ${target.db} to execute command \\{ createIndexes: .*readWrite on the database ${target.db}`),
      );

      const user = await target.user('readWrite');
      const logger = new RecordingLogger();
      const app = await createApp({ imports: [SessionModule.forRoot({ interface: create({ client: user.client }), secretKey: 'k' })], controllers: [ValueController] }, logger);
      try {
        const set = await request(app.getHttpServer()).get('/value/set?value=a').expect(200);
        await user.setRole('read');
        const refused = await request(app.getHttpServer()).get('/value/set?value=b').set('Cookie', cookiePair(set));
        expect(refused.status).toBe(500);
        expect(logger.messages('error').join('\n')).toMatch(/MongoDB refused the client's user a command: not authorized on .* to execute command \{ update: .*readWrite/);
        // What the user may still do works: the read, and the stored value is the one written before.
        expect((await request(app.getHttpServer()).get('/value/get').set('Cookie', cookiePair(set)).expect(200)).body).toEqual({ value: 'a' });
      } finally {
        await app.close();
      }
    });

    test('a user who may not create indexes uses the ones an administrator made; without them the bootstrap fails, saying which to make', async () => {
      const user = await target.user('readWrite but not createIndex');
      const bootstrap = () => createApp({ imports: [SessionModule.forRoot({ interface: create({ client: user.client }), secretKey: 'k' })], controllers: [ValueController] });
      await expect(bootstrap()).rejects.toThrow(
        /MongoDB refused the client's user a command: not authorized on .* createIndexes.*\{ id: 1 \} unique and \{ expiration: 1 \} with expireAfterSeconds 0/,
      );
      await user.createIndexes(collection);
      const { app, logger } = await bootstrapLogged(user.client, collection);
      try {
        const set = await request(app.getHttpServer()).get('/value/set?value=a').expect(200);
        expect((await request(app.getHttpServer()).get('/value/get').set('Cookie', cookiePair(set)).expect(200)).body).toEqual({ value: 'a' });
        expect(logger.messages('warn').join('\n')).not.toMatch(/is hidden/);
      } finally {
        await app.close();
      }
      // A hidden unique index on "id" still keeps ids unique, so it is accepted, with a warning that no query uses it.
      const hiddenCollection = `${collection}_hidden`;
      await user.createIndexes(hiddenCollection, { hiddenId: true });
      const onHidden = await bootstrapLogged(user.client, hiddenCollection);
      try {
        const set = await request(onHidden.app.getHttpServer()).get('/value/set?value=b').expect(200);
        expect((await request(onHidden.app.getHttpServer()).get('/value/get').set('Cookie', cookiePair(set)).expect(200)).body).toEqual({ value: 'b' });
        expect(onHidden.logger.messages('warn').join('\n')).toMatch(hiddenWarning(hiddenCollection));
      } finally {
        await onHidden.app.close();
      }
      // The indexes there do not make a read-only user one the store can work with.
      const reader = await target.user('read');
      await reader.createIndexes(collection);
      await expect(
        createApp({ imports: [SessionModule.forRoot({ interface: create({ client: reader.client }), secretKey: 'k' })], controllers: [ValueController] }),
      ).rejects.toThrow(new RegExp(`option "client": the client's user may not insert, update, remove on ${target.db}\\.${collection} .*readWrite`));
    });

    test("a unique index on id that an administrator hid is reported at bootstrap where the user may create indexes too (createIndex leaves it hidden)", async () => {
      const user = await target.user('readWrite');
      const hiddenCollection = `${collection}_hidden_rw`;
      await user.createIndexes(hiddenCollection, { hiddenId: true });
      const onHidden = await bootstrapLogged(user.client, hiddenCollection);
      try {
        expect(onHidden.logger.messages('warn').join('\n')).toMatch(hiddenWarning(hiddenCollection));
        const set = await request(onHidden.app.getHttpServer()).get('/value/set?value=c').expect(200);
        expect((await request(onHidden.app.getHttpServer()).get('/value/get').set('Cookie', cookiePair(set)).expect(200)).body).toEqual({ value: 'c' });
      } finally {
        await onHidden.app.close();
      }
      // The index the store makes itself is not hidden: no warning.
      const visible = await bootstrapLogged(user.client, `${collection}_visible_rw`);
      try {
        expect(visible.logger.messages('warn').join('\n')).not.toMatch(/is hidden/);
      } finally {
        await visible.app.close();
      }
    });

    test('a custom database, collection and key prefix', async () => {
      const app = await createApp({
        imports: [SessionModule.forRoot({ interface: create({ collection: `${collection}_shop`, keyPrefix: 'shop:' }), secretKey: 'k' })],
        controllers: [ValueController],
      });
      try {
        const set = await request(app.getHttpServer()).get('/value/set?value=cart').expect(200);
        expect((await target.documents(`${collection}_shop`)).map((d) => d.id)).toEqual([`shop:${set.body.sid}`]);
      } finally {
        await app.close();
      }
    });
  });
}
