/**
 * A STAND-IN for a MongoDB server and the driver's `MongoClient`, in this
 * process, for the tests of MongoDBSessionInterface: no MongoDB server can be
 * installed on these machines (issue 9). It implements exactly the calls the
 * interface makes, with MongoDB's semantics as documented, and nothing else:
 *
 * - `MongoClient`: `db()`, `connect()`, `close()`, `on()` with the monitoring
 *   events the interface follows (`serverHeartbeatSucceeded`/`Failed`,
 *   `serverClosed`, `topologyClosed`); operations connect automatically; a
 *   first connection that fails after `serverSelectionTimeoutMS` closes the
 *   topology, after which operations fail with "Topology is closed" until
 *   `connect()` is called again (measured on the real driver 7.9 against a
 *   closed port: see test/mongodb/mongodb-driver.e2e-spec.ts). While the
 *   server is down, operations wait for it up to `serverSelectionTimeoutMS`
 *   and the monitor checks it every 500 ms (minHeartbeatFrequencyMS) while
 *   one waits, else every `heartbeatFrequencyMS`.
 * - `Db`: `collection()`, `command({ hello })` (with `localTime`, the server's
 *   clock), `command({ ping })` and `command({ connectionStatus })` (the
 *   user's privileges).
 * - `Collection`: `indexes` (listIndexes; error 26 for no collection),
 *   `createIndex` (single field; `unique` checked against the
 *   data, error 11000; same name or keys with other options, error 85),
 *   `findOne` (inclusion projection), `updateOne` and `findOneAndUpdate`
 *   (`$set`/`$setOnInsert` or an update pipeline of `$set` stages; `upsert`
 *   seeded from the filter's equalities, `$expr` refused in an upsert's
 *   filter with error 224; unique indexes enforced, error 11000), `deleteOne`.
 * - Filters: equality (null matches a missing field; BinData by subtype and
 *   bytes), `$gt` `$gte` `$lt` `$lte` within one type, `$exists`, `$or`,
 *   `$and`, `$expr`. Expressions: field paths, `$$NOW` (the server's clock at
 *   the start of the operation), `$cond`, `$eq` `$ne` `$gt` `$gte` `$lt` `$lte`
 *   (BSON order across types), `$and`, `$or`, `$not`, `$type`, `$ifNull`,
 *   `$literal`.
 * - Documents, filters and updates go through the driver's real BSON
 *   serializer, so values are what a server would see and return (Buffers in,
 *   `Binary` out). A TTL monitor removes expired documents every
 *   `ttlMonitorIntervalMs` (MongoDB: 60 s), never at once.
 * - Access control, once `addUser()` has made a user: a client's `auth`
 *   (the connection string's credentials) is checked when it connects, a
 *   wrong password failing `connect()` with error 18 (AuthenticationFailed)
 *   and closing its topology, as the driver's authenticated connect does; a
 *   client without credentials, or whose user lacks the role, gets error 13
 *   (Unauthorized) for each command but `hello` and `ping`. Roles: `read`
 *   (find, listIndexes), `readWrite` (everything above), and a custom role
 *   with readWrite's actions but `createIndex`, on the user's database.
 * - `pause()` holds every operation already sent until `resume()`, which runs
 *   them then (as a SIGSTOPped mongod would); `stop()` refuses connections
 *   until `start()`.
 *
 * What it cannot tell: whether a real server agrees. scripts/test-mongodb.sh
 * runs the same contract against one (MONGODB_URL).
 */
import { EventEmitter } from 'node:events';
import {
  BSON,
  Binary,
  MongoNetworkError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  ObjectId,
  type Document,
} from 'mongodb';

type Value = unknown;
/** A missing field, in expressions: distinct from null. */
const MISSING = Symbol('missing');

interface IndexSpec {
  name: string;
  field: string;
  unique: boolean;
  expireAfterSeconds?: number;
  /** Hidden from the query planner (still unique, still a TTL index); only an administrator's index here. */
  hidden?: boolean;
}

interface CollectionData {
  documents: Document[];
  indexes: IndexSpec[];
}

export interface StandInOptions {
  /** The server's clock minus the real one, in ms (to test the clock offset). Default 0. */
  clockOffsetMs?: number;
  /** How often the TTL monitor runs. Default 60 000 (MongoDB's ttlMonitorSleepSecs). */
  ttlMonitorIntervalMs?: number;
  /** How long an operation takes before it runs (a network round trip), so that some are in flight when the server is paused. Default 0. */
  latencyMs?: number;
}

