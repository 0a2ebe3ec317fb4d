import { hash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import {
  ServerSideSessionInterface,
  type ServerSideSessionOptions,
  type StoreCall,
  type StoredRecord,
  type SwapOutcome,
} from '../server-side/server-side.session-interface.js';
import { SessionWriteQueue, type BatchOutcome, type BatchWrite } from '../server-side/session-write-queue.js';
import { ServerClock } from '../server-side/server-clock.js';
import { SessionConfigurationError } from '../session.errors.js';

/** @publicApi */
export interface RedisSessionOptions extends ServerSideSessionOptions {
  /**
   * An ioredis client: a `Redis` or a `Cluster`. The interface never closes
   * it. It listens to the client's `error` and `ready` events to fail fast
   * while the server is unreachable; give the client an `error` listener of
   * your own too (ioredis logs "Unhandled error event" otherwise).
   */
  client: Redis | Cluster;
}

/**
 * Every write is this one script, so that it applies atomically and refuses
 * itself when it runs after its deadline (ARGV[1], in the server's clock, ms):
 * a write the client was told failed never lands later, whether it waited in
 * a paused server or was resent after a reconnect. One key per call, so it
 * runs on a Cluster too. Operations (ARGV[2]):
 * - `swap`: SET only if the record's SHA-1 is ARGV[3] (`''`: only if absent),
 * - `set`: SET; `del`: DEL; `expire`: EXPIRE.
 * Replies `{code, now}`: 1 done, 0 too late, 2 changed (then the current
 * record third), 3 gone.
 */
const WRITE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[1]) then return {0, now} end
local op = ARGV[2]
if op == 'swap' then
  local current = redis.call('GET', KEYS[1])
  if ARGV[3] == '' then
    if current then return {2, now, current} end
  elseif not current then
    return {3, now}
  elseif redis.sha1hex(current) ~= ARGV[3] then
    return {2, now, current}
  end
  redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])
elseif op == 'set' then
  redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])
elseif op == 'del' then
  redis.call('DEL', KEYS[1])
