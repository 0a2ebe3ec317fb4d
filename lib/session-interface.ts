import { Logger } from '@nestjs/common';
import {
  addVary,
  appendSetCookie,
  headersSent,
  readRequestCookie,
  removeSetCookie,
  requestOf,
  setHeader,
  type CookieReadableRequest,
  type HeaderWritableResponse,
} from './http/platform-seam.js';
import { cookieSizeWarning, formatSetCookie, type SetCookieAttributes } from './http/set-cookie.js';
import type { SessionApp } from './interfaces/session-module-options.interface.js';
import { SessionCookieRejectedError } from './session.errors.js';
import { cookieAttributeChecks } from './session.options.js';
import { NullSession } from './sessions/null.session.js';
import type { SecretKey } from './signing/signer.js';
import { IS_EMPTY, RAW_DATA, isPermanent, type SessionMixin } from './sessions/session-mixin.js';

/**
 * Flask's `SessionInterface`: how a session is opened from a request and saved
 * onto a response. Subclass it to store sessions elsewhere; it is also the DI
 * token of the configured interface:
 * `constructor(private readonly sessions: SessionInterface) {}`.
 *
 * `request` and `response` are the platform's own objects: Express's `req` and
 * `res`, or Fastify's request and reply. The protected helpers read, set and
 * delete the session cookie and add `Vary: Cookie` on either, so a subclass
 * that uses them never formats a header and works on both platforms.
 *
 * Every `getCookie*` method can be overridden, for example to pick the cookie
 * name from the request path: they get the request as a second argument,
 * which Flask reads from its global `request` instead. What they return is
 * checked like the options are at bootstrap: a value that would break the
 * Set-Cookie header (a domain with `;` taken from a Host header) is never
 * written (see {@link SessionCookieRejectedError}).
 *
 * @publicApi
 */
export abstract class SessionInterface {
  /** What {@link makeNullSession} builds. */
  nullSessionClass: new () => NullSession = NullSession;

  protected readonly logger = new Logger(this.constructor.name);

  /**
   * Loads the session of `request` (the platform's request: Express `req`,
   * Fastify's request, or the handshake request of a WebSocket client).
   * Return `null` to give the request a {@link NullSession}.
   */
  abstract openSession(app: SessionApp, request: any): Promise<SessionMixin | null> | SessionMixin | null;

  /**
   * Stores the session and sets or deletes its cookie on `response` (the
   * platform's response: Express `res` or Fastify's reply). Called before the
   * body is written. `response` is undefined for a WebSocket message, where
   * only sessions that {@link refusesWithoutResponse} accepts can have been
   * written; the cookie helpers then do nothing.
   */
  abstract saveSession(app: SessionApp, session: SessionMixin, response: any): Promise<void> | void;

  /**
   * Why `session` cannot be saved without a response to carry its cookie (a
   * WebSocket message), or `undefined` when it can. Such a session is
   * read-only there: a write throws with this reason. The default, right for
   * signed cookies, refuses: the cookie is the storage.
   */
  refusesWithoutResponse(_session: SessionMixin): string | undefined {
    return 'the session travels in its cookie, and a WebSocket message has no response to carry one: change the session in an HTTP request';
  }

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

  /**
   * Sets the session cookie with every configured attribute and `Expires`
   * from {@link getExpirationTime}. Returns false when it was not written:
   * no response (a WebSocket message), headers already sent (a handler that
   * answered itself with `@Res()`: logged), or an attribute from an
   * overridden getter that is not valid, which is logged and, when the session
   * was changed (its change needs the cookie), raised as a
   * {@link SessionCookieRejectedError}.
   */
  protected setSessionCookie(app: SessionApp, session: SessionMixin, response: HeaderWritableResponse | undefined, value: string): boolean {
    if (!response) return false;
    const request = requestOf(response);
    const cookie = this.cookieAttributes(app, request, this.getExpirationTime(app, session), undefined, session.modified);
    if (!cookie) return false;
    const header = formatSetCookie(cookie.name, value, cookie.attributes);
    if (!this.writeHeader(response, header, cookie.name)) return false;
    const warning = cookieSizeWarning(cookie.name, header, value.length, app.config.maxCookieSize);
    if (warning) this.logger.warn(warning);
    return true;
  }

  /**
   * Deletes the session cookie, repeating Domain, Path, Secure, SameSite and
   * Partitioned so the browser matches it. A delete always carries a change
   * (the session was emptied), so an invalid attribute raises.
   */
  protected deleteSessionCookie(app: SessionApp, response: HeaderWritableResponse | undefined): boolean {
    if (!response) return false;
    const cookie = this.cookieAttributes(app, requestOf(response), new Date(0), 0, true);
    return cookie !== undefined && this.writeHeader(response, formatSetCookie(cookie.name, '', cookie.attributes), cookie.name);
  }

