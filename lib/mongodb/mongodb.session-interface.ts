import type { Collection, Db, Document, Filter, MongoClient } from 'mongodb';
import {
  ServerSideSessionInterface,
  type ServerSideSessionOptions,
  type StoreCall,
  type StoredRecord,
  type SwapOutcome,
} from '../server-side/server-side.session-interface.js';
import { SwapQueue } from '../server-side/swap-queue.js';
import { ServerClock } from '../server-side/server-clock.js';
import { SessionConfigurationError, describeOptionValue as describe } from '../session.errors.js';

/** @publicApi */
export interface MongoDBSessionOptions extends ServerSideSessionOptions {
  /**
   * A `MongoClient` of the official `mongodb` driver (connected or not: the
   * interface connects it at first use, and again after a failed first
   * connection, which leaves the driver's client closed). The interface never
   * closes it. Flask-Session: `SESSION_MONGODB`. Required.
   */
  client: MongoClient;
  /** The database. Default `'flask_session'` (Flask-Session's `SESSION_MONGODB_DB`). */
  db?: string;
  /** The collection. Default `'sessions'` (Flask-Session's `SESSION_MONGODB_COLLECT`). */
  collection?: string;
}

/** A session document, in Flask-Session's layout. `val` is what the driver returns for BinData: a bson `Binary`. */
interface SessionDocument {
  id: string;
  val?: BinaryLike;
  expiration?: Date | null;
}
type BinaryLike = Uint8Array | { buffer: Uint8Array; position: number };

/** A failed set-up (indexes) is tried again by a request at most this often. */
const SET_UP_RETRY_MS = 5000;
/** The server's clock is measured again this often (in the background of a write). */
const CLOCK_MEASURE_EVERY_MS = 10 * 60_000;
/** Written as the expiry of a document a late upsert had to insert: long expired, so no read returns it and TTL removes it. */
const EPOCH = new Date(0);
/** Node's codes for a connection that cannot be made at all. */
const CANNOT_CONNECT = /\b(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND)\b/;
/** MongoDB's error codes met at set-up. */
const DUPLICATE_KEY = 11000;
const INDEX_CONFLICTS = new Set([85, 86]); // IndexOptionsConflict, IndexKeySpecsConflict
const NAMESPACE_NOT_FOUND = 26;
/** MongoDB's refusals of the developer's configuration: Unauthorized (a missing role, or no login where one is required), AuthenticationFailed. */
const UNAUTHORIZED = 13;
const AUTHENTICATION_FAILED = 18;
/** Atlas's own code (8000, AtlasError) for a refused login ("bad auth") and, on its shared tiers, a refused command ("not allowed to do action"); other 8000s (quotas) are not these. */
const ATLAS_ERROR = 8000;
/** The driver's errors for a client configured wrong: an auth mechanism (or compressor) whose package is missing, credentials it lacks. */
const CLIENT_MISTAKES = new Set(['MongoMissingDependencyError', 'MongoMissingCredentialsError']);

type Waiter = { resolve(): void; reject(error: Error): void };

/**
 * Sessions in MongoDB, in Flask-Session's layout: one document per session in
 * `db`.`collection`, `{ id: keyPrefix + sid, val: BinData (the msgpack or JSON
 * of the session dict), expiration: Date }`.
 *
 * - At bootstrap (or first use) it creates a unique index on `id` (Flask-Session 0.8 has none,
 *   so its reads scan the collection and concurrent first writes can
 *   duplicate a session) and the TTL index `expiration_1` (`expireAfterSeconds:
 *   0`, as Flask-Session creates it). The TTL monitor deletes expired
 *   documents about once a minute, so every read checks `expiration` too.
 *   Existing duplicate ids stop it: requests answer 503, the log naming the
 *   cause, until they are removed (see the README).
 * - Writes that may create a document are one `upsert`; a changed session is
 *   written by a filtered `updateOne({ id, val: <as read> })` (compare-and-set),
 *   a refresh only matches a live document: a logout is never undone and a
 *   refresh never brings a session back. Nothing is select-then-insert.
 * - Every write carries the request's deadline in the server's clock (measured
 *   with `hello`): `$expr` with `$$NOW` in the filter of conditional writes,
 *   `$cond` on `$$NOW` in the pipeline of upserts. A write that reaches the
 *   server after its deadline changes nothing, except that an upsert that has
 *   to insert still inserts a document, left without `val` and already
 *   expired (no read returns it; the TTL monitor removes it).
 * - No store call waits for a connection: while every server refused its last
 *   connection a request fails at once, naming the address.
 *
 * @example
 * const client = new MongoClient(process.env.MONGODB_URL ?? 'mongodb://127.0.0.1:27017');
 * SessionModule.forRoot({ interface: new MongoDBSessionInterface({ client }), secretKey })
 *
 * @publicApi
 */
