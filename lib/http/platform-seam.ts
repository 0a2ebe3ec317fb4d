import { parseCookie } from 'cookie';

/**
 * The one place that knows how Express and Fastify differ for sessions:
 * reading the request's cookies, and reading and writing response headers.
 * Everything above it (the interfaces, their cookie helpers, the interceptor)
 * takes the platform's own objects and goes through these functions, so a
 * custom `SessionInterface` built on the base class's helpers works on both.
 *
 * - Express: `req` / `res` (Node's `IncomingMessage` / `ServerResponse`).
 * - Fastify: `FastifyRequest` / `FastifyReply`, which wrap Node's objects as
 *   `.raw`. Headers go through the reply's own API: Fastify writes them with
 *   `writeHead(status, replyHeaders)`, which would override what was set on
 *   the raw response.
 */

/** The part of a request that sessions read: Express's `req`, Fastify's request, Node's `IncomingMessage`. */
export interface CookieReadableRequest {
  readonly headers: Record<string, string | string[] | undefined>;
}

/** The part of a response that sessions write: Express's `res` (Node's `ServerResponse`) or Fastify's reply. */
export interface HeaderWritableResponse {
  getHeader(name: string): number | string | string[] | undefined;
}

interface NodeResponse extends HeaderWritableResponse {
  readonly headersSent: boolean;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
  removeHeader(name: string): void;
  req?: unknown;
}

interface FastifyLikeReply extends HeaderWritableResponse {
  readonly raw: NodeResponse;
  readonly request?: unknown;
  header(name: string, value: unknown): unknown;
  removeHeader(name: string): unknown;
}

function isFastifyReply(response: HeaderWritableResponse): response is FastifyLikeReply {
  return (response as Partial<FastifyLikeReply>).raw !== undefined && typeof (response as FastifyLikeReply).header === 'function';
}

/** One cookie of the request's `Cookie` header; the first one when the name repeats, as Werkzeug. */
export function readRequestCookie(request: CookieReadableRequest, name: string): string | undefined {
  const header = request.headers?.cookie;
  if (!header) return undefined;
  const text = Array.isArray(header) ? header.join('; ') : header;
  // Cheap rejection before parsing: most requests carry other cookies only.
  if (!text.includes(name)) return undefined;
  return parseCookie(text)[name];
}

/** Whether the status line and headers are already on the wire (then no header can be added). */
export function headersSent(response: HeaderWritableResponse): boolean {
  return isFastifyReply(response) ? response.raw.headersSent : (response as NodeResponse).headersSent;
}

/** The request a response answers: Express and Node link them as `res.req`, Fastify as `reply.request`. */
export function requestOf(response: HeaderWritableResponse | undefined): unknown {
  if (!response) return undefined;
  return isFastifyReply(response) ? response.request : (response as NodeResponse).req;
}

/** Sets a response header, replacing what was there (Fastify's `reply.header()` would append a Set-Cookie). */
export function setHeader(response: HeaderWritableResponse, name: string, value: string | readonly string[]): void {
  if (isFastifyReply(response)) {
    // reply.header() appends to an existing Set-Cookie: replace it instead.
    response.removeHeader(name);
    response.header(name, value);
  } else {
    (response as NodeResponse).setHeader(name, value);
  }
}

function removeHeader(response: HeaderWritableResponse, name: string): void {
  if (isFastifyReply(response)) response.removeHeader(name);
  else (response as NodeResponse).removeHeader(name);
}

function setCookieHeaders(response: HeaderWritableResponse): string[] {
  const existing = response.getHeader('Set-Cookie');
  if (existing === undefined) return [];
  return Array.isArray(existing) ? existing : [String(existing)];
}

/**
 * Adds a Set-Cookie header, keeping those set by the handler or other
 * middleware; one already set for the same cookie name (a session saved again
 * later in the request) is replaced.
 */
export function appendSetCookie(response: HeaderWritableResponse, name: string, header: string): void {
  const prefix = `${name}=`;
  const existing = setCookieHeaders(response);
  if (existing.length === 0) {
    setHeader(response, 'Set-Cookie', header);
    return;
  }
  setHeader(response, 'Set-Cookie', [...existing.filter((h) => !h.startsWith(prefix)), header]);
}

/** Takes back the Set-Cookie header of cookie `name`, e.g. when the store refused the record it points to. */
export function removeSetCookie(response: HeaderWritableResponse, name: string): void {
  const existing = setCookieHeaders(response);
  const others = existing.filter((h) => !h.startsWith(`${name}=`));
  if (others.length === existing.length) return;
  if (others.length === 0) removeHeader(response, 'Set-Cookie');
  else setHeader(response, 'Set-Cookie', others);
}

/** Adds `token` to `Vary`, merged into what is there and never twice (Werkzeug's `vary.add`). */
export function addVary(response: HeaderWritableResponse, token: string): void {
  const existing = response.getHeader('Vary');
  if (existing === undefined || existing === '') {
    setHeader(response, 'Vary', token);
    return;
  }
  const current = (Array.isArray(existing) ? existing.join(', ') : String(existing)).trim();
  const tokens = current.split(',').map((t) => t.trim().toLowerCase());
  if (tokens.includes(token.toLowerCase()) || tokens.includes('*')) return;
  setHeader(response, 'Vary', `${current}, ${token}`);
}

/**
 * Replaces a response that was not sent yet by a JSON error, as Nest's own
 * exception filter writes it: every header but `Vary` is dropped (the
 * Set-Cookie of a session that was not stored among them). The caller sends
 * `body` (Express: `end(body)`; Fastify: the `onSend` payload, whose length
 * Fastify sets itself).
 */
export function replaceWithError(response: HeaderWritableResponse, status: number, body: string): void {
  if (isFastifyReply(response)) {
    const reply = response as FastifyLikeReply & { getHeaders(): Record<string, unknown>; code(status: number): unknown };
    for (const name of Object.keys(reply.getHeaders())) {
      if (name !== 'vary') reply.removeHeader(name);
    }
    reply.code(status);
    reply.header('content-type', 'application/json; charset=utf-8');
    return;
  }
  const node = response as NodeResponse & { getHeaderNames(): string[]; statusCode: number };
  for (const name of node.getHeaderNames()) {
    if (name !== 'vary') node.removeHeader(name);
  }
  node.statusCode = status;
  node.setHeader('Content-Type', 'application/json; charset=utf-8');
  node.setHeader('Content-Length', Buffer.byteLength(body));
}
