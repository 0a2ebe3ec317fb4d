import { IncomingMessage, ServerResponse } from 'node:http';
import { Server as NetServer, Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { parseSetCookie } from 'cookie';
import { SessionError, SessionNotInitializedError } from '../session.errors.js';
import { managerOfServer, type SessionManager } from '../session.manager.js';
import type { SessionData, SessionMixin } from '../sessions/session-mixin.js';

/**
 * What `sessionTransaction` reads of a cookie jar: superagent's `agent.jar`
 * (the `cookiejar` package's `CookieJar`). Described by shape, so this entry
 * loads neither supertest nor cookiejar.
 */
export interface AgentCookieJar {
  getCookies(access: { domain: string; path: string; secure: boolean; script: boolean }): ReadonlyArray<{ name: string; value: string }>;
  setCookies(cookies: string[], requestDomain?: string, requestPath?: string): unknown;
}

/** A supertest agent, `request.agent(app.getHttpServer())`: it keeps cookies in `jar` and sends them with every request. */
export interface SessionTestAgent {
  readonly jar: AgentCookieJar;
}

/** The application (`INestApplication`, Express or Fastify) or its HTTP server, for clients that do not keep cookies, such as Fastify's `app.inject()`. */
export type SessionTestApp = { getHttpServer(): unknown } | import('node:http').Server;

/** @publicApi */
export interface SessionTransactionOptions {
  /**
   * The request the session is opened for: its path decides which cookies
   * apply and is what an overridden `getCookie*(app, request)` sees as
   * `request.url`. Default: the session cookie's path (`cookie.path`, else
   * `applicationRoot`, `'/'`).
   */
  url?: string;
  /**
   * Application form only: the Cookie header the client sends now (e.g. from
   * an earlier `inject()` response); the session it points at is opened.
   * Default: no cookie, so a new session.
   */
  cookie?: string;
}

/** Where supertest sends requests: the loopback address, unless the server already listens on another. */
const SUPERTEST_HOST = '127.0.0.1';

/**
 * Flask's `client.session_transaction()` for NestJS e2e tests: opens the
 * session a test client would send, hands it to `change` to read or modify,
 * saves it through the application's `SessionInterface` (signed cookie or
 * server-side store alike), and gives the client the resulting cookie, so the
 * test starts logged in without calling a login route.
 *
 * - With a supertest agent, `request.agent(app.getHttpServer())` on Express
 *   or Fastify: the session of the agent's cookies is opened, and the new
 *   cookie goes into the agent's jar, so its next request carries it.
 * - With the application (or its HTTP server), for clients that keep no
 *   cookies, such as Fastify's `app.inject()`: the session of
 *   `options.cookie` is opened (none: a new session).
 *
 * Either way it resolves with the Cookie header to send next: the client's
 * other cookies with the session cookie set, replaced or removed.
 *
 * @throws {SessionError} "Session backend did not open a session" when the
 *   interface gives a `NullSession` (signed cookies without a `secretKey`),
 *   as Flask raises; anything `change` throws, with nothing saved.
 *
 * @example
 * const agent = request.agent(app.getHttpServer());
 * await sessionTransaction(agent, (session) => session.set('userId', 42));
 * await agent.get('/me').expect(200, { userId: 42 });
 *
 * @example
 * // Fastify's inject(), which keeps no cookies:
 * const cookie = await sessionTransaction(app, (session) => session.set('userId', 42));
 * const response = await app.inject({ method: 'GET', url: '/me', headers: { cookie } });
 *
 * @publicApi
 */
export function sessionTransaction<T extends SessionData = SessionData>(
  agent: SessionTestAgent,
  change: (session: SessionMixin<T>) => unknown,
  options?: Omit<SessionTransactionOptions, 'cookie'>,
): Promise<string>;
export function sessionTransaction<T extends SessionData = SessionData>(
  app: SessionTestApp,
  change: (session: SessionMixin<T>) => unknown,
  options?: SessionTransactionOptions,
): Promise<string>;
export async function sessionTransaction<T extends SessionData = SessionData>(
  client: SessionTestAgent | SessionTestApp,
  change: (session: SessionMixin<T>) => unknown,
  options: SessionTransactionOptions = {},
): Promise<string> {
  if (isAgent(client)) {
    if (options.cookie !== undefined) {
      throw new SessionError("sessionTransaction(): a supertest agent sends the cookies of its jar; options.cookie is for the application form (e.g. Fastify's inject()).");
    }
    const server = (client as { app?: unknown }).app;
    const manager = managerOf(server);
    const url = options.url ?? defaultUrl(manager);
    const path = new URL(url, 'http://localhost').pathname;
    const access = { domain: hostOf(server), path, secure: server instanceof TlsServer, script: false };
    const { name, setCookies } = await transact(manager, valueString(client.jar.getCookies(access)), url, change);
    if (setCookies.length) {
      client.jar.setCookies(setCookies, access.domain, '/');
      assertAgentSends(client.jar, access, name, setCookies);
    }
    return valueString(client.jar.getCookies(access));
  }
  const server =
    typeof (client as { getHttpServer?: unknown }).getHttpServer === 'function'
      ? (client as { getHttpServer(): unknown }).getHttpServer()
      : client instanceof NetServer
        ? client
        : undefined;
  const sent = options.cookie ?? '';
  const manager = managerOf(server);
  const { setCookies } = await transact(manager, sent, options.url ?? defaultUrl(manager), change);
  return applySetCookies(sent, setCookies);
}

/** The session cookie's path (`cookie.path`, else `applicationRoot`): a request there carries the cookie. */
function defaultUrl(manager: SessionManager): string {
  return manager.sessionInterface.getCookiePath(manager.app);
}

function isAgent(client: unknown): client is SessionTestAgent {
  return typeof (client as { jar?: AgentCookieJar } | null)?.jar?.getCookies === 'function';
}

function managerOf(server: unknown): SessionManager {
  if (!(server instanceof NetServer)) {
    throw new SessionError(
      'sessionTransaction() needs the application, its HTTP server, or a supertest agent made from it: ' +
        'request.agent(app.getHttpServer()). An agent of a URL (request.agent("http://…")) or request(server), which keeps no cookies, will not do.',
    );
  }
  const manager = managerOfServer(server);
  if (!manager) {
    throw SessionNotInitializedError.create(
      'sessionTransaction() found no SessionModule on this HTTP server: is SessionModule.forRoot() imported, and was the application initialised (await app.init())?',
    );
  }
  return manager;
}

/**
 * Opens the session of the Cookie header `cookie`, lets `change` change it,
 * saves it onto a response that is never sent, and returns the session
 * cookie's name and the Set-Cookie headers the application would have sent.
 */
async function transact<T extends SessionData>(
  manager: SessionManager,
  cookie: string,
  url: string,
  change: (session: SessionMixin<T>) => unknown,
): Promise<{ name: string; setCookies: string[] }> {
  // Node's own request and response objects, as the interfaces get on Express: the cookie helpers
  // read the request's headers and write the response's through the platform seam.
  const request = new IncomingMessage(new Socket());
  request.method = 'GET';
  request.url = url;
  request.headers = { host: SUPERTEST_HOST, ...(cookie ? { cookie } : {}) };
  const state = manager.openDetached(request);
  const session = (await manager.sessionOf(state)) as SessionMixin<T>;
  if (manager.sessionInterface.isNullSession(session)) {
    throw new SessionError(
      'Session backend did not open a session. Check the configuration: signed-cookie sessions need a secret key, ' +
        'SessionModule.forRoot({ secretKey }).',
    );
  }
  await change(session);
  const response = new ServerResponse(request);
  await manager.save(state, response);
  const header = response.getHeader('set-cookie');
  const setCookies = header === undefined ? [] : Array.isArray(header) ? header : [String(header)];
  return { name: manager.sessionInterface.getCookieName(manager.app, request), setCookies };
}

/** The host supertest sends to for `server`: the address it listens on, else the loopback it starts it on. */
function hostOf(server: unknown): string {
  const address = (server as { address?(): unknown }).address?.() as { address?: string } | string | null | undefined;
  const host = typeof address === 'object' && address?.address;
  if (!host || host === '::' || host === '0.0.0.0') return SUPERTEST_HOST;
  return host.includes(':') ? `[${host}]` : host;
}

function valueString(cookies: ReadonlyArray<{ name: string; value: string }>): string {
  return cookies.map(({ name, value }) => `${name}=${value}`).join('; ');
}

/** Fails when the jar would not send what the application just set: a cookie domain, secure flag or path the agent's requests do not match. */
function assertAgentSends(
  jar: AgentCookieJar,
  access: { domain: string; path: string; secure: boolean; script: boolean },
  name: string,
  setCookies: string[],
): void {
  const header = setCookies.find((h) => pairOf(h)[0] === name);
  if (!header) return;
  const expected = isDeletion(header) ? undefined : pairOf(header)[1];
  if (jar.getCookies(access).find((cookie) => cookie.name === name)?.value === expected) return;
  throw new SessionError(
    `sessionTransaction(): the agent would not send the session cookie it was given to ${access.secure ? 'https' : 'http'}://${access.domain}${access.path} ` +
      `(Set-Cookie: ${header}). Check the cookie options domain, secure and path.`,
  );
}

/** The name and the value of a Set-Cookie header or Cookie pair, as written (not decoded). */
function pairOf(text: string): [string, string] {
  const pair = text.split(';', 1)[0];
  const equals = pair.indexOf('=');
  return equals < 0 ? ['', pair.trim()] : [pair.slice(0, equals).trim(), pair.slice(equals + 1).trim()];
}

/** True for a Set-Cookie header that deletes its cookie (`Max-Age=0` or an `Expires` in the past). */
function isDeletion(header: string): boolean {
  const { maxAge, expires } = parseSetCookie(header);
  return maxAge !== undefined ? maxAge <= 0 : expires !== undefined && expires.getTime() <= Date.now();
}

/** The Cookie header `sent` after the response's Set-Cookie headers: each cookie set, replaced or deleted; the others byte for byte. */
function applySetCookies(sent: string, setCookies: string[]): string {
  const cookies = new Map<string, string>();
  for (const part of sent.split(';')) {
    if (part.trim()) cookies.set(...pairOf(part));
  }
  for (const header of setCookies) {
    const [name, value] = pairOf(header);
    if (isDeletion(header)) cookies.delete(name);
    else cookies.set(name, value);
  }
  return [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
}
