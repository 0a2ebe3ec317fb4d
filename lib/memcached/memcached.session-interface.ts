import type { Socket } from 'node:net';
import type { Client, Response, Server } from 'memjs';
import {
  ServerSideSessionInterface,
  type ServerSideSessionOptions,
  type StoreCall,
  type StoredRecord,
  type SwapOutcome,
} from '../server-side/server-side.session-interface.js';
import { SessionConfigurationError, SessionStoreUnavailableError } from '../session.errors.js';

/** @publicApi */
export interface MemcachedSessionOptions extends ServerSideSessionOptions {
  /**
   * A memjs client (`memjs.Client.create('127.0.0.1:11211')`), required. The
   * interface never closes it, and sends its own binary-protocol commands
   * through the client's connections: the client's `retries`, `failover` and
   * `serializer` do not apply to session records (see
   * {@link MemcachedSessionInterface}). Give it a `timeout` (seconds, memjs
   * default 0.5) of at least `storeTimeout`, or memjs gives up on a slow
   * answer, with a 503, before the request's budget has run out.
   */
  client: Client;
}

/** Memcached reads an expiry above 30 days as a Unix time, not a number of seconds. */
const THIRTY_DAYS = 30 * 24 * 60 * 60;
/** Memcached's longest key, in bytes. */
const MAX_KEY_BYTES = 250;

/** Binary protocol opcodes. */
const GET = 0x00;
const SET = 0x01;
const ADD = 0x02;
const DELETE = 0x04;
const TOUCH = 0x1c;
const OPCODE_NAMES: Record<number, string> = { [GET]: 'get', [SET]: 'set', [ADD]: 'add', [DELETE]: 'delete', [TOUCH]: 'touch' };

/** Binary protocol response statuses. */
const OK = 0x00;
const NOT_FOUND = 0x01;
const EXISTS = 0x02;
const TOO_LARGE = 0x03;

const NOTHING = Buffer.alloc(0);
const NO_CAS = Buffer.alloc(8);

/** The parts of memjs's `Server` the interface reads beyond its typed API: the socket a command went out on. */
type ServerInternals = Server & { _socket?: Socket };

/**
 * Sessions in Memcached, as Flask-Session stores them: `session:<sid>` holds
 * the msgpack (or JSON) of the session dict, with the lifetime as expiry;
 * `touch` refreshes an unchanged session. A lifetime over 30 days (the
 * 31-day default) is sent as an absolute time, Flask-Session's rule.
 *
 * **Concurrent requests.** A changed session is written with compare-and-set
 * on the CAS token memcached gave with the record it was read from (a binary
 * `set` carrying that CAS); a new record with `add` (only if absent); a
 * replacement (`clear()`, `regenerate()`) with `add`, or with `set` on the
 * CAS just read; a refresh with `touch`, which never recreates a record. So
 * two requests that change different keys both keep theirs, and a deleted
 * session (logout) is never brought back by a concurrent write. memjs has no
 * CAS API: the interface builds these commands itself and sends them through
 * the client's connections (`Client#server(key)`), bypassing memjs's retry and
 * failover (which would resend a write late) and its serializer (records are
 * the bytes Flask-Session reads and writes). A server started with `-C`
 * (CAS disabled) gives no CAS tokens: changes to an existing session then
 * fail with a 503 naming the cause rather than overwrite each other.
 *
 * **Failures.** Each command is sent once, and nothing is sent once the
 * request's budget (`storeTimeout`) has run out. A refused connection fails
 * the request at once, naming the address, and so does a connection the
 * server closes with commands unanswered. When the budget runs out with a
 * command unanswered on a connection that has stayed silent for half a budget
 * or more, the server is taken as not answering: the connection is closed
 * (the commands still waiting on it fail too) and memjs opens a new one on the
 * next call, so the store is used again as soon as it answers, without a
 * restart. A command merely answered late, on a connection that is answering,
 * leaves the connection alone.
 *
 * **What a 503 does not undo.** Memcached cannot make a write refuse itself
 * once its deadline has passed: it has no scripts and compares no times, and
 * a command it has received is applied when it gets to it. A server that
 * stalls mid-request (paused, swapping, a stalled VM) therefore applies on
 * waking the writes it received before and during the stall, although their
 * requests were answered 503 meanwhile, and so does a slow server with a write
 * sent when little of its budget was left. Closing or resetting the connection
 * does not stop this: Linux keeps the bytes a socket received before a TCP
 * reset, and memcached reads and applies them (100 of 100 writes held in a
 * paused memcached 1.6.18 on Linux 6.18 were applied on waking, after a reset
 * as after a plain close). Under load (16 clients on 8 sessions, memcached
 * paused 1.5 s against a 500 ms budget), 0 to 8 of the 32 to 48 writes
 * answered 503 in a run were applied later (74 of 685 over 20 runs). What
 * does hold:
 * - a late write lands only on the very record it was computed from (its CAS
 *   token): it never overwrites a change another request was told was saved,
 *   and it never recreates a deleted session;
 * - a request whose own read could not be answered writes nothing to the
 *   existing session it came with;
 * - a new session refused with a 503 gets no cookie, so if its `add` lands
 *   late, the record is an orphan no client points at; it expires with its
 *   lifetime;
 * - a logout answered 503 may still delete the session late.
 *
 * @example
 * const client = memjs.Client.create(process.env.MEMCACHED ?? '127.0.0.1:11211', { timeout: 2 });
 * SessionModule.forRoot({ interface: new MemcachedSessionInterface({ client }), secretKey })
 *
 * @publicApi
 */