export class MongoDBSessionInterface extends ServerSideSessionInterface {
  protected readonly storeName = 'MongoDB';
  readonly client: MongoClient;
  readonly dbName: string;
  readonly collectionName: string;
  private readonly db: Db;
  private readonly collection: Collection<SessionDocument>;
  /** How long before the request's deadline a write must have run, to be answered within it. */
  private readonly margin: number;
  /** The server's clock compared with ours, from `hello`'s `localTime`. */
  private readonly serverClock = new ServerClock(1000);
  private clockMeasuredAt = 0;
  private measuring?: Promise<void>;
  /** Servers heard of (by address), and those whose last connection attempt was refused. */
  private readonly servers = new Set<string>();
  private readonly refused = new Map<string, Error>();
  /** The client has no usable topology: never connected, or closed after a failed first connection. */
  private needsConnect = true;
  private connecting?: Promise<void>;
  private readonly waiters = new Set<Waiter>();
  /** A ping that makes the driver check a refused server again soon, at most one at a time. */
  private probing = false;
  private setUp?: Promise<void>;
  private setUpFailure?: { error: Error; at: number };
  private readonly swaps = new SwapQueue();

  constructor(options: MongoDBSessionOptions) {
    super(options, ['client', 'db', 'collection']);
    const fail = SessionConfigurationError.thrower('MongoDBSessionInterface');
    const client = options.client as unknown;
    if (!isMongoClient(client)) fail('client', expectedClient(client));
    const dbName = options.db ?? 'flask_session';
    // MongoDB's rules for database names (the Unix set, and Windows's where they differ).
    if (typeof dbName !== 'string' || !/^[^/\\. "$*<>:|?\0]{1,63}$/.test(dbName)) {
      fail('db', `expected a MongoDB database name (1 to 63 characters, none of / \\ . space " $ * < > : | ?), got ${describe(dbName)}.`);
    }
    const collectionName = options.collection ?? 'sessions';
    if (typeof collectionName !== 'string' || !/^[^$\0]{1,200}$/.test(collectionName) || collectionName.startsWith('system.')) {
      fail('collection', `expected a MongoDB collection name (no $, not system.*), got ${describe(collectionName)}.`);
    }
    this.client = options.client;
    this.dbName = dbName;
    this.collectionName = collectionName;
    // Neither call does any I/O.
    this.db = this.client.db(dbName);
    this.collection = this.db.collection<SessionDocument>(collectionName);
    this.margin = Math.min(100, Math.max(5, this.storeTimeout / 10));
    this.watchServers();
  }

  /**
   * Nest calls this at bootstrap (when the interface is a provider, as
   * `SessionModule.forRoot` makes it): connects the client and creates the
   * indexes. A login or a command the server refuses (the connection
   * string's credentials, the user's roles) fails the bootstrap, naming what
   * to fix; a server that cannot be reached, or does not answer within 5 ×
   * `storeTimeout`, is only logged (session requests answer 503 until it
   * does), as are duplicate ids that stop the unique index.
   */
  async onModuleInit(): Promise<void> {
    await this.checkAtBootstrap('MongoDB', (deadline) => this.ready({ deadline }));
  }

  /**
   * A refused login or command is the developer's configuration to fix (the
   * credentials, the user's roles): a 500 naming it, never a 503 "try again".
   */
  protected override configurationFailure(error: unknown): SessionConfigurationError | undefined {
    const refused = mongoRefusal(error);
    if (!refused) return undefined;
    const fail = (problem: string) => SessionConfigurationError.create('client', problem, 'MongoDBSessionInterface');
    const message = refused.message.replace(/\.$/, '');
    if (refused.kind === 'client') return fail(`the MongoClient cannot connect as configured: ${message}.`);
    if (refused.kind === 'no login') {
      return fail(`MongoDB requires a login, and the client has no credentials: ${message}. Put the user and password in the connection string (mongodb://user:password@host/?authSource=…).`);
    }
    if (refused.kind === 'login') {
      return fail(`MongoDB refused the client's login: ${message}. Check the user name, the password and authSource in the connection string.`);
    }
    const namespace = `${this.dbName}.${this.collectionName}`;
    return fail(
      `MongoDB refused the client's user a command: ${message}. The store needs find, insert, update, remove and createIndex on ` +
        `${namespace}: MongoDB's built-in role readWrite on the database ${this.dbName}. A user without createIndex can do ` +
        `with indexes an administrator made: { id: 1 } unique and { expiration: 1 } with expireAfterSeconds 0 (and listIndexes to find them).`,
    );
  }

  protected async readRecord(storeId: string, call: StoreCall): Promise<StoredRecord | null> {
    await this.ready(call);
    return liveRecord(await this.find(storeId));
  }

  protected swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome> {
    return this.swaps.run(storeId, expected, value, call, () => this.conditionalWrite(storeId, expected, value, ttlSeconds, call));
  }

  /** The compare-and-set itself: a filtered updateOne on `val` as expected, or an upsert only if absent. */
  private async conditionalWrite(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome> {
    if (!expected) return this.insertIfAbsent(storeId, value, ttlSeconds, call);
    for (let attempt = 0; ; attempt++) {
      await this.ready(call);
      const { matchedCount } = await this.collection.updateOne(
        { id: storeId, val: expected.value, ...liveFilter(), $expr: this.inTime(call) } as Filter<SessionDocument>,
        { $set: { val: value, expiration: expiryDate(ttlSeconds) } },
      );
      if (matchedCount === 1) return { swapped: true };
      const current = liveRecord(await this.find(storeId));
      if (!current || !current.value.equals(expected.value)) return { swapped: false, current };
      // The record is still as expected: only the deadline refused the write.
      await this.refusedAsLate(call, attempt);
    }
  }

  protected async replaceRecord(storeId: string, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<void> {
    await this.upsert(storeId, value, ttlSeconds, call, true);
  }

  protected async deleteRecord(storeId: string, call: StoreCall): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      await this.ready(call);
      const { deletedCount } = await this.collection.deleteOne({ id: storeId, $expr: this.inTime(call) } as Filter<SessionDocument>);
      if (deletedCount === 1 || !(await this.find(storeId))) return;
      await this.refusedAsLate(call, attempt);
    }
  }

  protected async refreshRecord(storeId: string, ttlSeconds: number, call: StoreCall): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      await this.ready(call);
      // Only a live document: an expired or deleted session is not brought back.
      const { matchedCount } = await this.collection.updateOne(
        { id: storeId, ...liveFilter(), $expr: this.inTime(call) } as Filter<SessionDocument>,
        { $set: { expiration: expiryDate(ttlSeconds) } },
      );
      if (matchedCount === 1 || !liveRecord(await this.find(storeId))) return;
      await this.refusedAsLate(call, attempt);
    }
  }

  /** "Only if absent" (or expired): an upsert whose pipeline writes only when there is no live document. */
  private async insertIfAbsent(storeId: string, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome> {
    const after = await this.upsert(storeId, value, ttlSeconds, call, false);
    return after === true ? { swapped: true } : { swapped: false, current: after };
  }

  /**
   * One `findOneAndUpdate(…, { upsert: true })` whose update pipeline writes
   * `val` and `expiration` only while `$$NOW` is within the deadline (and,
   * unless `replace`, only over a document that is not live); otherwise it
   * keeps the document as it is. The document it returns tells which: our
   * bytes with our expiry, to the millisecond, mean written. True when written, else the
   * live record that stopped it (for "only if absent").
   */
  private async upsert(storeId: string, value: Buffer, ttlSeconds: number, call: StoreCall, replace: boolean): Promise<true | StoredRecord | null> {
    for (let attempt = 0; ; attempt++) {
      await this.ready(call);
      const expiration = expiryDate(ttlSeconds);
      const inTime = { $lte: ['$$NOW', this.serverDeadline(call)] };
      const write = replace ? inTime : { $and: [inTime, notLiveExpression()] };
      const after = await this.collection.findOneAndUpdate(
        { id: storeId },
        [
          {
            $set: {
              val: { $cond: [write, value, '$val'] },
              // A document the upsert inserts too late gets no val and an expiry long past.
              expiration: { $cond: [write, expiration, { $cond: [{ $eq: [{ $type: '$val' }, 'missing'] }, EPOCH, '$expiration'] }] },
            },
          },
        ],
        { upsert: true, returnDocument: 'after', projection: { _id: 0, val: 1, expiration: 1 } },
      );
      const current = liveRecord(after);
      // Our bytes and our expiry (to the millisecond): written, by this call or one identical to it.
      if (current?.value.equals(value) && after?.expiration instanceof Date && after.expiration.getTime() === expiration.getTime()) return true;
      if (!replace && current) return current;
      await this.refusedAsLate(call, attempt);
    }
  }

  private find(storeId: string): Promise<SessionDocument | null> {
    return this.collection.findOne({ id: storeId }, { projection: { _id: 0, val: 1, expiration: 1 }, readPreference: 'primary' });
  }

  /** `$$NOW` at or before the request's deadline, in the server's clock. */
  private inTime(call: StoreCall): Document {
    return { $lte: ['$$NOW', this.serverDeadline(call)] };
  }

  private serverDeadline(call: StoreCall): Date {
    if (Date.now() - this.clockMeasuredAt > CLOCK_MEASURE_EVERY_MS) this.measureClock().catch(() => undefined);
    return new Date(Math.floor(call.deadline - this.margin + this.serverClock.offset));
  }

  /**
   * A write was refused as too late. When our own clock says there was time
   * left, the clock offset was wrong: it is measured again and the write tried
   * once more. Otherwise the write failed, honestly.
   */
  private async refusedAsLate(call: StoreCall, attempt: number): Promise<void> {
    if (attempt > 0 || Date.now() >= call.deadline - this.margin) {
      throw new Error(`the write reached MongoDB after the request's deadline and was refused (storeTimeout ${this.storeTimeout} ms)`);
    }
    await this.measureClock();
  }

  /** The server's clock minus ours, from `hello`'s `localTime` and the midpoint of the round trip. */
  private measureClock(): Promise<void> {
    return (this.measuring ??= (async () => {
      try {
        const sentAt = Date.now();
        const reply = await this.db.command({ hello: 1 });
        const receivedAt = Date.now();
        this.clockMeasuredAt = receivedAt;
        if (reply.localTime instanceof Date) this.serverClock.sample(reply.localTime.getTime(), sentAt, receivedAt);
      } finally {
        this.measuring = undefined;
      }
    })());
  }

  /**
   * Resolves once a store call may be sent: fails at once while every server
   * refused its last connection (naming it), connects the client when it has
   * no usable topology, creates the indexes once; and never lets a call go
   * out after the request's deadline (a late connection, a slow set-up).
   */
  private async ready(call: StoreCall): Promise<void> {
    this.throwIfUnreachable();
    if (this.needsConnect) await this.connect();
    await this.setUpOnce();
    if (Date.now() >= call.deadline) throw new Error("the request's store budget ran out before the command was sent");
  }

  private throwIfUnreachable(): void {
    const refusal = this.unreachable();
    if (!refusal) return;
    this.probe();
    throw new Error(`MongoDB cannot be reached: ${refusal.message}`);
  }

  /** The last refusal, when every server heard of refused its last connection. */
  private unreachable(): Error | undefined {
    if (this.servers.size === 0) return undefined;
    for (const address of this.servers) if (!this.refused.has(address)) return undefined;
    return this.refused.values().next().value;
  }

  /**
   * `client.connect()`, shared by the requests meanwhile, and left as soon as
   * a server refuses the connection. The driver's own attempt goes on (until
   * its serverSelectionTimeoutMS); one that fails closes the client's topology,
   * and the next request connects again.
   */
  private connect(): Promise<void> {
    if (!this.connecting) {
      const connecting = this.client.connect().then(
        () => {
          this.needsConnect = false;
        },
        (error: unknown) => {
          throw new Error(`connecting to MongoDB failed: ${(error as Error)?.message}`, { cause: error });
        },
      );
      this.connecting = connecting;
      connecting.then(
        () => this.settleWaiters(),
        (error: Error) => this.settleWaiters(error),
      ).finally(() => {
        if (this.connecting === connecting) this.connecting = undefined;
      });
    }
    return new Promise<void>((resolve, reject) => this.waiters.add({ resolve, reject }));
  }

  private settleWaiters(error?: Error): void {
    for (const waiter of this.waiters) (error ? waiter.reject(error) : waiter.resolve());
    this.waiters.clear();
  }

  /** Keeps the driver checking a refused server every half second (its minHeartbeatFrequencyMS), so a request finds it back soon. */
  private probe(): void {
    if (this.probing || this.needsConnect) return;
    this.probing = true;
    this.db
      .command({ ping: 1 })
      .catch(() => undefined)
      .finally(() => (this.probing = false));
  }

  /** Follows the driver's monitoring events (public API): which servers refuse connections, and whether the topology closed. */
  private watchServers(): void {
    const client = this.client as unknown as { on(event: string, listener: (event: never) => void): void };
    client.on('serverHeartbeatSucceeded', (event: { connectionId: string }) => {
      this.servers.add(event.connectionId);
      this.refused.delete(event.connectionId);
    });
    client.on('serverHeartbeatFailed', (event: { connectionId: string; failure: Error }) => {
      this.servers.add(event.connectionId);
      if (!isRefusal(event.failure)) return;
      this.refused.set(event.connectionId, event.failure);
      const refusal = this.unreachable();
      if (refusal) this.settleWaiters(new Error(`MongoDB cannot be reached: ${refusal.message}`));
    });
    client.on('serverClosed', (event: { address: string }) => {
      this.servers.delete(event.address);
      this.refused.delete(event.address);
    });
    client.on('topologyClosed', () => {
      // A failed first connection (or close()) leaves a client whose operations all fail ("Topology is closed"): connect again.
      this.needsConnect = true;
      this.servers.clear();
      this.refused.clear();
    });
  }

  /** The indexes and the clock offset, once; a failure is reported to the requests and tried again after a while. */
  private setUpOnce(): Promise<void> {
    const failure = this.setUpFailure;
    if (failure && Date.now() - failure.at < SET_UP_RETRY_MS) return Promise.reject(failure.error);
    return (this.setUp ??= this.createIndexes().then(
      () => {
        this.setUpFailure = undefined;
      },
      (error: Error) => {
        this.setUp = undefined;
        this.setUpFailure = { error, at: Date.now() };
        throw error;
      },
    ));
  }

  private async createIndexes(): Promise<void> {
    const namespace = `${this.dbName}.${this.collectionName}`;
    await this.measureClock();
    try {
      await this.collection.createIndex({ id: 1 }, { unique: true });
    } catch (error) {
      const code = (error as { code?: number })?.code;
      if (mongoRefusal(error)?.kind === 'privilege') return this.useExistingIndexes(namespace, error);
      if (code === DUPLICATE_KEY) {
        throw new Error(
          `the unique index on "id" of ${namespace} cannot be created: several documents share an id (${(error as Error).message}); ` +
            'Flask-Session 0.8 creates no such index and can leave duplicates. Remove them (the README shows how); no restart is needed',
        );
      }
      if (code !== undefined && INDEX_CONFLICTS.has(code)) {
        throw new Error(`an index on "id" of ${namespace} already exists with other options (${(error as Error).message}): drop it so that the unique index can be created`);
      }
      throw new Error(`creating the unique index on "id" of ${namespace} failed: ${(error as Error)?.message}`, { cause: error });
    }
    try {
      await this.collection.createIndex({ expiration: 1 }, { expireAfterSeconds: 0 });
    } catch (error) {
      const code = (error as { code?: number })?.code;
      if (code === undefined || !INDEX_CONFLICTS.has(code)) {
        throw new Error(`creating the TTL index on "expiration" of ${namespace} failed: ${(error as Error)?.message}`, { cause: error });
      }
      this.logger.warn(
        `${namespace} already has an index on "expiration" with other options (${(error as Error).message}); going on: ` +
          'expired sessions are never read, but MongoDB removes them only as that index says.',
      );
    }
    // createIndex does nothing where an administrator made the same index hidden (hiding is not part of an
    // index's identity): look, and say so. Only a warning rides on it, so a failing listIndexes is let go.
    const indexes = await this.collection.indexes().catch(() => undefined);
    if (indexes) this.warnIfIdIndexHidden(namespace, indexes);
  }

  /**
   * A user who may not create indexes (an administrator made them): the
   * indexes there do, if they are the two the store needs and the user may
   * do the rest (find, insert, update, remove); otherwise the refusal of
   * `createIndex` stands, or the missing actions are named. Read with
   * `listIndexes` and `connectionStatus` (in MongoDB's `read` role).
   */
  private async useExistingIndexes(namespace: string, refusal: unknown): Promise<void> {
    let indexes: ExistingIndex[];
    try {
      indexes = await this.collection.indexes();
    } catch (error) {
      if (mongoRefusal(error)) throw refusal;
      if ((error as { code?: number })?.code !== NAMESPACE_NOT_FOUND) throw error; // an outage: tried again later
      indexes = []; // no collection yet: no index either
    }
    const hasIdIndex = indexes.some(isUniqueIdIndex);
    const expiration = indexes.find((index) => isPlainIndexOn('expiration', index));
    if (!hasIdIndex || !expiration) throw refusal;
    const missing = await this.missingActions(['find', 'insert', 'update', 'remove']);
    if (missing.length > 0) {
      throw SessionConfigurationError.create(
        'client',
        `the client's user may not ${missing.join(', ')} on ${namespace} (nor create indexes there); the store needs find, insert, update and remove: ` +
          `MongoDB's built-in role readWrite on the database ${this.dbName}.`,
        'MongoDBSessionInterface',
      );
    }
    if (expiration.expireAfterSeconds !== 0) {
      this.logger.warn(
        `${namespace}'s index on "expiration" is not the TTL index Flask-Session makes (expireAfterSeconds: 0): expired sessions are never read, ` +
          'but MongoDB removes them only as that index says.',
      );
    }
    this.warnIfIdIndexHidden(namespace, indexes);
    this.logger.log(`The client's user may not create indexes on ${namespace}; the unique index on "id" and the index on "expiration" there are used.`);
  }

  /**
   * Warns when the only unique index on `id` is hidden. MongoDB still keeps
   * ids unique with it (and a hidden TTL index still expires documents, so a
   * hidden index on `expiration` changes nothing here), but no query uses
   * it, so every lookup by id scans every session.
   */
  private warnIfIdIndexHidden(namespace: string, indexes: ExistingIndex[]): void {
    const unique = indexes.filter(isUniqueIdIndex);
    if (unique.length === 0 || unique.some((index) => !index.hidden)) return;
    const index = JSON.stringify(unique[0]!.name ?? unique[0]!.key);
    const unhide = `db.getSiblingDB(${JSON.stringify(this.dbName)}).getCollection(${JSON.stringify(this.collectionName)}).unhideIndex(${index})`;
    this.logger.warn(
      `${namespace}'s unique index on "id" (${index}) is hidden: MongoDB still keeps ids unique, but no query uses the index, ` +
        `so every session read and write scans every session stored. An administrator can unhide it: ${unhide}`,
    );
  }

  /** Which of `actions` the client's user does not hold on the collection (connectionStatus, showPrivileges). */
  private async missingActions(actions: string[]): Promise<string[]> {
    const status = await this.db.command({ connectionStatus: 1, showPrivileges: true });
    const privileges: Array<{ resource?: { db?: string; collection?: string; anyResource?: boolean }; actions?: string[] }> =
      status.authInfo?.authenticatedUserPrivileges ?? [];
    const held = new Set<string>();
    for (const { resource = {}, actions: granted = [] } of privileges) {
      const onDb = resource.db === this.dbName || resource.db === '';
      const onCollection = resource.collection === this.collectionName || resource.collection === '';
      if (resource.anyResource || (onDb && onCollection)) for (const action of granted) held.add(action);
    }
    return actions.filter((action) => !held.has(action));
  }
}

