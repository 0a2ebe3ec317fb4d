import { SessionReadOnlyError } from '../session.errors.js';

/** Data of a session: string keys, any serializable values. */
export type SessionData = Record<string, unknown>;

/** Symbols of the non-tracking accessors that session interfaces use (not exported from the package). */
export const RAW_DATA = Symbol('nest-session.rawData');
export const IS_EMPTY = Symbol('nest-session.isEmpty');
/** How many writes the session has seen: a write after the session was saved moves it, so it is saved again. */
export const WRITES = Symbol('nest-session.writes');
/** True once `clear()` ran: the stored record is then replaced, not merged into. */
export const CLEARED = Symbol('nest-session.cleared');
/** Why writes are refused, when they are (e.g. a signed-cookie session over a WebSocket has no response to carry it). */
export const READ_ONLY = Symbol('nest-session.readOnly');

/** Where Flask keeps `session.permanent` in the data. */
export const PERMANENT_KEY = '_permanent';

/**
 * The base class of every session: a dictionary with Flask's dict methods and
 * Flask's `new` / `modified` / `accessed` flags.
 *
 * Any read sets `accessed` (so the response gets `Vary: Cookie`); writes set
 * `modified` as Flask's `CallbackDict` does. Changes inside a nested value are
 * not seen: reassign the value or set `modified = true` by hand.
 *
 * @example
 * class MySession extends SessionMixin<{ userId?: number }> {}
 *
 * @publicApi
 */
export class SessionMixin<T extends SessionData = SessionData> {
  /** True when the client sent no usable session (no cookie, a bad one, an unknown id). */
  new = false;
  /** True once the session was read or written; adds `Vary: Cookie` to the response. */
  accessed = false;

  [WRITES] = 0;
  [CLEARED] = false;
  [READ_ONLY]: string | undefined = undefined;
  private isModified = false;
  protected readonly data: Map<string, unknown>;

  constructor(initial?: Partial<T> | Iterable<readonly [string, unknown]>) {
    if (initial === undefined || Symbol.iterator in Object(initial)) {
      this.data = new Map(initial as Iterable<readonly [string, unknown]> | undefined);
      return;
    }
    // Key by key: no array of entries for every session opened.
    this.data = new Map();
    for (const key of Object.keys(initial)) this.data.set(key, (initial as Record<string, unknown>)[key]);
  }

  /** True once the data changed; set it by hand after changing a nested value. */
  get modified(): boolean {
    return this.isModified;
  }

  set modified(value: boolean) {
    if (value) {
      if (this[READ_ONLY] !== undefined) throw new SessionReadOnlyError(this[READ_ONLY]);
      this[WRITES]++;
    }
    this.isModified = value;
  }

  /** Whether the session outlives the browser session (`Expires` on the cookie). Stored as `_permanent`. */
  get permanent(): boolean {
    this.accessed = true;
    return this.data.get(PERMANENT_KEY) === true;
  }

  set permanent(value: boolean) {
    this.set(PERMANENT_KEY as keyof T & string, Boolean(value) as T[keyof T & string]);
  }

  get<K extends keyof T & string>(key: K): T[K] | undefined;
  get<K extends keyof T & string, F>(key: K, fallback: F): NonNullable<T[K]> | F;
  get(key: string, fallback?: unknown): unknown {
    this.accessed = true;
    return this.data.has(key) ? this.data.get(key) : fallback;
  }

  /** Sets a value; marks the session modified. Returns the session. */
  set<K extends keyof T & string>(key: K, value: T[K]): this {
    this.refuseIfReadOnly();
    this.data.set(key, value);
    return this.touched();
  }

  has(key: keyof T & string): boolean {
    this.accessed = true;
    return this.data.has(key);
  }

  /** Removes a key; marks the session modified only if the key existed. */
  delete(key: keyof T & string): boolean {
    this.accessed = true;
    this.refuseIfReadOnly();
    const existed = this.data.delete(key);
    if (existed) this.modified = true;
    return existed;
  }

  /** Removes a key and returns its value (or `fallback`); modified only if the key existed. */
  pop<K extends keyof T & string>(key: K, fallback?: T[K]): T[K] | undefined {
    this.accessed = true;
    this.refuseIfReadOnly();
    if (!this.data.has(key)) return fallback;
    const value = this.data.get(key) as T[K];
    this.data.delete(key);
    this.modified = true;
    return value;
  }

  /** Returns the value of `key`, first setting it to `value` if missing (then modified). */
  setDefault<K extends keyof T & string>(key: K, value: NonNullable<T[K]>): NonNullable<T[K]> {
    this.accessed = true;
    this.refuseIfReadOnly();
    if (this.data.has(key)) return this.data.get(key) as NonNullable<T[K]>;
    this.data.set(key, value);
    this.modified = true;
    return value;
  }

  /** Sets every key of `values`; always marks the session modified. */
  update(values: Partial<T> | Iterable<readonly [string, unknown]>): this {
    this.refuseIfReadOnly();
    const entries = Symbol.iterator in Object(values) ? (values as Iterable<readonly [string, unknown]>) : Object.entries(values);
    for (const [key, value] of entries) this.data.set(key, value);
    return this.touched();
  }

  /** Removes every key; always marks the session modified. */
  clear(): void {
    this.refuseIfReadOnly();
    this.data.clear();
    this[CLEARED] = true;
    this.touched();
  }

  keys(): IterableIterator<string> {
    this.accessed = true;
    return this.data.keys();
  }

  values(): IterableIterator<unknown> {
    this.accessed = true;
    return this.data.values();
  }

  entries(): IterableIterator<[string, unknown]> {
    this.accessed = true;
    return this.data.entries();
  }

  [Symbol.iterator](): IterableIterator<[string, unknown]> {
    return this.entries();
  }

  get size(): number {
    this.accessed = true;
    return this.data.size;
  }

  /** A plain-object copy of the data, so `return session` from a handler sends it as JSON. */
  toJSON(): Partial<T> {
    this.accessed = true;
    return Object.fromEntries(this.data) as Partial<T>;
  }

  /** The data without touching `accessed`; for session interfaces. */
  [RAW_DATA](): ReadonlyMap<string, unknown> {
    return this.data;
  }

  /** Python's `not session`: what decides that a modified session deletes its cookie. */
  [IS_EMPTY](): boolean {
    return this.data.size === 0;
  }

  protected touched(): this {
    this.accessed = true;
    this.modified = true;
    return this;
  }

  /** Throws before a write changes anything, when the session cannot be saved. */
  protected refuseIfReadOnly(): void {
    if (this[READ_ONLY] !== undefined) throw new SessionReadOnlyError(this[READ_ONLY]);
  }
}

/** `_permanent` without marking the session accessed. */
export function isPermanent(session: SessionMixin): boolean {
  return session[RAW_DATA]().get(PERMANENT_KEY) === true;
}