/** A user's role on its database: MongoDB's built-in read and readWrite, and a custom role with readWrite's actions but createIndex. */
export type StandInRole = 'read' | 'readWrite' | 'readWrite but not createIndex';

/** The actions each role grants on its database (`{ db, collection: '' }`). */
const ROLE_ACTIONS: Record<StandInRole, string[]> = {
  read: ['find', 'listIndexes'],
  readWrite: ['find', 'insert', 'update', 'remove', 'createIndex', 'listIndexes'],
  'readWrite but not createIndex': ['find', 'insert', 'update', 'remove', 'listIndexes'],
};

/** Commands any connection may run, logged in or not. */
const NO_PRIVILEGE_NEEDED = new Set(['hello', 'ping', 'connectionStatus']);

/** The commands the stand-in runs, by the driver method that sends them, and what each needs. */
const COMMANDS: Record<string, { command: string; writes: boolean }> = {
  createIndex: { command: 'createIndexes', writes: true },
  findOne: { command: 'find', writes: false },
  indexes: { command: 'listIndexes', writes: false },
  updateOne: { command: 'update', writes: true },
  findOneAndUpdate: { command: 'findAndModify', writes: true },
  deleteOne: { command: 'delete', writes: true },
};

export interface StandInClientOptions {
  /** The connection string's credentials (`mongodb://user:password@…`); the user's database is its authSource. */
  auth?: { username: string; password: string };
  /** How long an operation waits for a server that is down. Default 30 000 (the driver's). */
  serverSelectionTimeoutMS?: number;
  /** How often the monitor checks the server when nothing waits for it. Default 10 000 (the driver's). */
  heartbeatFrequencyMS?: number;
}

/** The server: the data, its clock, and its state (up, paused, down). */
export class MongoStandInServer {
  readonly address = '127.0.0.1:27017';
  clockOffsetMs: number;
  private readonly latencyMs: number;
  private readonly data = new Map<string, CollectionData>();
  private state: 'up' | 'paused' | 'down' = 'up';
  private held: Array<{ go(): void; fail(error: Error): void }> = [];
  private readonly clients = new Set<MongoClientStandIn>();
  private readonly ttlMonitor: NodeJS.Timeout;
  /** Operations run, by name (tests count them). */
  readonly operations: string[] = [];
  /** The users, once access control is on (`addUser`). */
  private readonly users = new Map<string, { password: string; db: string; role: StandInRole }>();

  constructor(options: StandInOptions = {}) {
    this.clockOffsetMs = options.clockOffsetMs ?? 0;
    this.latencyMs = options.latencyMs ?? 0;
    this.ttlMonitor = setInterval(() => this.removeExpired(), options.ttlMonitorIntervalMs ?? 60_000);
    this.ttlMonitor.unref();
  }

  /** A new client of this server (`new MongoClient(url)`). */
  client(options: StandInClientOptions = {}): MongoClientStandIn {
    const client = new MongoClientStandIn(this, options);
    this.clients.add(client);
    return client;
  }

  /** Makes a user (`createUser`) with `role` on `db`, turning access control on. */
  addUser(username: string, password: string, db: string, role: StandInRole): void {
    this.users.set(username, { password, db, role });
  }

  /** `grantRolesToUser` / `revokeRolesFromUser`: the user's role from now on, for connections already made too. */
  setRole(username: string, role: StandInRole): void {
    this.users.get(username)!.role = role;
  }

  /** @internal A connection's login: error 18 for credentials the server does not know (with access control off too). */
  authenticate(auth: StandInClientOptions['auth']): void {
    if (!auth) return;
    if (this.users.get(auth.username)?.password !== auth.password) {
      throw new MongoServerError({ message: 'Authentication failed.', code: 18, codeName: 'AuthenticationFailed' });
    }
  }

  /** @internal Error 13 for an operation the connection's user may not run (every one but hello and ping without a login). */
  authorize(auth: StandInClientOptions['auth'], operation: string, namespace: string | undefined): void {
    if (this.users.size === 0 || NO_PRIVILEGE_NEEDED.has(operation)) return;
    const { command, writes } = COMMANDS[operation] ?? { command: operation, writes: true };
    const [db, collection] = (namespace ?? '').split(/\.(.*)/);
    const user = auth && this.users.get(auth.username);
    if (!user) throw new MongoServerError({ message: `Command ${command} requires authentication`, code: 13, codeName: 'Unauthorized' });
    const allowed = !writes || user.role === 'readWrite' || (user.role === 'readWrite but not createIndex' && operation !== 'createIndex');
    if (user.db !== db || !allowed) {
      throw new MongoServerError({
        message: `not authorized on ${db} to execute command { ${command}: "${collection}", $db: "${db}" }`,
        code: 13,
        codeName: 'Unauthorized',
      });
    }
  }

