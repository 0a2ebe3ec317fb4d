import { NullSessionError } from '../session.errors.js';
import { SessionMixin, type SessionData } from './session-mixin.js';

/**
 * The session given when no secret key is configured: it reads as empty, and
 * every write throws a {@link NullSessionError} saying how to set the key.
 * Null sessions are never saved.
 *
 * @publicApi
 */
export class NullSession<T extends SessionData = SessionData> extends SessionMixin<T> {
  override set permanent(_value: boolean) {
    throw new NullSessionError();
  }

  override get permanent(): boolean {
    return super.permanent;
  }

  override set<K extends keyof T & string>(_key: K, _value: T[K]): this {
    throw new NullSessionError();
  }

  override delete(_key: keyof T & string): boolean {
    throw new NullSessionError();
  }

  override pop<K extends keyof T & string>(_key: K, _fallback?: T[K]): never {
    throw new NullSessionError();
  }

  override setDefault<K extends keyof T & string>(_key: K, _value: NonNullable<T[K]>): never {
    throw new NullSessionError();
  }

  override update(_values: Partial<T> | Iterable<readonly [string, unknown]>): this {
    throw new NullSessionError();
  }

  override clear(): void {
    throw new NullSessionError();
  }
}
