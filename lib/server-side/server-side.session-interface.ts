import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { CookieReadableRequest, HeaderWritableResponse } from '../http/platform-seam.js';
import type { SessionApp } from '../interfaces/session-module-options.interface.js';
import { StoreSerializer, type SerializationFormat } from '../serializers/store-serializer.js';
import { SessionConfigurationError, SessionError, SessionStoreUnavailableError, describeOptionValue as describe } from '../session.errors.js';
import { SessionInterface } from '../session-interface.js';
import { LOADED, STORE_SPENT, ServerSideSession } from '../sessions/server-side.session.js';
import { CLEARED, isPermanent, type SessionMixin } from '../sessions/session-mixin.js';
import { Signer } from '../signing/signer.js';

/**
 * Options every server-side interface takes. Defaults are Flask-Session's.
 *
 * @publicApi
 */
export interface ServerSideSessionOptions {
  /** Prefix of every store key: a record is `keyPrefix + sid`. Default `'session:'` (`SESSION_KEY_PREFIX`). */
  keyPrefix?: string;
  /** Sign the sid in the cookie (`sid.signature`); needs `secretKey`. Default `false` (`SESSION_USE_SIGNER`). */
  useSigner?: boolean;
  /** New sessions are permanent (the cookie gets `Expires`). Default `true` (`SESSION_PERMANENT`). */
  permanent?: boolean;
  /** Random bytes in a sid; 32 gives 43 base64url characters. Default `32` (`SESSION_ID_LENGTH`). */
  sidLength?: number;
  /** How records are encoded. Default `'msgpack'` (`SESSION_SERIALIZATION_FORMAT`). */
  serializationFormat?: SerializationFormat;
  /**
   * Milliseconds all the store work of one request may take (the read, the
   * write, a `regenerate()`), after which it gets a 503 and nothing of it is
   * stored: a write that reaches the store later is refused there, where the
   * store can tell (see the README's "Reliability"). Default `2000`.
   */
  storeTimeout?: number;
  /**
   * Seconds between two refreshes of an unchanged session's TTL (Redis
   * `EXPIRE`, Memcached touch, a file's expiry) with `refreshEachRequest`:
   * after this process wrote or refreshed a record, requests within this time
   * make no store call but the read. A record may so expire up to this long
   * before `permanentSessionLifetime` has passed since the last request; the
   * cookie is still re-sent on every request. `0` refreshes on every request,
   * as Flask-Session does (which rewrites the whole record). Default `60`.
   */
  refreshAfter?: number;
  /**
   * Seconds a session that is not permanent (a browser-session cookie) is
   * kept in the store after its last use. Flask-Session keeps every record
   * for `permanentSessionLifetime` (31 days), so a route that writes the
   * session for anonymous visitors leaves a record per visitor for a month;
   * with `permanent: false` and, say, `nonPermanentLifetime: 3600`, an
   * abandoned anonymous session is gone an hour after its last request (each
   * use moves it, at most once per `refreshAfter`). A permanent session (a
   * login with `session.permanent = true`) keeps `permanentSessionLifetime`.
   * Default: `permanentSessionLifetime`, as Flask-Session.
   */
  nonPermanentLifetime?: number;
}

/** Records this process wrote or refreshed recently, at most this many remembered (oldest forgotten first). */
const REMEMBERED_REFRESHES = 10_000;
/** A compare-and-set that keeps losing gives up here, if the budget has not run out first. */
const MAX_SWAP_ATTEMPTS = 1000;

const SID_ALPHABET = /^[A-Za-z0-9_-]+$/;
const COMMON_OPTIONS = ['keyPrefix', 'useSigner', 'permanent', 'sidLength', 'serializationFormat', 'storeTimeout', 'refreshAfter', 'nonPermanentLifetime'];

/**
 * A record as a store holds it. `version` is whatever the store compares a
 * record by in {@link ServerSideSessionInterface.swapRecord} (Memcached's CAS
 * token); stores that compare the bytes leave it out.
 *
 * @publicApi
 */
