import { HttpException, Logger, type ExecutionContext } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { findRuntime, type SessionRuntime } from './session-runtime.js';
import { SessionNotInitializedError } from './session.errors.js';
import type { SessionData, SessionMixin } from './sessions/session-mixin.js';

const STATE = Symbol('nest-session.state');
const logger = new Logger('SessionModule');

/** What one request knows of its session. Kept under a Symbol, see {@link stateHolder}. */
interface RequestSessionState {
  readonly runtime: SessionRuntime;
  /** Set at once when the interface opened synchronously, else when `opening` settles. */
  session: SessionMixin | undefined;
  /** Made on first need: a synchronous open only needs a promise when `getSession()` asks. */
  opening: Promise<SessionMixin> | undefined;
  saved: boolean;
}

type StateHolder = { [STATE]?: RequestSessionState };
type SessionRequest = StateHolder & { res?: SessionResponse; app?: object; server?: object };
type SessionResponse = ServerResponse & { locals?: StateHolder };
type End = ServerResponse['end'];

/**
 * The session of the current request, opened on first use and the same object
 * for every caller after that: a guard that reads it and a handler that writes
 * it share one session. Works in guards, middleware, pipes, interceptors and
 * handlers; takes an `ExecutionContext` or the request itself.
 *
 * @example
 * async canActivate(context: ExecutionContext) {
 *   return (await getSession(context)).has('userId');
 * }
 *
 * @publicApi
 */
export function getSession<T extends SessionData = SessionData>(
  contextOrRequest: ExecutionContext | object,
): Promise<SessionMixin<T>> {
  try {
    const state = requestSessionState(contextOrRequest);
    return (state.opening ??= Promise.resolve(state.session!)) as Promise<SessionMixin<T>>;
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * The session itself when it is already open (a synchronous interface opens it
 * at once), else the promise of it: `@Session()` hands Nest a plain value when
 * it can, which spares the request Nest's asynchronous parameter path.
 */
export function sessionOrPromise(context: ExecutionContext): SessionMixin | Promise<SessionMixin> {
  const state = requestSessionState(context);
  return state.session ?? state.opening!;
}

function requestSessionState(contextOrRequest: ExecutionContext | object): RequestSessionState {
  let request: SessionRequest;
  let response: SessionResponse | undefined;
  if (typeof (contextOrRequest as ExecutionContext).switchToHttp === 'function') {
    const context = contextOrRequest as ExecutionContext;
    if (context.getType() !== 'http') throw SessionNotInitializedError.create();
    // What switchToHttp() returns, without the three closures it adds to the context each call.
    request = context.getArgByIndex(0);
    response = context.getArgByIndex(1);
  } else {
    request = contextOrRequest as SessionRequest;
    response = request.res;
  }
  return stateHolder(request, response)[STATE] ?? openSession(request, response);
}

function openSession(request: SessionRequest, response: SessionResponse | undefined): RequestSessionState {
  const runtime = findRuntime(request);
  if (!runtime) throw SessionNotInitializedError.create();
  const { sessionInterface, app } = runtime;
  const state: RequestSessionState = { runtime, session: undefined, opening: undefined, saved: false };
  const opened = sessionInterface.openSession(app, request);
  if (isThenable(opened)) {
    state.opening = Promise.resolve(opened).then((session) => (state.session = session ?? sessionInterface.makeNullSession(app)));
  } else {
    state.session = opened ?? sessionInterface.makeNullSession(app);
  }
  stateHolder(request, response)[STATE] = state;
  if (response) hookResponse(response);
  return state;
}

/** Set on a response prototype whose `end` and `writeHead` already save sessions. */
const HOOKED = Symbol('nest-session.hooked');

/**
 * Makes every response of an Express app save its request's session, by
 * wrapping `end` and `writeHead` once on the app's own response prototype
 * (`app.response`). A response whose request never opened a session pays one
 * property read. Patching each response object instead would change its shape
 * and slow every later use of it (measured: most of a session's cost).
 */
export function hookResponses(prototype: object): void {
  if (!(prototype as { [HOOKED]?: true })[HOOKED]) {
    wrapEndAndWriteHead(prototype as ServerResponse, false);
    Object.defineProperty(prototype, HOOKED, { value: true });
  }
}

/** For a platform without a shared response prototype: the same wrappers on this one response. */
function hookResponse(response: ServerResponse): void {
  if (!(response as { [HOOKED]?: true })[HOOKED]) wrapEndAndWriteHead(response, true);
}

/** `once`: the wrappers put the originals back on first call (a single response's own wrappers). */
function wrapEndAndWriteHead(target: ServerResponse, once: boolean): void {
  const { end, writeHead } = target;
  // `arguments`, not rest parameters: no array is made on the path every response takes.
  target.end = function (this: ServerResponse) {
    if (once) target.end = end;
    const state = stateOf(this);
    if (state && !state.saved) return endAfterSaving(state, this, end, arguments);
    return end.apply(this, arguments as unknown as Parameters<End>);
  } as End;
  target.writeHead = function (this: ServerResponse) {
    if (once) target.writeHead = writeHead;
    const state = stateOf(this);
    if (state && !state.saved) saveBeforeHeaders(state, this);
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, arguments as unknown as unknown[]);
  } as ServerResponse['writeHead'];
}

/**
 * Where a request's session state lives: Express's per-request `res.locals`,
 * else the request. Adding a property to Node's request object costs it a new
 * shape (measured: 1 % of a whole request); `res.locals` is a dictionary
 * already. A Symbol key keeps it out of templates and `Object.keys`.
 */
function stateHolder(request: SessionRequest | undefined, response: SessionResponse | undefined): StateHolder {
  return response?.locals ?? request ?? {};
}

function stateOf(response: ServerResponse): RequestSessionState | undefined {
  return stateHolder(response.req as SessionRequest | undefined, response)[STATE];
}

/**
 * Saves the session at the last moment the response can still carry it: when
 * the response is ended (Express's `res.send`/`res.json`, which Nest and its
 * exception filters use). So it is saved whatever answers the request (the
 * handler, an exception filter, a guard that refused, a handler that used
 * `@Res()`) and after everything that may still change it (interceptors,
 * Flask's `after_request`).
 *
 * An asynchronous save (a session store) holds `end()` back until it is done,
 * so the client never sees the response before its session is stored; if it
 * fails, the response becomes the error's (see {@link respondWithSaveError}).
 */
function endAfterSaving(state: RequestSessionState, response: ServerResponse, end: End, args: IArguments): ServerResponse {
  if (response.headersSent) return end.apply(response, args as unknown as Parameters<End>);
  let pending: void | Promise<void>;
  try {
    pending = state.session ? save(state, response) : state.opening!.then(() => save(state, response));
  } catch (error) {
    return respondWithSaveError(response, end, error);
  }
  if (!pending) return end.apply(response, args as unknown as Parameters<End>);
  pending.then(
    () => end.apply(response, args as unknown as Parameters<End>),
    (error: unknown) => respondWithSaveError(response, end, error),
  );
  return response;
}

/** A streamed body (StreamableFile, SSE, `res.write`): the headers go out now, with the session cookie. */
function saveBeforeHeaders(state: RequestSessionState, response: ServerResponse): void {
  if (!state.session) return;
  try {
    const pending = save(state, response);
    pending?.catch((error: unknown) => logger.error('Saving the session of a streamed response failed', (error as Error)?.stack));
  } catch (error) {
    logger.error('Saving the session of a streamed response failed', (error as Error)?.stack);
  }
}

function isThenable<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | null)?.then === 'function';
}

