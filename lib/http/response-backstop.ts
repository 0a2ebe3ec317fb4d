import { HttpException } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { STATE, needsSave, type RequestSessionState, type StateHolder } from '../request-state.js';
import { replaceWithError, type HeaderWritableResponse } from './platform-seam.js';

/** Saves a request's session onto its response; a promise when the interface saves asynchronously. */
export type SaveBeforeHeaders = (state: RequestSessionState, response: HeaderWritableResponse) => void | Promise<void>;

/**
 * The HTTP-level save: every response is checked just before its headers are
 * sent, and a session that was opened and not saved since its last write is
 * saved then. `SessionInterceptor` saves a handler's session on its way out;
 * this covers what no interceptor sees: a guard that wrote the session and
 * refused, a handler that answers itself with `@Res()`, a write made after the
 * interceptor's save (by an outer interceptor or an exception filter), and a
 * guard or middleware that used the session of a route without `@Session()`.
 *
 * A response whose request never opened a session pays one property read.
 */

type End = ServerResponse['end'];
type ExpressResponse = ServerResponse & { locals?: StateHolder };

/** Set on an Express response prototype whose `end` and `writeHead` already save sessions. */
const HOOKED = Symbol('nest-session.hooked');

/**
 * Express: `end` and `writeHead` wrapped once on the app's own response
 * prototype (`app.response`), which every `res` of that app inherits from.
 * Patching each response object instead would change its shape and slow every
 * later use of it (measured: most of a session's cost).
 */
export function installExpressBackstop(app: { response: object }, save: SaveBeforeHeaders): void {
  const prototype = app.response as ExpressResponse & { [HOOKED]?: true };
  if (prototype[HOOKED]) return;
  Object.defineProperty(prototype, HOOKED, { value: true });
  const { end, writeHead } = prototype;
  // `arguments`, not rest parameters: no array is made on the path every response takes.
  prototype.end = function (this: ExpressResponse) {
    const state = this.locals?.[STATE];
    if (state !== undefined && (state.saving !== undefined || needsSave(state)) && !this.headersSent) {
      return endAfterSaving(state, this, end, arguments, save);
    }
    return end.apply(this, arguments as unknown as Parameters<End>);
  } as End;
  prototype.writeHead = function (this: ExpressResponse) {
    const state = this.locals?.[STATE];
    if (state !== undefined && needsSave(state) && !this.headersSent) saveStreamed(state, this, save);
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, arguments as unknown as unknown[]);
  } as ServerResponse['writeHead'];
}

/**
 * Saves, then ends the response. An asynchronous save (a session store) holds
 * `end()` back until it is done, so the client never sees the response before
 * its session is stored; if it fails, the response becomes the error's.
 */
function endAfterSaving(
  state: RequestSessionState,
  response: ExpressResponse,
  end: End,
  args: IArguments,
  save: SaveBeforeHeaders,
): ServerResponse {
  let pending: void | Promise<void>;
  try {
    pending = save(state, response);
  } catch (error) {
    return endWithError(response, end, error);
  }
  if (!pending) return end.apply(response, args as unknown as Parameters<End>);
  pending.then(
    () => end.apply(response, args as unknown as Parameters<End>),
    (error: unknown) => endWithError(response, end, error),
  );
  return response;
}

/**
 * A streamed body (`res.write()` with `@Res()`): the headers go out now. The
 * interface sets its cookie before it waits for a store, so the cookie is in
 * them; the store's answer comes while the body streams, and a failure then
 * can only be logged (the manager does).
 */
function saveStreamed(state: RequestSessionState, response: HeaderWritableResponse, save: SaveBeforeHeaders): void {
  // The manager logged the failure; nothing else can be done once the headers are out.
  try {
    save(state, response)?.catch(() => undefined);
  } catch {
    // logged likewise
  }
}

function endWithError(response: ExpressResponse, end: End, error: unknown): ServerResponse {
  const { status, body } = errorResponse(error);
  replaceWithError(response, status, body);
  return (end as (chunk: string) => ServerResponse).call(response, body);
}

/**
 * Fastify: a response written to `reply.raw` directly (Nest's `@Sse()` does,
 * and sends the headers on the next macrotask, before the first event) never
 * reaches Fastify's hooks. For such a response only, its own `writeHead` saves
 * first, onto the raw response, as Express's does (see
 * {@link installExpressBackstop}); the interface's `getCookie*()` then get
 * Node's request.
 */
export function saveBeforeRawHeaders(state: RequestSessionState, reply: HeaderWritableResponse & { raw: ServerResponse }, save: SaveBeforeHeaders): void {
  const raw = reply.raw;
  const writeHead = raw.writeHead;
  raw.writeHead = function (this: ServerResponse) {
    raw.writeHead = writeHead;
    // Onto the raw response: the headers Nest passes to writeHead were read from the reply already.
    if (needsSave(state) && !raw.headersSent) saveStreamed(state, raw as unknown as HeaderWritableResponse, save);
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, arguments as unknown as unknown[]);
  } as ServerResponse['writeHead'];
}

interface FastifyLike {
  addHook(name: 'onSend', hook: (request: object, reply: HeaderWritableResponse, payload: unknown, done: (error: Error | null, payload?: unknown) => void) => void): unknown;
}

/**
 * Fastify: one `onSend` hook, registered once on the instance, which runs
 * before Fastify writes the headers of any reply (`reply.send()`, Nest's
 * exception filters, streams and files alike).
 */
export function installFastifyBackstop(fastify: FastifyLike, save: SaveBeforeHeaders): void {
  fastify.addHook('onSend', (request, reply, payload, done) => {
    const state = ((request as { raw?: StateHolder }).raw as StateHolder | undefined)?.[STATE];
    if (state === undefined || (state.saving === undefined && !needsSave(state))) return done(null, payload);
    const fail = (error: unknown) => {
      const { status, body } = errorResponse(error);
      replaceWithError(reply, status, body);
      done(null, body);
    };
    let pending: void | Promise<void>;
    try {
      pending = save(state, reply);
    } catch (error) {
      return fail(error);
    }
    if (!pending) return done(null, payload);
    pending.then(() => done(null, payload), fail);
  });
}

/**
 * The response for a save that failed (a value with no JSON form, a store
 * that is down): the response the handler prepared would claim a success that
 * did not happen, so it becomes the error's, as Nest's exception filter would
 * write it: an `HttpException`'s own status and body, else a 500.
 */
function errorResponse(error: unknown): { status: number; body: string } {
  const isHttp = error instanceof HttpException;
  const status = isHttp ? error.getStatus() : 500;
  const payload = isHttp ? error.getResponse() : { statusCode: 500, message: 'Internal server error' };
  const body = typeof payload === 'string' ? JSON.stringify({ statusCode: status, message: payload }) : JSON.stringify(payload);
  return { status, body };
}