export class MemcachedSessionInterface extends ServerSideSessionInterface {
  protected readonly storeName = 'Memcached';
  readonly client: Client;

  constructor(options: MemcachedSessionOptions) {
    super(options, ['client']);
    const client = options.client as unknown;
    if (!isMemjsClient(client)) {
      throw SessionConfigurationError.create('client', expectedClient(client), 'MemcachedSessionInterface');
    }
    this.client = client;
    const sidCharacters = Math.ceil((this.sidLength * 4) / 3);
    const keyBytes = Buffer.byteLength(this.keyPrefix) + sidCharacters;
    if (keyBytes > MAX_KEY_BYTES) {
      const option = options.keyPrefix === undefined ? 'sidLength' : 'keyPrefix';
      throw SessionConfigurationError.create(
        option,
        `keys would be ${keyBytes} bytes (keyPrefix ${Buffer.byteLength(this.keyPrefix)} + sid ${sidCharacters}); Memcached takes at most ${MAX_KEY_BYTES}.`,
        'MemcachedSessionInterface',
      );
    }
  }

  protected async readRecord(storeId: string, call: StoreCall): Promise<StoredRecord | null> {
    const response = await this.send(storeId, GET, call);
    if (response.header.status === NOT_FOUND) return null;
    this.expectStatus(response, storeId, OK);
    // Copied: memjs's slice would keep its whole read buffer alive for the request.
    return { value: Buffer.from(response.val), version: Buffer.from(response.header.cas) };
  }

  protected async swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome> {
    const extras = storageExtras(ttlSeconds);
    if (expected === null) {
      for (;;) {
        const added = await this.send(storeId, ADD, call, extras, value);
        if (added.header.status === OK) return { swapped: true };
        this.expectStatus(added, storeId, EXISTS);
        const current = await this.readRecord(storeId, call);
        if (current) return { swapped: false, current };
        // Deleted between the add and the get: absent again, so add again.
      }
    }
    const stored = await this.send(storeId, SET, call, extras, value, this.casOf(expected, storeId));
    if (stored.header.status === OK) return { swapped: true };
    if (stored.header.status === NOT_FOUND) return { swapped: false, current: null };
    this.expectStatus(stored, storeId, EXISTS);
    return { swapped: false, current: await this.readRecord(storeId, call) };
  }