elseif op == 'expire' then
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return {1, now}
`;
const WRITE_SCRIPT_SHA = hash('sha1', WRITE_SCRIPT, 'hex');

/** ioredis errors that mean the server cannot be reached at all: the next request fails at once rather than wait. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNRESET', 'ETIMEDOUT']);

type ScriptReply = [number, number, Buffer?];
type Waiter = { resolve(): void; reject(error: Error): void };
type RedisLike = Redis & { evalshaBuffer(...args: unknown[]): Promise<unknown>; evalBuffer(...args: unknown[]): Promise<unknown> };

/**
 * Sessions in Redis, as Flask-Session stores them: `session:<sid>` holds the
 * msgpack (or JSON) of the session dict, with the lifetime as TTL (`GET`,
 * `SET … EX`, `DEL`; `EXPIRE` refreshes an unchanged session). A changed
 * session is written by compare-and-set, so concurrent requests that change
 * different keys keep both.
 *
 * Reliability: no command of ours waits in ioredis's offline queue (while the
 * client is not connected, a request waits for it up to its budget without
 * sending anything, and fails at once when the last attempt was refused); and
 * every write refuses to apply past its deadline (see {@link WRITE_SCRIPT}),
 * measured in the server's clock, whose offset from ours is tracked from the
 * script's replies.
 *
 * @example
 * const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
 * client.on('error', (error) => logger.warn(`Redis: ${error.message}`));
 * SessionModule.forRoot({ interface: new RedisSessionInterface({ client }), secretKey })
 *
 * @publicApi
 */
export class RedisSessionInterface extends ServerSideSessionInterface {
  protected readonly storeName = 'Redis';
  readonly client: Redis | Cluster;
  /** Why the server cannot be reached, since the last connection attempt failed; cleared when it is ready. */
  private unreachable: Error | undefined;
  private readonly waiters = new Set<Waiter>();
  /** The server's clock compared with ours, from the replies of the write script. */
  private readonly serverClock = new ServerClock(50);
  /** How long before the request's deadline a write must have run, to be answered within it. */
  private readonly margin: number;
  /** Concurrent changes of one session from this process, written together (a group commit). */
  private readonly queue: SessionWriteQueue;

  constructor(options: RedisSessionOptions) {
    super(options, ['client']);
    const client = options.client as unknown;
    if (!isIoredisClient(client)) {
      throw SessionConfigurationError.create('client', expectedClient(client), 'RedisSessionInterface');
    }
    this.client = client as Redis | Cluster;
    this.margin = Math.min(100, Math.max(5, this.storeTimeout / 10));
    this.queue = new SessionWriteQueue((storeId, batch) => this.writeBatch(storeId, batch), this.margin, () => tooLate(this.storeTimeout));
    this.client.on('error', (error: Error & { code?: string }) => {
      // Requests fail at once, naming it, while the server refuses connections or the client's login.
      if ((error?.code && UNREACHABLE.has(error.code)) || LOGIN_REFUSAL.test(String(error?.message))) this.unreachable = error;
      for (const waiter of this.waiters) waiter.reject(error);
      this.waiters.clear();
    });
    this.client.on('ready', () => {
      this.unreachable = undefined;
      for (const waiter of this.waiters) waiter.resolve();
      this.waiters.clear();
    });
  }

  protected async readRecord(storeId: string, call: StoreCall): Promise<StoredRecord | null> {
    await this.connected(call);
    const value = await this.client.getBuffer(storeId);
    return value ? { value } : null;
  }

  /**
   * A change goes through the write queue: concurrent changes of one session
   * from this process become one script run (the measured alternative, a
   * compare-and-set each, cost 4 GETs a request with 16 writers of one
   * session). "Only if absent" (a new session) is one script of its own.
   */
  protected async swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome> {
    if (expected) return this.queue.swap(storeId, expected.value, value, ttlSeconds, call.deadline);
    const [code, , current] = await this.write(storeId, call, 'swap', '', value, ttlSeconds);
    if (code === 1) return { swapped: true };
    return { swapped: false, current: code === 2 && current ? { value: current } : null };
  }

  protected async replaceRecord(storeId: string, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<void> {
    this.queue.forget(storeId);
    await this.write(storeId, call, 'set', '', value, ttlSeconds);
  }

  protected async deleteRecord(storeId: string, call: StoreCall): Promise<void> {
    this.queue.forget(storeId);
    await this.write(storeId, call, 'del', '', '', 0);
  }

  protected async refreshRecord(storeId: string, ttlSeconds: number, call: StoreCall): Promise<void> {
    await this.write(storeId, call, 'expire', '', '', ttlSeconds);
  }

  /**
   * Redis refusing the client's login (a wrong password, a disabled user) or
   * its ACL refusing the user a command or a key is the developer's
   * configuration to fix: a 500 naming it, never a 503 "try again".
   */
  protected override configurationFailure(error: unknown): SessionConfigurationError | undefined {
    const message = String((error as Error)?.message ?? error);
    if (LOGIN_REFUSAL.test(message)) return SessionConfigurationError.create('client', `Redis refused the client's login: ${message}`, 'RedisSessionInterface');
    if (!ACL_REFUSAL.test(message)) return undefined;
    return SessionConfigurationError.create(
      'client',
      `Redis refused the client's user: ${message}. The store needs GET, EVALSHA and EVAL, and within its script TIME, GET, SET, EXPIRE and DEL, on the keys ${this.keyPrefix}*.`,
      'RedisSessionInterface',
    );
  }

  /** One batch of the write queue: a compare-and-set against the batch's first expected record, by its earliest deadline. */
  private async writeBatch(storeId: string, batch: BatchWrite): Promise<BatchOutcome> {
    let reply: ScriptReply;
    try {
      reply = await this.write(storeId, { deadline: batch.deadline }, 'swap', hash('sha1', batch.expected, 'hex'), batch.value, batch.ttl);
    } catch (error) {
      if (error instanceof LateWrite) return { written: false, late: true };
      throw error;
    }
    const [code, , current] = reply;
    if (code === 1) return { written: true };
    return { written: false, current: code === 2 && current ? current : null };
  }

  /**
   * Runs the write script with the request's deadline in the server's clock.
   * A refusal as too late while our own clock says there is time left means
   * the clock offset was wrong: it is corrected from the reply and the write
   * tried once more.
   */
  private async write(storeId: string, call: StoreCall, op: string, expectedSha: string, value: Buffer | string, ttlSeconds: number): Promise<ScriptReply> {
    for (let attempt = 0; ; attempt++) {
      await this.connected(call);
      const sentAt = Date.now();
      const deadline = Math.floor(call.deadline - this.margin + this.serverClock.offset);
      const reply = await this.runScript(storeId, [String(deadline), op, expectedSha, value, String(ttlSeconds)]);
      const receivedAt = Date.now();
      this.serverClock.sample(reply[1], sentAt, receivedAt);
      if (reply[0] !== 0) return reply;
      if (attempt > 0 || receivedAt >= call.deadline - this.margin) throw tooLate(this.storeTimeout);
    }
  }

  private async runScript(storeId: string, args: Array<string | Buffer>): Promise<ScriptReply> {
    const client = this.client as RedisLike;
    try {
      return (await client.evalshaBuffer(WRITE_SCRIPT_SHA, 1, storeId, ...args)) as ScriptReply;
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      return (await client.evalBuffer(WRITE_SCRIPT, 1, storeId, ...args)) as ScriptReply;
    }
  }

  /**
   * Resolves once the client is connected, without sending anything before:
   * a command sent while it is not would wait in ioredis's offline queue and
   * could run long after the request gave up. Fails at once when the server
   * refused the last connection attempt (naming the address), and when the
   * client was closed for good.
   */
  private connected(call: StoreCall): Promise<void> {
    const client = this.client;
    if (client.status === 'ready') return Promise.resolve();
    if (client.status === 'end') return Promise.reject(new Error('the ioredis client was closed (quit() or disconnect())'));
    if (this.unreachable) return Promise.reject(this.unreachable);
    if (client.status === 'wait') client.connect().catch(() => undefined); // lazyConnect: the first use connects
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      // Stop waiting with the request: nothing may be sent for it once it was answered.
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`Redis was not connected within the request's store budget (client status "${client.status}")`));
      }, Math.max(0, call.deadline - Date.now()));
      this.waiters.add(waiter);
    });
  }
}

