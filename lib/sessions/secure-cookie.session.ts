import { SessionMixin, type SessionData } from './session-mixin.js';

/**
 * The session of {@link SecureCookieSessionInterface}: its whole data travels
 * in the signed cookie. Flask's `SecureCookieSession`.
 *
 * @publicApi
 */
export class SecureCookieSession<T extends SessionData = SessionData> extends SessionMixin<T> {}