export interface StoredRecord {
  readonly value: Buffer;
  readonly version?: unknown;
}

/** What a compare-and-set did: written, or not, because the record is now `current` (null: gone). */
export type SwapOutcome = { readonly swapped: true } | { readonly swapped: false; readonly current: StoredRecord | null };

/**
 * One store call's share of the request's budget. A store that can make a
 * write refuse itself once `deadline` (ms since the epoch, this host's clock)
 * has passed does so, so that a write the client was told failed (a 503)
 * never lands later, however long it was held up (a paused server, a resent
 * command).
 *
 * @publicApi
 */
export interface StoreCall {
  readonly deadline: number;
}

/** Keys set and keys deleted by one request: what a write applies to the stored record. */
interface SessionChange {
  readonly set: ReadonlyMap<string, unknown>;
  readonly deleted: readonly string[];
}

/**
 * Flask-Session's `ServerSideSessionInterface`: the cookie holds a random sid
 * (signed with `useSigner`), the data lives in a store under
 * `keyPrefix + sid` with a TTL of `permanentSessionLifetime`.
 *
 * A store is a small subclass with five primitives (read, compare-and-set,
 * replace, delete, refresh one record); cookies, signing, flags, `Vary`,
 * merging and {@link regenerate} live here.
 *
 * - A cookie whose sid is malformed or badly signed gives a fresh session
 *   without any store call; a sid the store does not know gives a fresh sid
 *   (a sid chosen by the client is never adopted).
 * - **No lost updates to distinct keys.** A request that changed some keys
 *   applies only those (keys set, keys deleted; a nested change marked by
 *   `modified` counts as that key set) to the record as it is now, with a
 *   compare-and-set retried until it wins: two concurrent requests that set
 *   different keys both keep theirs. Two that set the same key: the last
 *   write wins. `clear()`, an emptied session (logout) and `regenerate()`
 *   replace or delete the whole record and win; a concurrent write then
 *   finds the record gone and does not bring it back.
 * - An unchanged session whose cookie is refreshed only has its TTL
 *   refreshed, at most once per `refreshAfter` seconds.
 * - All the store work of a request shares one budget of `storeTimeout` ms;
 *   past it, or on a store error, the request gets a 503
 *   (`SessionStoreUnavailableError`).
 *
 * @publicApi
 */
export abstract class ServerSideSessionInterface extends SessionInterface {
  readonly keyPrefix: string;
  readonly useSigner: boolean;
  readonly permanent: boolean;
  readonly sidLength: number;
  readonly storeTimeout: number;
  readonly refreshAfter: number;
  /** Undefined: `permanentSessionLifetime`, as Flask-Session. */
  readonly nonPermanentLifetime: number | undefined;
  readonly serializer: StoreSerializer;