/** Redis refusing the client's AUTH: a wrong password or user, a disabled user, a password required. */
const LOGIN_REFUSAL = /^(WRONGPASS|NOAUTH)\b/;

/** Redis's ACL refusing a command or key: `NOPERM …`, or within a script on Redis 7.0 "ERR The user executing the script can't run this command". */
const ACL_REFUSAL = /\bNOPERM\b|user executing the script can't run this command/;

/** A write refused by Redis as past its deadline: nothing was written. */
class LateWrite extends Error {}

function tooLate(storeTimeout: number): LateWrite {
  return new LateWrite(`the write reached Redis after the request's deadline and was refused (storeTimeout ${storeTimeout} ms)`);
}

function isIoredisClient(client: unknown): boolean {
  const candidate = client as Partial<RedisLike> | null;
  return (
    candidate !== null &&
    typeof candidate === 'object' &&
    typeof candidate.getBuffer === 'function' &&
    typeof candidate.evalshaBuffer === 'function' &&
    typeof candidate.on === 'function' &&
    typeof candidate.status === 'string'
  );
}

function expectedClient(client: unknown): string {
  if (client === undefined) return 'required: an ioredis Redis or Cluster instance, e.g. new Redis(process.env.REDIS_URL).';
  if (typeof client === 'string') return `expected an ioredis Redis or Cluster instance, got the string ${JSON.stringify(client)}: pass new Redis(${JSON.stringify(client)}).`;
  if (client && typeof (client as { sendCommand?: unknown }).sendCommand === 'function' && 'isReady' in (client as object)) {
    return 'this looks like a node-redis client; RedisSessionInterface takes an ioredis Redis or Cluster instance.';
  }
  return 'expected an ioredis Redis or Cluster instance (ioredis 5 or 6).';
}