/** An index as `listIndexes` describes it. */
interface ExistingIndex {
  name?: string;
  key: Document;
  hidden?: boolean;
  unique?: boolean;
  expireAfterSeconds?: number;
  partialFilterExpression?: Document;
  collation?: { locale?: string };
}

/**
 * A single-field ascending or descending index on `field` that plain
 * queries use and whose uniqueness covers every document: no partial filter,
 * no collation but the simple one (a case-insensitive one would make two sids
 * one).
 */
function isPlainIndexOn(field: string, index: ExistingIndex): boolean {
  const keys = Object.keys(index.key);
  return (
    keys.length === 1 &&
    keys[0] === field &&
    Math.abs(Number(index.key[field])) === 1 &&
    index.partialFilterExpression === undefined &&
    (index.collation === undefined || index.collation.locale === 'simple')
  );
}

/** The unique index on `id` the store needs (plain, as {@link isPlainIndexOn} says). */
function isUniqueIdIndex(index: ExistingIndex): boolean {
  return isPlainIndexOn('id', index) && index.unique === true;
}

/** Matches a document that has not expired (one without `expiration` never does, as for the TTL index). */
function liveFilter(): Document {
  return { $or: [{ expiration: { $gt: new Date() } }, { expiration: null }] };
}

/** The pipeline's test for "no live document": no `val` (none, or a late insert), or an `expiration` now past. */
function notLiveExpression(): Document {
  return {
    $or: [
      { $eq: [{ $type: '$val' }, 'missing'] },
      { $and: [{ $eq: [{ $type: '$expiration' }, 'date'] }, { $lte: ['$expiration', new Date()] }] },
    ],
  };
}