  /** Named in 503 messages and logs, e.g. `'Redis'`. */
  protected abstract readonly storeName: string;
  /** The record, or `null` when the store does not have it (or it expired). */
  protected abstract readRecord(storeId: string, call: StoreCall): Promise<StoredRecord | null>;
  /**
   * Writes `value` (expiring after `ttlSeconds`) only if the record is still
   * `expected` (for `null`: only if there is none), atomically; otherwise
   * writes nothing and returns the record as it is now.
   */
  protected abstract swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome>;
  /** Creates or replaces the record, whatever it holds, expiring after `ttlSeconds`. */
  protected abstract replaceRecord(storeId: string, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<void>;
  protected abstract deleteRecord(storeId: string, call: StoreCall): Promise<void>;
  /** Moves the record's expiry to `ttlSeconds` from now without rewriting it; nothing when it is gone. */
  protected abstract refreshRecord(storeId: string, ttlSeconds: number, call: StoreCall): Promise<void>;

  /** When this process last wrote or refreshed a record (ms), by store id, oldest first. */
  private readonly storedAt = new Map<string, number>();
  private readonly sidCharacters: number;

  /**
   * Checks every option at construction (so at bootstrap): an unknown name
   * (`keyprefix`), a wrong type or range fails here, naming the option, and
   * never later as a 503. `ownOptions` are the subclass's own option names.
   */
  constructor(options: ServerSideSessionOptions = {}, ownOptions: readonly string[] = []) {
    super();
    const owner = new.target.name;
    const fail = SessionConfigurationError.thrower(owner);
    if (options === null || typeof options !== 'object') fail('(options)', `expected an object of options, got ${describe(options)}.`);
    const known = [...COMMON_OPTIONS, ...ownOptions];
    for (const key of Object.keys(options)) {
      if (known.includes(key)) continue;
      const like = known.find((name) => name.toLowerCase() === key.toLowerCase());
      fail(key, like ? `unknown option; did you mean "${like}"?` : `unknown option; expected one of ${known.join(', ')}.`);
    }
    const text = (name: keyof ServerSideSessionOptions, fallback: string): string => {
      const value = options[name] ?? fallback;
      return typeof value === 'string' ? value : fail(name, `expected a string, got ${describe(value)}.`);
    };
    const flag = (name: keyof ServerSideSessionOptions, fallback: boolean): boolean => {
      const value = options[name] ?? fallback;
      return typeof value === 'boolean' ? value : fail(name, `expected true or false, got ${describe(value)}.`);
    };
    const number = (name: keyof ServerSideSessionOptions, fallback: number, valid: (n: number) => boolean, expected: string): number => {
      const value = options[name] ?? fallback;
      return typeof value === 'number' && valid(value) ? value : fail(name, `expected ${expected}, got ${describe(value)}.`);
    };
    this.keyPrefix = text('keyPrefix', 'session:');
    this.useSigner = flag('useSigner', false);
    this.permanent = flag('permanent', true);
    this.sidLength = number('sidLength', 32, (n) => Number.isInteger(n) && n >= 16 && n <= 512, 'a whole number of bytes from 16 to 512');
    this.storeTimeout = number('storeTimeout', 2000, (n) => Number.isFinite(n) && n > 0, 'a number of milliseconds > 0');
    this.refreshAfter = number('refreshAfter', 60, (n) => Number.isFinite(n) && n >= 0, 'a number of seconds >= 0');
    this.nonPermanentLifetime =
      options.nonPermanentLifetime === undefined
        ? undefined
        : number('nonPermanentLifetime', 0, (n) => Number.isInteger(n) && n >= 1, 'a whole number of seconds >= 1');
    const format = options.serializationFormat ?? 'msgpack';
    if (format !== 'msgpack' && format !== 'json') fail('serializationFormat', `expected 'msgpack' or 'json', got ${describe(format)}.`);
    this.serializer = new StoreSerializer(format);
    this.sidCharacters = Math.ceil((this.sidLength * 4) / 3);
  }

  override validate(app: SessionApp): void {
    if (this.useSigner && !app.config.secretKey) {
      throw SessionConfigurationError.create('secretKey', 'useSigner needs a secretKey to sign the session id.');
    }
  }

  async openSession(app: SessionApp, request: CookieReadableRequest): Promise<SessionMixin> {
    const cookie = this.getRequestCookie(app, request);
    const sid = cookie ? this.sidFromCookie(app, cookie) : undefined;
    if (!sid) return this.freshSession();
    const spent = { ms: 0 };
    const record = await this.callStore(spent, (call) => this.readRecord(this.keyPrefix + sid, call));
    const session = (record && this.sessionFrom(record, sid)) || this.freshSession();
    session[STORE_SPENT] = spent.ms;
    return session;
  }

  async saveSession(app: SessionApp, session: SessionMixin, response: HeaderWritableResponse | undefined): Promise<void> {
    const serverSide = session as ServerSideSession;
    const storeId = this.keyPrefix + serverSide.sid;
    let vary = session.accessed;
    if (this.isSessionEmpty(session)) {
      if (session.modified) {
        // The cookie first, synchronously: a streamed response's headers are about to go out.
        this.deleteSessionCookie(app, response);
        this.addVaryCookie(response);
        if (!session.new) await this.deleteStored(serverSide, storeId);
      } else if (vary) {
        this.addVaryCookie(response);
      }
      return;
    }
    const lifetime = this.storeLifetime(app, session);
    // Serialized first: a value that cannot be stored leaves the record and the response as they were.
    const write = session.modified ? this.planWrite(serverSide) : undefined;
    // The cookie before the store call, synchronously: a streamed response (res.write) sends its
    // headers right after this call returns, and the cookie must be in them. Taken back if the store fails.
    let cookieSet = false;
    if (this.shouldSetCookie(app, session)) {
      cookieSet = this.setSessionCookie(app, session, response, this.useSigner ? this.signer(app).sign(serverSide.sid) : serverSide.sid);
      vary = true;
    }
    if (vary) this.addVaryCookie(response);
    try {
      if (write) {
        if (!(await this.applyWrite(serverSide, storeId, write, lifetime))) {
          // The record was deleted meanwhile (a logout, a regenerate): that wins, nothing is brought back.
          if (cookieSet) this.unsetSessionCookie(app, response);
          this.logger.debug?.(`Not saving ${storeId}: it was deleted by a concurrent request.`);
          return;
        }
        this.noteStored(storeId);
      } else if (app.config.refreshEachRequest && !session.new && this.isRefreshDue(storeId)) {
        await this.storeWork(serverSide, (call) => this.refreshRecord(storeId, lifetime, call));
        this.noteStored(storeId);
      }
    } catch (error) {
      if (cookieSet) this.unsetSessionCookie(app, response);
      throw error;
    }
  }

  /** Seconds the record is kept after this request: see `nonPermanentLifetime`. */
  private storeLifetime(app: SessionApp, session: SessionMixin): number {
    const lifetime = Math.max(1, app.config.permanentSessionLifetime);
    return this.nonPermanentLifetime === undefined || isPermanent(session) ? lifetime : Math.min(lifetime, this.nonPermanentLifetime);
  }

  /** A stored session can be written from a WebSocket message (its cookie already points at it); a new one cannot. */
  override refusesWithoutResponse(session: SessionMixin): string | undefined {
    return session.new
      ? 'this client has no stored session yet, and a WebSocket message has no response to set its cookie on: create the session in an HTTP request'
      : undefined;
  }

  /**
   * A new sid for the same data, the old record deleted and the cookie re-set
   * on save: call it at login, against session fixation. Unlike
   * Flask-Session's, it also works on an empty session (cleared just before).
   *
   * @example
   * await this.sessions.regenerate(session);
   */
  override async regenerate(session: SessionMixin): Promise<void> {
    const serverSide = session as ServerSideSession;
    if (!session.new) await this.deleteStored(serverSide, this.keyPrefix + serverSide.sid);
    serverSide.replaceSid(this.generateSid());
    serverSide[LOADED] = null;
    session.new = true;
    session.modified = true;
  }

  protected generateSid(): string {
    return randomBytes(this.sidLength).toString('base64url');
  }

  /**
   * What saving a changed session writes: the whole record when it is new,
   * was cleared or regenerated (it replaces whatever is stored), else the
   * keys it changed against the record it was opened from. Serializes the
   * whole session first, so a value that cannot be stored fails here.
   */
  private planWrite(session: ServerSideSession): { bytes: Buffer; change?: SessionChange } {
    const data = Object.fromEntries(this.sessionData(session));
    const bytes = this.serializer.dumps(data);
    const loaded = session[LOADED];
    if (!loaded || session.new || session[CLEARED]) return { bytes };
    const before = this.decode(loaded);
    if (!before) return { bytes };
    const set = new Map<string, unknown>();
    for (const key of Object.keys(data)) {
      if (!Object.hasOwn(before, key) || !isDeepStrictEqual(before[key], data[key])) set.set(key, data[key]);
    }
    const deleted = Object.keys(before).filter((key) => !Object.hasOwn(data, key));
    return { bytes, change: { set, deleted } };
  }

  /**
   * Writes a planned change: a replace in one call, a change by
   * compare-and-set against the record the session was opened from, then
   * against whatever the store answers is there now, until it wins or the
   * budget runs out. False when the record is gone meanwhile.
   */
  private async applyWrite(session: ServerSideSession, storeId: string, write: { bytes: Buffer; change?: SessionChange }, ttl: number): Promise<boolean> {
    const { change } = write;
    if (!change) {
      await this.storeWork(session, (call) => this.replaceRecord(storeId, write.bytes, ttl, call));
      return true;
    }
    if (change.set.size === 0 && change.deleted.length === 0) {
      await this.storeWork(session, (call) => this.refreshRecord(storeId, ttl, call));
      return true;
    }
    let expected = session[LOADED];
    let bytes = write.bytes;
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.storeWork(session, (call) => this.swapRecord(storeId, expected, bytes, ttl, call));
      if (outcome.swapped) return true;
      if (outcome.current === null) return false;
      if (attempt >= MAX_SWAP_ATTEMPTS) {
        throw new SessionStoreUnavailableError(this.storeName, `${storeId} kept changing under ${attempt} compare-and-set attempts`);
      }
      expected = outcome.current;
      const now = this.decode(outcome.current);
      bytes = now ? this.serializer.dumps(applyChange(now, change)) : write.bytes;
    }
  }