  /** @internal `connectionStatus`'s `authInfo` (with `showPrivileges`) for a connection logged in with `auth`. */
  authInfo(auth: StandInClientOptions['auth']): Document {
    const user = auth && this.users.get(auth.username);
    if (!user) return { authenticatedUsers: [], authenticatedUserRoles: [], authenticatedUserPrivileges: [] };
    return {
      authenticatedUsers: [{ user: auth.username, db: user.db }],
      authenticatedUserRoles: [{ role: user.role, db: user.db }],
      authenticatedUserPrivileges: [{ resource: { db: user.db, collection: '' }, actions: ROLE_ACTIONS[user.role] }],
    };
  }

  /** The server's clock. */
  now(): Date {
    return new Date(Date.now() + this.clockOffsetMs);
  }

  get up(): boolean {
    return this.state === 'up';
  }

  get down(): boolean {
    return this.state === 'down';
  }

  /** Stops the server as SIGSTOP would: operations already sent wait, and run at {@link resume}. */
  pause(): void {
    this.state = 'paused';
  }

  resume(): void {
    this.state = 'up';
    const held = this.held;
    this.held = [];
    for (const operation of held) operation.go();
  }

  /** Ends the server: connections are refused until {@link start}; operations held by a pause fail, their connections closed. */
  stop(): void {
    this.state = 'down';
    const held = this.held;
    this.held = [];
    for (const operation of held) operation.fail(new MongoNetworkError(`connection to ${this.address} closed`));
    for (const client of this.clients) client.serverStopped();
  }

  start(): void {
    this.state = 'up';
  }

  close(): void {
    clearInterval(this.ttlMonitor);
    for (const client of this.clients) client.detach();
    this.clients.clear();
  }

  /** The documents of `namespace` as stored (copies), for assertions. */
  documents(namespace: string): Document[] {
    return (this.data.get(namespace)?.documents ?? []).map(copy);
  }

  /** The indexes of `namespace`, for assertions. */
  indexes(namespace: string): IndexSpec[] {
    return [...(this.data.get(namespace)?.indexes ?? [])];
  }

  /** Whether `namespace` exists (MongoDB makes a collection at its first write or index). */
  hasCollection(namespace: string): boolean {
    return this.data.has(namespace);
  }

  /** Creates an index as an administrator would, on data without duplicates. */
  createIndexRaw(namespace: string, spec: Omit<IndexSpec, 'name'>): void {
    this.collectionData(namespace).indexes.push({ name: `${spec.field}_1`, ...spec });
  }

  /** Inserts a document as another writer would (say Flask-Session 0.8, which has no unique index), checking unique indexes. */
  insertRaw(namespace: string, document: Document): void {
    const collection = this.collectionData(namespace);
    const stored = roundTrip({ _id: new ObjectId(), ...document });
    this.checkUnique(namespace, collection, stored, undefined);
    collection.documents.push(stored);
  }

  /** Deletes the documents of `namespace` whose `field` is `value`, as another client would. */
  removeRaw(namespace: string, field: string, value: unknown): void {
    const collection = this.collectionData(namespace);
    collection.documents = collection.documents.filter((document) => !bsonEquals(document[field], roundTrip({ v: value }).v));
  }

  /** Runs the TTL monitor's pass now. */
  removeExpired(): void {
    const now = this.now().getTime();
    for (const collection of this.data.values()) {
      for (const index of collection.indexes) {
        if (index.expireAfterSeconds === undefined) continue;
        collection.documents = collection.documents.filter((document) => {
          const value = document[index.field];
          return !(value instanceof Date && value.getTime() + index.expireAfterSeconds! * 1000 <= now);
        });
      }
    }
  }

