import { Logger } from '@nestjs/common';
import {
  addVary,
  appendSetCookie,
  readRequestCookie,
  type CookieReadableRequest,
  type HeaderWritableResponse,
} from './http/response-headers.js';
import { cookieSizeWarning, formatSetCookie, type SetCookieAttributes } from './http/set-cookie.js';
import type { SessionApp } from './interfaces/session-module-options.interface.js';
import { NullSession } from './sessions/null.session.js';
import { IS_EMPTY, RAW_DATA, isPermanent, type SessionMixin } from './sessions/session-mixin.js';

/**
 * Flask's `SessionInterface`: how a session is opened from a request and saved
 * onto a response. Subclass it to store sessions elsewhere; it is also the DI
 * token of the configured interface:
 * `constructor(private readonly sessions: SessionInterface) {}`.
 *
 * Every `getCookie*` method can be overridden, for example to pick the cookie
 * name from the request path: they get the request (Express `req`) as a second
 * argument, which Flask reads from its global `request` instead. The protected helpers read, set and delete the
 * session cookie and add `Vary: Cookie`, so a subclass never formats a header.
 *
 * Concurrent requests of one client open and save in any order: the last save
 * wins (as in Flask).
 *
 * @publicApi
 */
export abstract class SessionInterface {
  /** What {@link makeNullSession} builds. */
  nullSessionClass: new () => NullSession = NullSession;

  protected readonly logger = new Logger(this.constructor.name);

  /**
   * Loads the session of `request` (the platform's request, e.g. Express `req`).
   * Return `null` to give the request a {@link NullSession}.
   */
  abstract openSession(app: SessionApp, request: any): Promise<SessionMixin | null> | SessionMixin | null;

  /**
   * Stores the session and sets or deletes its cookie on `response` (the
   * platform's response, e.g. Express `res`). Called before the body is written.
   */
  abstract saveSession(app: SessionApp, session: SessionMixin, response: any): Promise<void> | void;

  /**
   * Checks the resolved options at bootstrap; throw a `SessionConfigurationError`
   * naming the option when they cannot work with this interface.
   */
  validate(_app: SessionApp): void {}

  /** The session given when {@link openSession} returns `null`. */
  makeNullSession(_app: SessionApp): NullSession {
    return new this.nullSessionClass();
  }

  /** Null sessions are never saved. */
  isNullSession(obj: unknown): boolean {
    return obj instanceof this.nullSessionClass;
  }

  /**
   * Gives the session a new identity with the same data, against session
   * fixation: call it at login. Server-side interfaces issue a new sid and
   * delete the old record; signed cookies have no identity to renew, so here
   * the data is simply kept (Flask declined regenerate for cookie sessions).
   *
   * @example
   * await this.sessions.regenerate(session);
   */
  regenerate(_session: SessionMixin): Promise<void> | void {}

  getCookieName(app: SessionApp, _request?: any): string {
    return app.config.cookie.name;
  }

  getCookieDomain(app: SessionApp, _request?: any): string | undefined {
    return app.config.cookie.domain;
  }

  /** `cookie.path`, else `applicationRoot`. */
  getCookiePath(app: SessionApp, _request?: any): string {
    return app.config.cookie.path ?? app.config.applicationRoot;
  }

  getCookieHttpOnly(app: SessionApp, _request?: any): boolean {
    return app.config.cookie.httpOnly;
  }

  getCookieSecure(app: SessionApp, _request?: any): boolean {
    return app.config.cookie.secure;
  }

  getCookieSameSite(app: SessionApp, _request?: any): 'Strict' | 'Lax' | 'None' | undefined {
    return app.config.cookie.sameSite;
  }

  getCookiePartitioned(app: SessionApp, _request?: any): boolean {
    return app.config.cookie.partitioned;
  }

  /** Now + `permanentSessionLifetime` for a permanent session; `null` (a browser-session cookie) otherwise. */
  getExpirationTime(app: SessionApp, session: SessionMixin): Date | null {
    return isPermanent(session) ? new Date(Date.now() + app.config.permanentSessionLifetime * 1000) : null;
  }

  /** Whether to send the cookie: the session changed, or it is permanent and `refreshEachRequest` is on. */
  shouldSetCookie(app: SessionApp, session: SessionMixin): boolean {
    return session.modified || (isPermanent(session) && app.config.refreshEachRequest);
  }

  /** The session cookie sent with `request`, if any. */
  protected getRequestCookie(app: SessionApp, request: CookieReadableRequest): string | undefined {
    return readRequestCookie(request, this.getCookieName(app, request));
  }

  /** Sets the session cookie with every configured attribute and `Expires` from {@link getExpirationTime}. */
  protected setSessionCookie(app: SessionApp, session: SessionMixin, response: HeaderWritableResponse, value: string): void {
    const request = requestOf(response);
    const name = this.getCookieName(app, request);
    const header = formatSetCookie(name, value, this.cookieAttributes(app, request, this.getExpirationTime(app, session)));
    if (this.writeHeader(response, header, name)) {
      const warning = cookieSizeWarning(name, header, value.length, app.config.maxCookieSize);
      if (warning) this.logger.warn(warning);
    }
  }

  /** Deletes the session cookie, repeating Domain, Path, Secure, SameSite and Partitioned so the browser matches it. */
  protected deleteSessionCookie(app: SessionApp, response: HeaderWritableResponse): void {
    const request = requestOf(response);
    const name = this.getCookieName(app, request);
    const header = formatSetCookie(name, '', this.cookieAttributes(app, request, new Date(0), 0));
    this.writeHeader(response, header, name);
  }

  /** Adds `Vary: Cookie`: the response depends on the session, so shared caches must not mix clients. */
  protected addVaryCookie(response: HeaderWritableResponse): void {
    if (!response.headersSent) addVary(response, 'Cookie');
  }

  /** The data of `session` without marking it accessed. */
  protected sessionData(session: SessionMixin): ReadonlyMap<string, unknown> {
    return session[RAW_DATA]();
  }

  /** Python's `not session`, without marking it accessed. */
  protected isSessionEmpty(session: SessionMixin): boolean {
    return session[IS_EMPTY]();
  }

  private cookieAttributes(app: SessionApp, request: unknown, expires: Date | null, maxAge?: number): SetCookieAttributes {
    return {
      expires,
      maxAge,
      domain: this.getCookieDomain(app, request),
      path: this.getCookiePath(app, request),
      secure: this.getCookieSecure(app, request),
      httpOnly: this.getCookieHttpOnly(app, request),
      sameSite: this.getCookieSameSite(app, request),
      partitioned: this.getCookiePartitioned(app, request),
    };
  }

  private writeHeader(response: HeaderWritableResponse, header: string, name: string): boolean {
    if (response.headersSent) {
      // Only a handler that sends the response itself (@Res() without passthrough) gets here.
      this.logger.warn(`The '${name}' cookie was not sent: the response headers were already sent by the handler.`);
      return false;
    }
    appendSetCookie(response, name, header);
    return true;
  }
}

/** The request a response answers: Express and Node link them as `res.req`. */
function requestOf(response: unknown): unknown {
  return (response as { req?: unknown }).req;
}
