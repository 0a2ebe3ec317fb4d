import { parseCookie } from 'cookie';

/** The part of Node's `ServerResponse` (and so Express's `res`) that sessions use. */
export interface HeaderWritableResponse {
  readonly headersSent: boolean;
  getHeader(name: string): number | string | string[] | undefined;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
}

/** The part of a request that sessions read. */
export interface CookieReadableRequest {
  readonly headers: Record<string, string | string[] | undefined>;
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

/**
 * Adds a Set-Cookie header, keeping those set by the handler or other
 * middleware; one already set for the same cookie name (a session saved again
 * later in the request) is replaced.
 */
export function appendSetCookie(response: HeaderWritableResponse, name: string, header: string): void {
  const existing = response.getHeader('Set-Cookie');
  if (existing === undefined) {
    response.setHeader('Set-Cookie', header);
    return;
  }
  const prefix = `${name}=`;
  const others = (Array.isArray(existing) ? existing : [String(existing)]).filter((h) => !h.startsWith(prefix));
  response.setHeader('Set-Cookie', [...others, header]);
}

/** Adds `token` to `Vary`, merged into what is there and never twice (Werkzeug's `vary.add`). */
export function addVary(response: HeaderWritableResponse, token: string): void {
  const existing = response.getHeader('Vary');
  if (existing === undefined || existing === '') {
    response.setHeader('Vary', token);
    return;
  }
  const current = (Array.isArray(existing) ? existing.join(', ') : String(existing)).trim();
  const tokens = current.split(',').map((t) => t.trim().toLowerCase());
  if (tokens.includes(token.toLowerCase()) || tokens.includes('*')) return;
  response.setHeader('Vary', `${current}, ${token}`);
}