  /** @internal Runs an operation sent by a client: now, or at resume when paused. */
  execute<T>(name: string, run: (now: Date) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const go = () => {
        // A round trip later, as over a socket.
        this.later(() => {
          if (this.state === 'down') return reject(new MongoNetworkError(`connection to ${this.address} closed`));
          this.operations.push(name);
          try {
            resolve(run(this.now()));
          } catch (error) {
            reject(error);
          }
        });
      };
      const send = () => (this.state === 'paused' ? this.held.push({ go, fail: reject }) : go());
      // The operation travels to the server first: one sent just before a pause arrives while it is stopped.
      if (this.latencyMs > 0) setTimeout(send, this.latencyMs / 2);
      else send();
    });
  }

  private later(run: () => void): void {
    if (this.latencyMs > 0) setTimeout(run, this.latencyMs / 2);
    else setImmediate(run);
  }

  /** @internal */
  collectionData(namespace: string): CollectionData {
    let collection = this.data.get(namespace);
    if (!collection) this.data.set(namespace, (collection = { documents: [], indexes: [{ name: '_id_', field: '_id', unique: true }] }));
    return collection;
  }

  /** @internal Error 11000 when `document` would break a unique index (`replacing`: the stored document it replaces). */
  checkUnique(namespace: string, collection: CollectionData, document: Document, replacing: Document | undefined): void {
    for (const index of collection.indexes) {
      if (!index.unique) continue;
      const value = document[index.field] ?? null;
      const clash = collection.documents.find((other) => other !== replacing && bsonEquals(other[index.field] ?? null, value));
      if (clash) throw duplicateKey(namespace, index, value);
    }
  }
}

/** The driver's `MongoClient`, as far as the interface uses it. */
export class MongoClientStandIn extends EventEmitter {
  private topology: 'none' | 'connecting' | 'connected' | 'closed' = 'none';
  private connection?: Promise<void>;
  private readonly serverSelectionTimeoutMS: number;
  private readonly heartbeatFrequencyMS: number;
  private monitor?: NodeJS.Timeout;
  private waitingForServer = 0;
  private detached = false;

  constructor(
    readonly server: MongoStandInServer,
    options: StandInClientOptions,
  ) {
    super();
    this.serverSelectionTimeoutMS = options.serverSelectionTimeoutMS ?? 30_000;
    this.heartbeatFrequencyMS = options.heartbeatFrequencyMS ?? 10_000;
    this.auth = options.auth;
  }

  /** @internal The connection string's credentials. */
  readonly auth: StandInClientOptions['auth'];

  db(name: string): DbStandIn {
    return new DbStandIn(this, name);
  }

  /** Opens a topology (a new one after a close or a failed first connection); resolves once the server answers. */
  connect(): Promise<this> {
    if (this.topology === 'connected') return Promise.resolve(this);
    this.connection ??= this.openTopology().finally(() => (this.connection = undefined));
    return this.connection.then(() => this);
  }

  async close(): Promise<void> {
    if (this.topology === 'none') return;
    this.closeTopology();
    this.topology = 'none';
  }

  /** @internal The server was killed: the monitor's connection breaks, the next check is refused. */
  serverStopped(): void {
    if (this.topology !== 'connected') return;
    setImmediate(() => this.heartbeatFailed());
    this.scheduleMonitor();
  }

  /** @internal */
  detach(): void {
    this.detached = true;
    clearTimeout(this.monitor);
  }

  /**
   * Runs an operation as the driver's executeOperation does: connecting first
   * when the client never was, failing when its topology is closed, waiting
   * for a server that is down up to serverSelectionTimeoutMS.
   */
  async run<T>(name: string, operation: (now: Date) => T, namespace?: string): Promise<T> {
    if (this.topology === 'closed') throw new MongoTopologyClosedError();
    if (this.topology === 'none') await this.connect();
    if (this.server.down) await this.waitForServer();
    return this.server.execute(name, (now) => {
      this.server.authorize(this.auth, name, namespace);
      return operation(now);
    });
  }

  private async openTopology(): Promise<void> {
    this.topology = 'connecting';
    this.emit('topologyOpening', { topologyId: 1 });
    this.emit('serverOpening', { topologyId: 1, address: this.server.address });
    try {
      if (this.server.down) await this.waitForServer();
      // The driver's connect() checks out a connection, which logs in.
      await this.server.execute('connect', () => this.server.authenticate(this.auth));
      this.topology = 'connected';
      setImmediate(() => this.heartbeatSucceeded());
    } catch (error) {
      // The driver closes the topology when its first connection fails.
      this.closeTopology();
      this.topology = 'closed';
      throw error;
    }
  }

  private closeTopology(): void {
    clearTimeout(this.monitor);
    this.emit('serverClosed', { topologyId: 1, address: this.server.address });
    this.emit('topologyClosed', { topologyId: 1 });
  }