  private sessionFrom(record: StoredRecord, sid: string): ServerSideSession | undefined {
    const data = this.decode(record);
    if (!data) return undefined;
    const session = new ServerSideSession(data, sid);
    session[LOADED] = record;
    return session;
  }

  /** The record's data, or undefined (logged) when no format reads it. */
  private decode(record: StoredRecord): Record<string, unknown> | undefined {
    try {
      return this.serializer.loads(record.value);
    } catch (error) {
      this.logger.warn(`Ignoring an unreadable session record: ${(error as Error).message}`);
      return undefined;
    }
  }

  private async deleteStored(session: ServerSideSession, storeId: string): Promise<void> {
    this.storedAt.delete(storeId);
    await this.storeWork(session, (call) => this.deleteRecord(storeId, call));
  }

  /** One store call of `session`'s request, within what is left of its budget, the time it takes counted against it. */
  private async storeWork<T>(session: ServerSideSession, run: (call: StoreCall) => Promise<T>): Promise<T> {
    const spent = { ms: session[STORE_SPENT] };
    try {
      return await this.callStore(spent, run);
    } finally {
      session[STORE_SPENT] = spent.ms;
    }
  }

  private isRefreshDue(storeId: string): boolean {
    const storedAt = this.storedAt.get(storeId);
    return storedAt === undefined || Date.now() - storedAt >= this.refreshAfter * 1000;
  }