  /** Creates or replaces the record, each step conditional, so that a write landing late never overwrites a newer one. */
  protected async replaceRecord(storeId: string, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<void> {
    const extras = storageExtras(ttlSeconds);
    for (;;) {
      const added = await this.send(storeId, ADD, call, extras, value);
      if (added.header.status === OK) return;
      this.expectStatus(added, storeId, EXISTS);
      const current = await this.readRecord(storeId, call);
      if (!current) continue;
      const replaced = await this.send(storeId, SET, call, extras, value, this.casOf(current, storeId));
      if (replaced.header.status === OK) return;
      // Changed or deleted since the get: try again.
      this.expectStatus(replaced, storeId, EXISTS, NOT_FOUND);
    }
  }

  protected async deleteRecord(storeId: string, call: StoreCall): Promise<void> {
    this.expectStatus(await this.send(storeId, DELETE, call), storeId, OK, NOT_FOUND);
  }

  protected async refreshRecord(storeId: string, ttlSeconds: number, call: StoreCall): Promise<void> {
    const expiry = Buffer.alloc(4);
    expiry.writeUInt32BE(memcachedExpiry(ttlSeconds));
    // Memcached's touch does nothing to a missing record: it never recreates it.
    this.expectStatus(await this.send(storeId, TOUCH, call, expiry), storeId, OK, NOT_FOUND);
  }

  /**
   * Sends one command to the server memjs picks for `storeId` and resolves
   * with its answer: once, not through memjs's `perform` (whose retries and
   * failover resend a command), and never after the deadline. When the
   * deadline passes unanswered and the connection has been silent meanwhile,
   * it is closed, failing what still waits on it, so that the next call
   * connects afresh.
   */
  private send(storeId: string, opcode: number, call: StoreCall, extras: Buffer = NOTHING, value: Buffer = NOTHING, cas: Buffer = NO_CAS): Promise<Response> {
    const left = call.deadline - Date.now();
    if (left <= 0) return Promise.reject(new Error(`nothing sent to Memcached: the request's store budget of ${this.storeTimeout} ms (storeTimeout) ran out`));
    const server = this.client.server(storeId) as ServerInternals | undefined | null;
    if (!server) return Promise.reject(new Error('memjs has no server to send to: its failover marked every server as down (failoverTime)'));
    this.client.incrSeq();
    // memjs keeps its sequence number as a signed 32-bit integer; the header and its answer carry it unsigned.
    const seq = this.client.seq >>> 0;
    const request = requestBuffer(opcode, storeId, extras, value, seq, cas);
    return new Promise<Response>((resolve, reject) => {
      let sentOn: Socket | undefined;
      let readBeforeSending = 0;
      const sentAt = Date.now();
      const timer = setTimeout(() => {
        reject(new Error(`no answer from Memcached at ${address(server)} within the request's store budget of ${this.storeTimeout} ms (storeTimeout)`));
        if (sentOn === undefined || sentOn.destroyed || server._socket !== sentOn) {
          // That connection is gone: nothing will answer these callbacks.
          delete server.responseCallbacks[seq];
          delete server.errorCallbacks[seq];
        } else if (sentOn.bytesRead === readBeforeSending && Date.now() - sentAt >= this.storeTimeout / 2) {
          // Silent for half a budget or more while a command waited: the server is not answering (paused, hung,
          // gone without a reset). Closed, failing what waits on it, so that the next call connects afresh.
          // A command merely answered late (sent with little budget left) leaves a connection that is answering alone.
          disarmClose(sentOn);
          server.error(new Error(`no answer for ${Date.now() - sentAt} ms; the connection was closed`));
        }
      }, left);
      server.onResponse(seq, (response) => {
        clearTimeout(timer);
        resolve(response);
      });
      server.onError(seq, (error: unknown) => {
        clearTimeout(timer);
        // memjs gave up this connection (its own timeout ends it without an error event).
        if (sentOn !== undefined && server._socket !== sentOn) disarmClose(sentOn);
        reject(connectionError(server, error));
      });
      const current = server._socket;
      server.write(request);
      // The socket the command is queued on: write() opens it synchronously when there is none.
      sentOn = server._socket;
      readBeforeSending = sentOn === current ? (current?.bytesRead ?? 0) : 0;
      if (sentOn !== undefined) watch(server, sentOn);
    });
  }

  /** Fails unless the answer has one of the `expected` statuses, naming what memcached said. */
  private expectStatus(response: Response, storeId: string, ...expected: number[]): void {
    const { status, opcode } = response.header;
    if (expected.includes(status)) return;
    const said = response.val.length > 0 ? response.val.toString('utf8') : `status 0x${status.toString(16)}`;
    const hint = status === TOO_LARGE ? ' (the record exceeds the server\'s item size limit, memcached -I, 1 MB by default)' : '';
    throw new Error(`Memcached answered "${said}" to ${OPCODE_NAMES[opcode] ?? `opcode 0x${opcode.toString(16)}`} ${storeId}${hint}`);
  }

  /** The CAS token of a record read by {@link readRecord}; fails when the server gives none (started with -C). */
  private casOf(record: StoredRecord, storeId: string): Buffer {
    const cas = record.version;
    if (!Buffer.isBuffer(cas) || cas.length !== 8) throw new Error(`the record of ${storeId} has no Memcached CAS token`);
    if (cas.equals(NO_CAS)) {
      throw new Error(`Memcached gave ${storeId} no CAS token (the server runs with CAS disabled, memcached -C): changes cannot be applied without losing concurrent ones; start it without -C`);
    }
    return cas;
  }
}

/** Seconds from now up to 30 days; beyond that, the Unix time of the expiry. */
export function memcachedExpiry(ttlSeconds: number, now = Date.now()): number {
  return ttlSeconds > THIRTY_DAYS ? Math.floor(now / 1000) + ttlSeconds : ttlSeconds;
}

/** The extras of a set or add: flags (0, as Flask-Session's clients write bytes) and the expiry. */
function storageExtras(ttlSeconds: number): Buffer {
  const extras = Buffer.alloc(8);
  extras.writeUInt32BE(memcachedExpiry(ttlSeconds), 4);
  return extras;
}

/** A binary-protocol request: the 24-byte header (with the CAS to compare, zero for none), extras, key, value. */
function requestBuffer(opcode: number, key: string, extras: Buffer, value: Buffer, seq: number, cas: Buffer): Buffer {
  const keyBytes = Buffer.from(key, 'utf8');
  const body = extras.length + keyBytes.length + value.length;
  const request = Buffer.alloc(24 + body);
  request.writeUInt8(0x80, 0); // request magic
  request.writeUInt8(opcode, 1);
  request.writeUInt16BE(keyBytes.length, 2);
  request.writeUInt8(extras.length, 4);
  request.writeUInt32BE(body, 8);
  request.writeUInt32BE(seq, 12);
  cas.copy(request, 16);
  extras.copy(request, 24);
  keyBytes.copy(request, 24 + extras.length);
  value.copy(request, 24 + extras.length + keyBytes.length);
  return request;
}

/** Sockets {@link watch} is watching. */
const watched = new WeakSet<Socket>();

/**
 * Watches a connection the interface sends on, once: when it fails, memjs's
 * `close` listener is disarmed (see {@link disarmClose}); when the server
 * closes it (stopped, killed) while memjs still uses it, what waits on it
 * fails at once, where memjs, which only fails commands on an error, would
 * leave them to their deadline.
 */
function watch(server: ServerInternals, socket: Socket): void {
  if (watched.has(socket)) return;
  watched.add(socket);
  socket.once('error', () => disarmClose(socket));
  // Before memjs's own listener, which forgets the connection.
  socket.prependOnceListener('close', () => {
    if (server._socket === socket) server.error(new Error('the server closed the connection'));
  });
}

/**
 * Removes memjs's `close` listener from a connection memjs has given up (it
 * failed, or timed out): that listener clears whichever connection is current
 * when it runs, a moment later, which may be the next one, opened meanwhile by
 * a new command; that command would then never be sent. memjs's `error()` has
 * already reset its state for the failed connection.
 */
function disarmClose(socket: Socket): void {
  socket.removeAllListeners('close');
}

function address(server: Server): string {
  return `${server.host}:${server.port}`;
}

/** memjs's error for a command (a socket error, its own timeout, a string on a failed SASL login), naming the server. */
function connectionError(server: Server, error: unknown): Error {
  const { code, message } = (typeof error === 'object' && error !== null ? error : { message: String(error) }) as { code?: string; message?: string };
  if (code === 'ECONNREFUSED') return new Error(`Memcached at ${address(server)} refused the connection (ECONNREFUSED)`);
  return new Error(`Memcached at ${address(server)}: ${message ?? String(error)}`);
}

function isMemjsClient(client: unknown): client is Client {
  const candidate = client as Partial<Client> | null | undefined;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.server === 'function' &&
    typeof candidate.incrSeq === 'function' &&
    typeof candidate.seq === 'number' &&
    Array.isArray(candidate.servers) &&
    candidate.servers.length > 0 &&
    candidate.servers.every(
      (server) => typeof server?.onResponse === 'function' && typeof server.onError === 'function' && typeof server.write === 'function' && typeof server.error === 'function',
    )
  );
}