  /** Server selection: waits for the server while it is down, checked every 500 ms; fails after serverSelectionTimeoutMS. */
  private waitForServer(): Promise<void> {
    this.waitingForServer++;
    this.scheduleMonitor(0);
    return new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const check = () => {
        if (this.detached) return reject(new MongoTopologyClosedError());
        if (!this.server.down) return resolve();
        if (Date.now() - started >= this.serverSelectionTimeoutMS) {
          return reject(new MongoServerSelectionError(`connect ECONNREFUSED ${this.server.address}`, { error: refusal(this.server.address) } as never));
        }
        setTimeout(check, 100).unref();
      };
      check();
    }).finally(() => this.waitingForServer--);
  }

  /** The monitor: checks every 500 ms while an operation waits for the server, else every heartbeatFrequencyMS. */
  private scheduleMonitor(delay?: number): void {
    clearTimeout(this.monitor);
    if (this.detached || this.topology === 'closed' || this.topology === 'none') return;
    const next = delay ?? (this.waitingForServer > 0 ? 500 : this.heartbeatFrequencyMS);
    this.monitor = setTimeout(() => {
      if (this.server.down) this.heartbeatFailed();
      else if (this.server.up) this.heartbeatSucceeded();
      if (this.server.down) this.scheduleMonitor();
    }, next);
    this.monitor.unref();
  }

  private heartbeatFailed(): void {
    this.emit('serverHeartbeatFailed', { connectionId: this.server.address, duration: 1, failure: refusal(this.server.address), awaited: false });
  }

  private heartbeatSucceeded(): void {
    this.emit('serverHeartbeatSucceeded', { connectionId: this.server.address, duration: 1, reply: { ok: 1 }, awaited: false });
  }
}

export class DbStandIn {
  constructor(
    private readonly client: MongoClientStandIn,
    readonly databaseName: string,
  ) {}

  collection(name: string): CollectionStandIn {
    return new CollectionStandIn(this.client, `${this.databaseName}.${name}`);
  }

  command(command: Document): Promise<Document> {
    const [name] = Object.keys(command);
    return this.client.run(name!, (now) => {
      if (name === 'hello') return { isWritablePrimary: true, localTime: now, maxWireVersion: 21, minWireVersion: 0, ok: 1 };
      if (name === 'ping') return { ok: 1 };
      if (name === 'connectionStatus') return { authInfo: this.client.server.authInfo(this.client.auth), ok: 1 };
      throw new MongoServerError({ message: `no such command: '${name}'`, code: 59, codeName: 'CommandNotFound' });
    }, `${this.databaseName}.$cmd`);
  }
}

export class CollectionStandIn {
  constructor(
    private readonly client: MongoClientStandIn,
    readonly namespace: string,
  ) {}

  private get server(): MongoStandInServer {
    return this.client.server;
  }

  createIndex(keys: Document, options: { unique?: boolean; expireAfterSeconds?: number; name?: string } = {}): Promise<string> {
    return this.client.run('createIndex', () => {
      const fields = Object.keys(keys);
      if (fields.length !== 1 || keys[fields[0]!] !== 1) throw new Error('the stand-in supports single-field ascending indexes only');
      const field = fields[0]!;
      const spec: IndexSpec = { name: options.name ?? `${field}_1`, field, unique: options.unique ?? false, expireAfterSeconds: options.expireAfterSeconds };
      const collection = this.server.collectionData(this.namespace);
      const same = collection.indexes.find((index) => index.name === spec.name || index.field === field);
      if (same) {
        if (same.name === spec.name && same.field === field && same.unique === spec.unique && same.expireAfterSeconds === spec.expireAfterSeconds) return spec.name;
        throw new MongoServerError({
          message: same.name === spec.name ? `An existing index has the same name as the requested index. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(same)}` : `Index already exists with a different name: ${same.name}`,
          code: 85,
          codeName: 'IndexOptionsConflict',
        });
      }
      if (spec.unique) {
        const seen: Value[] = [];
        for (const document of collection.documents) {
          const value = document[field] ?? null;
          if (seen.some((other) => bsonEquals(other, value))) {
            const error = duplicateKey(this.namespace, spec, value);
            error.message = `Index build failed: ${error.message}`;
            throw error;
          }
          seen.push(value);
        }
      }
      collection.indexes.push(spec);
      return spec.name;
    }, this.namespace);
  }

  /** `listIndexes`, as `Collection.indexes()` returns it; error 26 (NamespaceNotFound) for a collection that does not exist. */
  indexes(): Promise<Document[]> {
    return this.client.run(
      'indexes',
      () => {
        if (!this.server.hasCollection(this.namespace)) {
          throw new MongoServerError({ message: `ns does not exist: ${this.namespace}`, code: 26, codeName: 'NamespaceNotFound' });
        }
        return this.server.collectionData(this.namespace).indexes.map(({ name, field, unique, expireAfterSeconds, hidden }) => ({
          v: 2,
          key: { [field]: 1 },
          name,
          ...(unique && name !== '_id_' ? { unique: true } : {}),
          ...(expireAfterSeconds !== undefined ? { expireAfterSeconds } : {}),
          ...(hidden ? { hidden: true } : {}),
        }));
      },
      this.namespace,
    );
  }

