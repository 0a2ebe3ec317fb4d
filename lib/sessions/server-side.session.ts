import { IS_EMPTY, PERMANENT_KEY, SessionMixin, type SessionData } from './session-mixin.js';

/** The record as the store gave it when the session was opened: what a change is merged against. Internal. */
export const LOADED = Symbol('nest-session.loaded');
/** How much of its store budget (`storeTimeout`, ms) the request has spent in store calls so far. Internal. */
export const STORE_SPENT = Symbol('nest-session.storeSpent');

/**
 * The session of a server-side interface: the data lives in a store under
 * `keyPrefix + sid`, the cookie carries only the `sid`. Flask-Session's
 * `ServerSideSession`.
 *
 * @publicApi
 */
export class ServerSideSession<T extends SessionData = SessionData> extends SessionMixin<T> {
  [LOADED]: { readonly value: Buffer; readonly version?: unknown } | null = null;
  [STORE_SPENT] = 0;
  private currentSid: string;

  constructor(data: Partial<T> | undefined, sid: string, permanent?: boolean) {
    super(data);
    this.currentSid = sid;
    if (permanent) this.data.set(PERMANENT_KEY, true);
  }

  /** The session id: random, 43 characters for the default 32 bytes. Read-only. */
  get sid(): string {
    return this.currentSid;
  }

  /** Keeps `_permanent`, as Flask-Session does: clearing a session does not change its lifetime. */
  override clear(): void {
    const permanent = this.data.get(PERMANENT_KEY);
    super.clear();
    if (permanent !== undefined) this.data.set(PERMANENT_KEY, permanent);
  }

  /** Empty when nothing but `_permanent` is left. */
  override [IS_EMPTY](): boolean {
    return this.data.size === 0 || (this.data.size === 1 && this.data.has(PERMANENT_KEY));
  }

  /** @internal Used by `regenerate()`. */
  replaceSid(sid: string): void {
    this.currentSid = sid;
  }
}