/** The record of a document, or null when there is none, it has no `val`, or it has expired (the TTL monitor runs about once a minute). */
function liveRecord(document: Pick<SessionDocument, 'val' | 'expiration'> | null): StoredRecord | null {
  if (!document?.val) return null;
  const { expiration } = document;
  if (expiration instanceof Date && expiration.getTime() <= Date.now()) return null;
  return { value: bytesOf(document.val) };
}

/** The bytes of BinData as the driver returns it: a bson `Binary` (or a Buffer with `promoteBuffers`). */
function bytesOf(value: BinaryLike): Buffer {
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return Buffer.from(value.buffer.buffer, value.buffer.byteOffset, value.position);
}

/** The expiry `ttlSeconds` from now, as Flask-Session writes it (a UTC date, milliseconds). */
function expiryDate(ttlSeconds: number): Date {
  return new Date(Date.now() + ttlSeconds * 1000);
}

/**
 * The refusal of the developer's configuration in `error` or its causes (the
 * interface wraps what the driver throws; the driver's server selection error
 * carries the server's): a login refused, no login given where one is
 * required, a command the user's roles do not allow, or a client that cannot
 * connect as configured.
 */
function mongoRefusal(error: unknown): { kind: 'login' | 'no login' | 'privilege' | 'client'; message: string } | undefined {
  for (let cause = error, depth = 0; cause && depth < 5; cause = (cause as { cause?: unknown }).cause, depth++) {
    const { code, message, name } = cause as { code?: unknown; message?: unknown; name?: unknown };
    const text = String(message);
    if (code === AUTHENTICATION_FAILED || (code === ATLAS_ERROR && /\bbad auth\b/i.test(text))) return { kind: 'login', message: text };
    if (code === UNAUTHORIZED) return { kind: /requires authentication/i.test(text) ? 'no login' : 'privilege', message: text };
    if (code === ATLAS_ERROR && /not allowed to do action/i.test(text)) return { kind: 'privilege', message: text };
    if (typeof name === 'string' && CLIENT_MISTAKES.has(name)) return { kind: 'client', message: text };
  }
  return undefined;
}