  findOne(filter: Document, options: { projection?: Document } = {}): Promise<Document | null> {
    const query = roundTrip(filter);
    return this.client.run('findOne', (now) => {
      const found = this.documents().find((document) => matches(document, query, now));
      return found ? project(found, options.projection) : null;
    }, this.namespace);
  }

  updateOne(filter: Document, update: Document | Document[], options: { upsert?: boolean } = {}): Promise<Document> {
    const query = roundTrip(filter);
    const change = roundTripUpdate(update);
    return this.client.run('updateOne', (now) => {
      const outcome = this.applyUpdate(query, change, options.upsert ?? false, now);
      return {
        acknowledged: true,
        matchedCount: outcome.matched ? 1 : 0,
        modifiedCount: outcome.modified ? 1 : 0,
        upsertedCount: outcome.upserted ? 1 : 0,
        upsertedId: outcome.upserted ? outcome.document!._id : null,
      };
    }, this.namespace);
  }

  findOneAndUpdate(
    filter: Document,
    update: Document | Document[],
    options: { upsert?: boolean; returnDocument?: 'before' | 'after'; projection?: Document } = {},
  ): Promise<Document | null> {
    const query = roundTrip(filter);
    const change = roundTripUpdate(update);
    return this.client.run('findOneAndUpdate', (now) => {
      const outcome = this.applyUpdate(query, change, options.upsert ?? false, now);
      const returned = options.returnDocument === 'after' ? outcome.document : outcome.before;
      return returned ? project(returned, options.projection) : null;
    }, this.namespace);
  }

  deleteOne(filter: Document): Promise<Document> {
    const query = roundTrip(filter);
    return this.client.run('deleteOne', (now) => {
      const collection = this.server.collectionData(this.namespace);
      const index = collection.documents.findIndex((document) => matches(document, query, now));
      if (index >= 0) collection.documents.splice(index, 1);
      return { acknowledged: true, deletedCount: index >= 0 ? 1 : 0 };
    }, this.namespace);
  }

  private documents(): Document[] {
    return this.server.collectionData(this.namespace).documents;
  }

  private applyUpdate(
    query: Document,
    change: Document | Document[],
    upsert: boolean,
    now: Date,
  ): { matched: boolean; modified: boolean; upserted: boolean; document?: Document; before?: Document } {
    if (upsert && containsExpr(query)) {
      throw new MongoServerError({ message: '$expr is not allowed in the query predicate for an upsert', code: 224, codeName: 'QueryFeatureNotAllowed' });
    }
    const collection = this.server.collectionData(this.namespace);
    const found = collection.documents.find((document) => matches(document, query, now));
    if (found) {
      const next = roundTrip(applyChange(found, change, false, now));
      next._id = found._id;
      const modified = !Buffer.from(BSON.serialize(next)).equals(Buffer.from(BSON.serialize(found)));
      if (modified) {
        this.server.checkUnique(this.namespace, collection, next, found);
        collection.documents[collection.documents.indexOf(found)] = next;
      }
      return { matched: true, modified, upserted: false, document: next, before: found };
    }
    if (!upsert) return { matched: false, modified: false, upserted: false };
    const seeded = applyChange(seedFromQuery(query), change, true, now);
    const inserted = roundTrip({ _id: seeded._id ?? new ObjectId(), ...withoutId(seeded) });
    this.server.checkUnique(this.namespace, collection, inserted, undefined);
    collection.documents.push(inserted);
    return { matched: false, modified: false, upserted: true, document: inserted };
  }
}

// --- Filters ---------------------------------------------------------------

function matches(document: Document, query: Document, now: Date): boolean {
  for (const [key, condition] of Object.entries(query)) {
    if (key === '$or') {
      if (!(condition as Document[]).some((part) => matches(document, part, now))) return false;
    } else if (key === '$and') {
      if (!(condition as Document[]).every((part) => matches(document, part, now))) return false;
    } else if (key === '$expr') {
      if (!truthy(evaluate(condition, document, now))) return false;
    } else if (key.startsWith('$')) {
      throw new Error(`the stand-in does not know the query operator ${key}`);
    } else if (!fieldMatches(key in document ? document[key] : MISSING, condition)) {
      return false;
    }
  }
  return true;
}