  private noteStored(storeId: string): void {
    if (this.refreshAfter === 0) return;
    const now = Date.now();
    // An older time only makes a refresh due sooner, so a recent one is left as it is.
    const storedAt = this.storedAt.get(storeId);
    if (storedAt !== undefined && now - storedAt < this.refreshAfter * 500) return;
    // Re-inserted so that the map stays ordered by time and the oldest goes first.
    this.storedAt.delete(storeId);
    if (this.storedAt.size >= REMEMBERED_REFRESHES) this.storedAt.delete(this.storedAt.keys().next().value!);
    this.storedAt.set(storeId, now);
  }

  /**
   * Runs one store call within what is left of the request's budget: the
   * budget is the time spent in store calls (`spent.ms`, updated here), not
   * the request's wall-clock time, so a slow handler between the read and the
   * write costs nothing. A failure, or the budget running out, becomes a 503
   * (`SessionStoreUnavailableError`, naming the store and the cause). One
   * promise and one timer per call (no `Promise.race`): this runs once or
   * twice on every request.
   */
  protected callStore<T>(spent: { ms: number }, run: (call: StoreCall) => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    const deadline = startedAt + this.storeTimeout - spent.ms;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      // Declared before settle() can run: a budget already spent fails before the timer is set.
      let timer: NodeJS.Timeout | undefined;
      /** True for the first outcome only: the answer, the error or the timeout. */
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        spent.ms += Date.now() - startedAt;
        return true;
      };
      const fail = (error: unknown) => {
        if (!settle()) return;
        reject(this.storeFailure(error));
      };
      const budget = `the request's store budget of ${this.storeTimeout} ms (storeTimeout) ran out`;
      const left = deadline - Date.now();
      if (left <= 0) return fail(new Error(budget));
      timer = setTimeout(() => fail(new Error(budget)), left);
      let pending: Promise<T>;
      try {
        pending = run({ deadline });
      } catch (error) {
        fail(error);
        return;
      }
      pending.then((value) => settle() && resolve(value), fail);
    });
  }

  /**
   * A store's check at bootstrap (`onModuleInit`), given 5 × `storeTimeout`
   * (its deadline): a configuration mistake it finds (a `SessionConfigurationError`,
   * thrown or found by {@link configurationFailure}) fails the bootstrap; a store that
   * cannot be reached, or does not answer in time, is only logged, as session
   * requests answer 503 until it does.
   */
  protected async checkAtBootstrap(where: string, check: (deadline: number) => Promise<unknown>): Promise<void> {
    const patience = 5 * this.storeTimeout;
    let timer: NodeJS.Timeout | undefined;
    const slow = new Promise<'slow'>((resolve) => {
      timer = setTimeout(() => resolve('slow'), patience);
      timer.unref();
    });
    try {
      if ((await Promise.race([check(Date.now() + patience), slow])) === 'slow') {
        this.logger.warn(`${where} did not answer within ${patience} ms at bootstrap; session requests wait for it.`);
      }
    } catch (error) {
      const failure = this.storeFailure(error);
      if (failure instanceof SessionConfigurationError) throw failure;
      this.logger.warn(`${where} failed its check at bootstrap: ${(error as Error)?.message ?? error}; session requests answer 503 until it passes.`);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * What a failed store call answers: nest-session's own errors as they are
   * (a configuration mistake found on first use is a 500), a refusal the
   * store's server reports for a configuration reason as
   * {@link configurationFailure} names it (a 500), anything else as the store
   * being unavailable (503).
   */
  protected storeFailure(error: unknown): SessionError {
    if (error instanceof SessionError) return error;
    return this.configurationFailure(error) ?? new SessionStoreUnavailableError(this.storeName, String((error as Error)?.message ?? error));
  }

  /**
   * The developer's mistake that `error` (from the store's server or driver)
   * reports, if it does: a refused login, a missing privilege, a table that
   * is gone. A store whose server can say so overrides this; none by default.
   */
  protected configurationFailure(_error: unknown): SessionConfigurationError | undefined {
    return undefined;
  }

  private sidFromCookie(app: SessionApp, cookie: string): string | undefined {
    let sid = cookie;
    if (this.useSigner) {
      try {
        sid = this.signer(app).unsign(cookie);
      } catch {
        return undefined;
      }
    }
    return sid.length === this.sidCharacters && SID_ALPHABET.test(sid) ? sid : undefined;
  }

  /** Flask-Session's signer (salt `'flask-session'`, `'hmac'`); unlike Flask-Session, fallback keys verify too. */
  private signer(app: SessionApp): Signer {
    return this.cachedSigner(app, (keys) => new Signer(keys, { salt: 'flask-session', keyDerivation: 'hmac' }));
  }

  private freshSession(): ServerSideSession {
    const session = new ServerSideSession({}, this.generateSid(), this.permanent);
    session.new = true;
    return session;
  }
}

/** `record` with the keys of `change` set and deleted. */
function applyChange(record: Record<string, unknown>, change: SessionChange): Record<string, unknown> {
  const next: Record<string, unknown> = {};
  for (const key of Object.keys(record)) {
    if (!change.deleted.includes(key)) defineEntry(next, key, record[key]);
  }
  for (const [key, value] of change.set) defineEntry(next, key, value);
  return next;
}

/** `record[key] = value`, where a "__proto__" key is data, not the prototype. */
function defineEntry(record: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}