  /** Takes back a Set-Cookie this interface added to a response not sent yet (its record could not be stored). */
  protected unsetSessionCookie(app: SessionApp, response: HeaderWritableResponse | undefined): void {
    if (response && !headersSent(response)) removeSetCookie(response, this.getCookieName(app, requestOf(response)));
  }

  /** Adds `Vary: Cookie`: the response depends on the session, so shared caches must not mix clients. */
  protected addVaryCookie(response: HeaderWritableResponse | undefined): void {
    this.addVaryHeader(response, 'Cookie');
  }

  /**
   * Adds `token` to the response's `Vary` (merged, never twice), on either
   * platform: for an interface whose session depends on another header.
   */
  protected addVaryHeader(response: HeaderWritableResponse | undefined, token: string): void {
    if (response && !headersSent(response)) addVary(response, token);
  }

  /** One header of the request (the first value when repeated), on either platform. */
  protected getRequestHeader(request: CookieReadableRequest, name: string): string | undefined {
    const value = request.headers?.[name.toLowerCase()];
    return Array.isArray(value) ? value[0] : value;
  }

  /** Sets a response header, replacing any value, on either platform; false once the headers are sent. */
  protected setResponseHeader(response: HeaderWritableResponse | undefined, name: string, value: string | readonly string[]): boolean {
    if (!response || headersSent(response)) return false;
    setHeader(response, name, value);
    return true;
  }

  /** The data of `session` without marking it accessed. */
  protected sessionData(session: SessionMixin): ReadonlyMap<string, unknown> {
    return session[RAW_DATA]();
  }

  /**
   * The signer of `app`'s keys (`[...secretKeyFallbacks, secretKey]`: the
   * current key last, as Flask), made once per configuration by `create`:
   * keys are derived once, not per request. Both the signed cookie and a
   * server-side signed sid get theirs here.
   */
  protected cachedSigner<T extends object>(app: SessionApp, create: (keys: SecretKey[]) => T): T {
    let signer = this.signers.get(app.config) as T | undefined;
    if (!signer) {
      const { secretKey, secretKeyFallbacks } = app.config;
      signer = create([...secretKeyFallbacks, secretKey!]);
      this.signers.set(app.config, signer);
    }
    return signer;
  }

  private readonly signers = new WeakMap<SessionApp['config'], object>();

  /** Python's `not session`, without marking it accessed. */
  protected isSessionEmpty(session: SessionMixin): boolean {
    return session[IS_EMPTY]();
  }

  /**
   * The cookie's name and attributes from the getters, each checked when it
   * differs from the option (validated at bootstrap), so the usual case costs
   * one comparison per attribute. Undefined when one is invalid.
   */
  private cookieAttributes(
    app: SessionApp,
    request: unknown,
    expires: Date | null,
    maxAge: number | undefined,
    needed: boolean,
  ): { name: string; attributes: SetCookieAttributes } | undefined {
    const options = app.config.cookie;
    const name = this.getCookieName(app, request);
    const domain = this.getCookieDomain(app, request);
    const path = this.getCookiePath(app, request);
    let sameSite = this.getCookieSameSite(app, request);
    let invalid: string | undefined;
    if (name !== options.name && !cookieAttributeChecks.name(name)) invalid = `getCookieName() returned ${JSON.stringify(name)}`;
    else if (domain !== options.domain && !cookieAttributeChecks.domain(domain)) invalid = `getCookieDomain() returned ${JSON.stringify(domain)}`;
    else if (path !== (options.path ?? app.config.applicationRoot) && !cookieAttributeChecks.path(path)) invalid = `getCookiePath() returned ${JSON.stringify(path)}`;
    else if (sameSite !== options.sameSite && sameSite !== undefined) {
      sameSite = cookieAttributeChecks.sameSite(sameSite);
      if (!sameSite) invalid = `getCookieSameSite() returned ${JSON.stringify(this.getCookieSameSite(app, request))}`;
    }
    if (invalid !== undefined) {
      const problem = `${invalid}, which is not a valid cookie attribute`;
      this.logger.error(`The session cookie was not set: ${problem}.`);
      if (needed) throw new SessionCookieRejectedError(problem);
      return undefined;
    }
    return {
      name,
      attributes: {
        expires,
        maxAge,
        domain,
        path,
        secure: Boolean(this.getCookieSecure(app, request)),
        httpOnly: Boolean(this.getCookieHttpOnly(app, request)),
        sameSite,
        partitioned: Boolean(this.getCookiePartitioned(app, request)),
      },
    };
  }

  private writeHeader(response: HeaderWritableResponse, header: string, name: string): boolean {
    if (headersSent(response)) {
      // Only a handler that sends the response itself (@Res() without passthrough) gets here.
      this.logger.warn(`The '${name}' cookie was not sent: the response headers were already sent by the handler.`);
      return false;
    }
    appendSetCookie(response, name, header);
    return true;
  }
}
