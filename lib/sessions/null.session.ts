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

  override set(): this {
    throw new NullSessionError();
  }

  override delete(): boolean {
    throw new NullSessionError();
  }

  override pop(): never {
    throw new NullSessionError();
  }

  override setDefault(): never {
    throw new NullSessionError();
  }

  override update(): this {
    throw new NullSessionError();
  }

  override clear(): void {
    throw new NullSessionError();
  }
}