function isRefusal(error: unknown): boolean {
  const cause = (error as { cause?: { code?: string } })?.cause;
  return CANNOT_CONNECT.test(String((error as Error)?.message)) || (cause?.code !== undefined && CANNOT_CONNECT.test(cause.code));
}

function isMongoClient(client: unknown): boolean {
  const candidate = client as { db?: unknown; connect?: unknown; on?: unknown } | null;
  return candidate !== null && typeof candidate === 'object' && typeof candidate.db === 'function' && typeof candidate.connect === 'function' && typeof candidate.on === 'function';
}

function expectedClient(client: unknown): string {
  if (client === undefined) return "required: a MongoClient of the mongodb driver, e.g. new MongoClient('mongodb://127.0.0.1:27017').";
  if (typeof client === 'string') return `expected a MongoClient, got the string ${JSON.stringify(client)}: pass new MongoClient(${JSON.stringify(client)}).`;
  const candidate = client as { collection?: unknown; insertOne?: unknown } | null;
  if (candidate && typeof candidate.collection === 'function') return 'this looks like a Db; pass the MongoClient (and the database name as the db option).';
  if (candidate && typeof candidate.insertOne === 'function') return 'this looks like a Collection; pass the MongoClient (and the db and collection options).';
  return 'expected a MongoClient of the official mongodb driver.';
}