const CREATE = "memjs.Client.create('127.0.0.1:11211')";

function expectedClient(client: unknown): string {
  if (client === undefined || client === null) return `required: a memjs Client, e.g. ${CREATE}.`;
  if (typeof client === 'string') {
    return `expected a memjs Client, got the string ${JSON.stringify(client)}: pass memjs.Client.create(${JSON.stringify(client)}).`;
  }
  const has = (name: string) => typeof (client as Record<string, unknown>)[name] === 'function';
  if (typeof client === 'function' || (typeof (client as { Client?: { create?: unknown } }).Client?.create === 'function')) {
    return `got the memjs module (or a class), not a client: pass ${CREATE}.`;
  }
  if (has('gets') && has('cas')) return `this looks like a client of the "memcached" package; MemcachedSessionInterface takes a memjs Client: ${CREATE}.`;
  if (has('getBuffer') || (has('sendCommand') && 'isReady' in (client as object))) {
    return `this looks like a Redis client; MemcachedSessionInterface takes a memjs Client (${CREATE}); for Redis use RedisSessionInterface.`;
  }
  if (has('wrap') && has('get') && has('set')) {
    return `this looks like a cache-manager Cache; MemcachedSessionInterface takes a memjs Client (${CREATE}); for a Cache use CacheManagerSessionInterface.`;
  }
  return `expected a memjs Client (memjs 1.x, ${CREATE}), got ${describe(client)}.`;
}

function describe(value: unknown): string {
  if (typeof value === 'object' && value !== null) return `a ${value.constructor?.name ?? 'object'} without memjs's Client methods (server, incrSeq, servers)`;
  return `${typeof value} ${String(value)}`;
}