function save(state: RequestSessionState, response: ServerResponse): void | Promise<void> {
  state.saved = true;
  const { sessionInterface, app } = state.runtime;
  const session = state.session!;
  if (sessionInterface.isNullSession(session)) return;
  return sessionInterface.saveSession(app, session, response);
}

/**
 * The session could not be saved (a value with no JSON form, a store that is
 * down): the response the handler prepared would claim a success that did not
 * happen, so it is replaced by the error's, as Nest's exception filter would
 * write it: an `HttpException`'s own status and body, else a 500.
 */
function respondWithSaveError(response: ServerResponse, end: End, error: unknown): ServerResponse {
  const isHttp = error instanceof HttpException;
  if (!isHttp || error.getStatus() >= 500) {
    logger.error(`Saving the session failed: ${(error as Error)?.message}`, (error as Error)?.stack);
  }
  const status = isHttp ? error.getStatus() : 500;
  const payload = isHttp ? error.getResponse() : { statusCode: 500, message: 'Internal server error' };
  const body = typeof payload === 'string' ? JSON.stringify({ statusCode: status, message: payload }) : JSON.stringify(payload);
  for (const name of response.getHeaderNames()) {
    if (name !== 'vary') response.removeHeader(name);
  }
  response.statusCode = status;
  response.setHeader('Content-Type', 'application/json; charset=utf-8');
  response.setHeader('Content-Length', Buffer.byteLength(body));
  return (end as (chunk: string) => ServerResponse).call(response, body);
}