function fieldMatches(value: Value, condition: Value): boolean {
  if (isOperatorObject(condition)) {
    return Object.entries(condition as Document).every(([operator, operand]) => {
      switch (operator) {
        case '$eq':
          return fieldMatches(value, operand);
        case '$exists':
          return (value !== MISSING) === Boolean(operand);
        case '$gt':
        case '$gte':
        case '$lt':
        case '$lte': {
          // Query comparisons only match values of the same type bracket.
          if (value === MISSING || typeBracket(value) !== typeBracket(operand)) return false;
          const order = compare(value, operand);
          return operator === '$gt' ? order > 0 : operator === '$gte' ? order >= 0 : operator === '$lt' ? order < 0 : order <= 0;
        }
        default:
          throw new Error(`the stand-in does not know the query operator ${operator}`);
      }
    });
  }
  // Equality; null also matches a missing field.
  if (condition === null) return value === MISSING || value === null;
  return value !== MISSING && bsonEquals(value, condition);
}

function containsExpr(query: Document): boolean {
  return Object.entries(query).some(([key, value]) => key === '$expr' || ((key === '$and' || key === '$or') && (value as Document[]).some(containsExpr)));
}

/** The document an upsert starts from: the filter's equalities. */
function seedFromQuery(query: Document): Document {
  const seed: Document = {};
  for (const [key, condition] of Object.entries(query)) {
    if (key === '$and') for (const part of condition as Document[]) Object.assign(seed, seedFromQuery(part));
    else if (!key.startsWith('$') && !isOperatorObject(condition)) seed[key] = condition;
    else if (!key.startsWith('$') && isOperatorObject(condition) && '$eq' in (condition as Document)) seed[key] = (condition as Document).$eq;
  }
  return seed;
}

// --- Updates ---------------------------------------------------------------

function applyChange(document: Document, change: Document | Document[], inserting: boolean, now: Date): Document {
  if (Array.isArray(change)) {
    let current = copy(document);
    for (const stage of change) {
      const [name, spec] = Object.entries(stage)[0]!;
      if (name !== '$set' && name !== '$addFields') throw new Error(`the stand-in does not know the pipeline stage ${name}`);
      // Every expression of a stage sees the stage's input document.
      const input = current;
      const output = copy(input);
      for (const [field, expression] of Object.entries(spec as Document)) {
        const value = evaluate(expression, input, now);
        if (value === MISSING) delete output[field];
        else output[field] = value;
      }
      current = output;
    }
    return current;
  }
  const next = copy(document);
  for (const [operator, fields] of Object.entries(change)) {
    if (operator === '$set' || (operator === '$setOnInsert' && inserting)) Object.assign(next, fields);
    else if (operator !== '$setOnInsert') throw new Error(`the stand-in does not know the update operator ${operator}`);
  }
  return next;
}

// --- Expressions -----------------------------------------------------------

function evaluate(expression: Value, document: Document, now: Date): Value {
  if (typeof expression === 'string') {
    if (expression === '$$NOW') return now;
    if (expression.startsWith('$$')) throw new Error(`the stand-in does not know the variable ${expression}`);
    if (expression.startsWith('$')) {
      const field = expression.slice(1);
      return field in document ? document[field] : MISSING;
    }
    return expression;
  }
  if (Array.isArray(expression)) return expression.map((item) => evaluate(item, document, now));
  if (!isPlainObject(expression)) return expression;
  const keys = Object.keys(expression as Document);
  if (keys.length === 1 && keys[0]!.startsWith('$')) {
    const operator = keys[0]!;
    const operand = (expression as Document)[operator];
    const args = (): Value[] => (Array.isArray(operand) ? operand : [operand]).map((item) => evaluate(item, document, now));
    switch (operator) {
      case '$literal':
        return operand;
      case '$cond': {
        const [test, then, otherwise] = Array.isArray(operand) ? operand : [operand.if, operand.then, operand.else];
        return truthy(evaluate(test, document, now)) ? evaluate(then, document, now) : evaluate(otherwise, document, now);
      }
      case '$and':
        return args().every(truthy);
      case '$or':
        return args().some(truthy);
      case '$not':
        return !truthy(args()[0]);
      case '$ifNull': {
        const values = args();
        const found = values.slice(0, -1).find((value) => value !== MISSING && value !== null);
        return found === undefined ? values.at(-1) : found;
      }
      case '$type':
        return bsonType(args()[0]);
      case '$eq':
      case '$ne':
      case '$gt':
      case '$gte':
      case '$lt':
      case '$lte': {
        const [left, right] = args();
        const order = compare(left, right);
        return { $eq: order === 0, $ne: order !== 0, $gt: order > 0, $gte: order >= 0, $lt: order < 0, $lte: order <= 0 }[operator];
      }
      default:
        throw new Error(`the stand-in does not know the expression operator ${operator}`);
    }
  }
  const result: Document = {};
  for (const [key, value] of Object.entries(expression as Document)) result[key] = evaluate(value, document, now);
  return result;
}

