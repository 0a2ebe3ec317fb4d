import { randomBytes } from 'node:crypto';
import type { CookieReadableRequest, HeaderWritableResponse } from '../http/platform-seam.js';
import type { SessionApp } from '../interfaces/session-module-options.interface.js';
import { StoreSerializer, type SerializationFormat } from '../serializers/store-serializer.js';
import { SessionConfigurationError, SessionStoreUnavailableError } from '../session.errors.js';
import { SessionInterface } from '../session-interface.js';
import { ServerSideSession } from '../sessions/server-side.session.js';
import type { SessionMixin } from '../sessions/session-mixin.js';
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
  /** Milliseconds a store call may take before the request gets a 503. Default `2000`. */
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
}

/** Records this process wrote or refreshed recently, at most this many remembered (oldest forgotten first). */
const REMEMBERED_REFRESHES = 10_000;

const SID_ALPHABET = /^[A-Za-z0-9_-]+$/;

/**
 * Flask-Session's `ServerSideSessionInterface`: the cookie holds a random sid
 * (signed with `useSigner`), the data lives in a store under
 * `keyPrefix + sid` with a TTL of `permanentSessionLifetime`.
 *
 * A store is a small subclass that reads, writes, deletes and refreshes one
 * record; cookies, signing, flags, `Vary` and {@link regenerate} live here.
 *
 * - A cookie whose sid is malformed or badly signed gives a fresh session
 *   without any store call; a sid the store does not know gives a fresh sid
 *   (a sid chosen by the client is never adopted).
 * - An unchanged session whose cookie is refreshed only has its TTL refreshed,
 *   at most once per `refreshAfter` seconds.
 * - A store call that fails or takes longer than `storeTimeout` gives a 503.
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
  readonly serializer: StoreSerializer;

  /** Named in 503 messages and logs, e.g. `'Redis'`. */
  protected abstract readonly storeName: string;
  /** The record's bytes, or `null` when the store does not have it (or it expired). */
  protected abstract readRecord(storeId: string): Promise<Buffer | null>;
  /** Creates or replaces the record, expiring after `ttlSeconds`. */
  protected abstract writeRecord(storeId: string, value: Buffer, ttlSeconds: number): Promise<void>;
  protected abstract deleteRecord(storeId: string): Promise<void>;
  /** Moves the record's expiry to `ttlSeconds` from now without rewriting it. */
  protected abstract refreshRecord(storeId: string, ttlSeconds: number): Promise<void>;

  private readonly signers = new WeakMap<SessionApp['config'], Signer>();
  /** When this process last wrote or refreshed a record (ms), by store id, oldest first. */
  private readonly storedAt = new Map<string, number>();
  private readonly sidCharacters: number;

  constructor(options: ServerSideSessionOptions = {}) {
    super();
    this.keyPrefix = options.keyPrefix ?? 'session:';
    this.useSigner = options.useSigner ?? false;
    this.permanent = options.permanent ?? true;
    this.sidLength = options.sidLength ?? 32;
    this.storeTimeout = options.storeTimeout ?? 2000;
    this.refreshAfter = options.refreshAfter ?? 60;
    if (typeof this.refreshAfter !== 'number' || !(this.refreshAfter >= 0)) {
      throw SessionConfigurationError.create('refreshAfter', `expected a number of seconds >= 0, got ${String(options.refreshAfter)}.`);
    }
    if (!Number.isInteger(this.sidLength) || this.sidLength < 16) {
      throw SessionConfigurationError.create('sidLength', `expected a whole number of bytes >= 16, got ${String(options.sidLength)}.`);
    }
    const format = options.serializationFormat ?? 'msgpack';
    if (format !== 'msgpack' && format !== 'json') {
      throw SessionConfigurationError.create('serializationFormat', `expected 'msgpack' or 'json', got ${JSON.stringify(format)}.`);
    }
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
    const bytes = await this.callStore(() => this.readRecord(this.keyPrefix + sid));
    if (!bytes) return this.freshSession();
    try {
      return new ServerSideSession(this.serializer.loads(bytes), sid);
    } catch (error) {
      this.logger.warn(`Ignoring the unreadable session record ${this.keyPrefix + sid}: ${(error as Error).message}`);
      return this.freshSession();
    }
  }

  async saveSession(app: SessionApp, session: SessionMixin, response: HeaderWritableResponse | undefined): Promise<void> {
    const { sid } = session as ServerSideSession;
    const storeId = this.keyPrefix + sid;
    let vary = session.accessed;
    if (this.isSessionEmpty(session)) {
      if (session.modified) {
        // The cookie first, synchronously: a streamed response's headers are about to go out.
        this.deleteSessionCookie(app, response);
        this.addVaryCookie(response);
        if (!session.new) await this.deleteStored(storeId);
      } else if (vary) {
        this.addVaryCookie(response);
      }
      return;
    }
    const lifetime = Math.max(1, app.config.permanentSessionLifetime);
    // Serialize first: a value that cannot be stored leaves the record and the response as they were.
    const bytes = session.modified ? this.serializer.dumps(Object.fromEntries(this.sessionData(session))) : undefined;
    // The cookie before the store call, synchronously: a streamed response (res.write) sends its
    // headers right after this call returns, and the cookie must be in them. Taken back if the store fails.
    let cookieSet = false;
    if (this.shouldSetCookie(app, session)) {
      cookieSet = this.setSessionCookie(app, session, response, this.useSigner ? this.signer(app).sign(sid) : sid);
      vary = true;
    }
    if (vary) this.addVaryCookie(response);
    try {
      if (bytes) {
        await this.callStore(() => this.writeRecord(storeId, bytes, lifetime));
        this.noteStored(storeId);
      } else if (app.config.refreshEachRequest && !session.new && this.isRefreshDue(storeId)) {
        await this.callStore(() => this.refreshRecord(storeId, lifetime));
        this.noteStored(storeId);
      }
    } catch (error) {
      if (cookieSet) this.unsetSessionCookie(app, response);
      throw error;
    }
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
    if (!session.new) await this.deleteStored(this.keyPrefix + serverSide.sid);
    serverSide.replaceSid(this.generateSid());
    session.new = true;
    session.modified = true;
  }

  protected generateSid(): string {
    return randomBytes(this.sidLength).toString('base64url');
  }

  private async deleteStored(storeId: string): Promise<void> {
    this.storedAt.delete(storeId);
    await this.callStore(() => this.deleteRecord(storeId));
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
   * Runs one store call within `storeTimeout`; a failure becomes a 503 and is
   * logged with the store's name. One promise and one timer per call (no
   * `Promise.race`): this runs once or twice on every request.
   */
  protected callStore<T>(call: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      /** True for the first outcome only: the answer, the error or the timeout. */
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        return true;
      };
      const fail = (error: unknown) => {
        if (!settle()) return;
        reject(new SessionStoreUnavailableError(this.storeName, String((error as Error)?.message ?? error)));
      };
      const timer = setTimeout(() => fail(new Error(`no answer within ${this.storeTimeout} ms`)), this.storeTimeout);
      let pending: Promise<T>;
      try {
        pending = call();
      } catch (error) {
        fail(error);
        return;
      }
      pending.then((value) => settle() && resolve(value), fail);
    });
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
    let signer = this.signers.get(app.config);
    if (!signer) {
      const { secretKey, secretKeyFallbacks } = app.config;
      signer = new Signer([...secretKeyFallbacks, secretKey!], { salt: 'flask-session', keyDerivation: 'hmac' });
      this.signers.set(app.config, signer);
    }
    return signer;
  }

  private freshSession(): ServerSideSession {
    const session = new ServerSideSession({}, this.generateSid(), this.permanent);
    session.new = true;
    return session;
  }
}