function truthy(value: Value): boolean {
  return !(value === false || value === null || value === undefined || value === MISSING || value === 0);
}

function bsonType(value: Value): string {
  if (value === MISSING) return 'missing';
  if (value === null) return 'null';
  if (value instanceof Date) return 'date';
  if (value instanceof Binary) return 'binData';
  if (value instanceof ObjectId) return 'objectId';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'double';
  if (Array.isArray(value)) return 'array';
  return 'object';
}

/** MongoDB's comparison order of types (missing first, as in expressions). */
const TYPE_ORDER = ['missing', 'null', 'number', 'string', 'object', 'array', 'binData', 'objectId', 'bool', 'date'];

function typeBracket(value: Value): string {
  const type = bsonType(value);
  return type === 'int' || type === 'double' ? 'number' : type;
}

function compare(left: Value, right: Value): number {
  const [a, b] = [typeBracket(left), typeBracket(right)];
  if (a !== b) return TYPE_ORDER.indexOf(a) - TYPE_ORDER.indexOf(b);
  switch (a) {
    case 'missing':
    case 'null':
      return 0;
    case 'number':
      return (left as number) - (right as number);
    case 'string':
      return left === right ? 0 : (left as string) < (right as string) ? -1 : 1;
    case 'date':
      return (left as Date).getTime() - (right as Date).getTime();
    case 'bool':
      return Number(left) - Number(right);
    case 'binData': {
      // BinData orders by length, then subtype, then bytes.
      const [x, y] = [left as Binary, right as Binary];
      return x.position - y.position || x.sub_type - y.sub_type || Buffer.compare(bytes(x), bytes(y));
    }
    default:
      return Buffer.from(BSON.serialize({ v: left })).equals(Buffer.from(BSON.serialize({ v: right }))) ? 0 : 1;
  }
}

function bsonEquals(left: Value, right: Value): boolean {
  return typeBracket(left) === typeBracket(right) && compare(left, right) === 0;
}

// --- Helpers ---------------------------------------------------------------

function isPlainObject(value: Value): value is Document {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
}

function isOperatorObject(value: Value): boolean {
  return isPlainObject(value) && Object.keys(value).length > 0 && Object.keys(value).every((key) => key.startsWith('$'));
}

function bytes(binary: Binary): Buffer {
  return Buffer.from(binary.buffer.buffer, binary.buffer.byteOffset, binary.position);
}

/** What a server stores and returns: the document through BSON. */
function roundTrip(document: Document): Document {
  return BSON.deserialize(BSON.serialize(document));
}

function roundTripUpdate(update: Document | Document[]): Document | Document[] {
  return roundTrip({ u: update }).u;
}

function copy(document: Document): Document {
  return roundTrip(document);
}

function withoutId(document: Document): Document {
  const { _id, ...rest } = document;
  return rest;
}

/** Inclusion projection (`{ _id: 0, a: 1 }`), as the interface uses it. */
function project(document: Document, projection: Document | undefined): Document {
  const result = copy(document);
  if (!projection) return result;
  const included = Object.keys(projection).filter((key) => projection[key] === 1);
  if (included.length === 0) {
    if (projection._id === 0) delete result._id;
    return result;
  }
  const out: Document = {};
  if (projection._id !== 0) out._id = result._id;
  for (const key of included) if (key in result) out[key] = result[key];
  return out;
}

function duplicateKey(namespace: string, index: IndexSpec, value: Value): MongoServerError {
  const shown = value instanceof Binary || value instanceof ObjectId ? String(value) : JSON.stringify(value);
  return new MongoServerError({
    message: `E11000 duplicate key error collection: ${namespace} index: ${index.name} dup key: { ${index.field}: ${shown} }`,
    code: 11000,
    codeName: 'DuplicateKey',
  });
}

function refusal(address: string): MongoNetworkError {
  const [host, port] = address.split(':');
  const cause = Object.assign(new Error(`connect ECONNREFUSED ${address}`), { code: 'ECONNREFUSED', address: host, port: Number(port) });
  return new MongoNetworkError(`connect ECONNREFUSED ${address}`, { cause });
}
