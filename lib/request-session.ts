import { Logger, type ExecutionContext } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { findRuntime, type SessionRuntime } from './session-runtime.js';
import { SessionNotInitializedError } from './session.errors.js';
import { CHANGE_COUNT, type SessionData, type SessionMixin } from './sessions/session-mixin.js';

const STATE = Symbol('nest-session.state');
const logger = new Logger('SessionModule');

/** What one request knows of its session. Lives on the request under a Symbol. */
interface RequestSessionState {
  readonly runtime: SessionRuntime;
  readonly response: ServerResponse | undefined;
  readonly opening: Promise<SessionMixin>;
  session?: SessionMixin;
  saved: boolean;
  /** The session's change count and `accessed` flag when it was saved, to see later changes. */
  savedAs?: { changes: number; accessed: boolean };
}

type SessionRequest = { [STATE]?: RequestSessionState; res?: ServerResponse; app?: object; server?: object };

/**
 * The session of the current request, opened on first use and the same object
 * for every caller after that: a guard that reads it and a handler that writes
 * it share one session. Works in guards, middleware, pipes, interceptors and
 * handlers; takes an `ExecutionContext` or the request itself.
 *
 * @example
 * canActivate(context: ExecutionContext) {
 *   return getSession(context).then((session) => session.has('userId'));
 * }
 *
 * @publicApi
 */
export function getSession<T extends SessionData = SessionData>(
  contextOrRequest: ExecutionContext | object,
): Promise<SessionMixin<T>> {
  try {
    let request: SessionRequest;
    let response: ServerResponse | undefined;
    if (typeof (contextOrRequest as ExecutionContext).switchToHttp === 'function') {
      const context = contextOrRequest as ExecutionContext;
      if (context.getType() !== 'http') throw SessionNotInitializedError.create();
      request = context.switchToHttp().getRequest();
      response = context.switchToHttp().getResponse();
    } else {
      request = contextOrRequest as SessionRequest;
      response = request.res;
    }
    return sessionState(request, response).opening as Promise<SessionMixin<T>>;
  } catch (error) {
    return Promise.reject(error);
  }
}

/** The session already opened for `request` (by the interceptor), for synchronous callers. */
export function openedSession(request: object): SessionMixin {
  const session = (request as SessionRequest)[STATE]?.session;
  if (!session) throw SessionNotInitializedError.create();
  return session;
}

/**
 * Saves the session of `request` if it was opened and not saved yet: the
 * interceptor calls this before the body is written, also when the handler
 * threw. A request that never opened its session costs nothing here.
 */
export async function commitSession(request: object): Promise<void> {
  const state = (request as SessionRequest)[STATE];
  if (!state || state.saved) return;
  const session = state.session ?? (await state.opening.catch(() => undefined));
  if (!session || state.saved || !state.response) return;
  state.saved = true;
  const { sessionInterface, app } = state.runtime;
  if (sessionInterface.isNullSession(session)) return;
  if (state.response.headersSent) {
    logger.warn(
      'The session was not saved: the handler sent the response itself. Use @Res({ passthrough: true }).',
    );
    return;
  }
  state.savedAs = { changes: session[CHANGE_COUNT](), accessed: session.accessed };
  await sessionInterface.saveSession(app, session, state.response);
}

function sessionState(request: SessionRequest, response: ServerResponse | undefined): RequestSessionState {
  const existing = request[STATE];
  if (existing) return existing;
  const runtime = findRuntime(request);
  if (!runtime) throw SessionNotInitializedError.create();
  const { sessionInterface, app } = runtime;
  const opening = Promise.resolve()
    .then(() => sessionInterface.openSession(app, request))
    .then((session) => {
      state.session = session ?? sessionInterface.makeNullSession(app);
      return state.session;
    });
  const state: RequestSessionState = { runtime, response, opening, saved: false };
  request[STATE] = state;
  if (response) saveWhenHeadersAreWritten(state, response);
  return state;
}

/**
 * The safety net for a session that no interceptor will save: one opened by a
 * guard or middleware on a route without `@Session()`, a handler that sends the
 * response itself (`@Res()`), or a guard that throws after writing. The save
 * runs as the headers are written; a synchronous interface (signed cookies)
 * gets its cookie into them.
 */
function saveWhenHeadersAreWritten(state: RequestSessionState, response: ServerResponse): void {
  const writeHead = response.writeHead;
  response.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    response.writeHead = writeHead;
    const { session, runtime } = state;
    // Saved already, unless something later in the pipeline (an outer interceptor,
    // as Flask's after_request) changed or read the session since.
    const changedSinceSave =
      session && state.savedAs && (session[CHANGE_COUNT]() !== state.savedAs.changes || session.accessed !== state.savedAs.accessed);
    if (session && (!state.saved || changedSinceSave)) {
      state.saved = true;
      if (!runtime.sessionInterface.isNullSession(session)) {
        try {
          const pending = runtime.sessionInterface.saveSession(runtime.app, session, response);
          if (pending) {
            logger.warn(
              'The session was saved after the response started, so its cookie may be missing: ' +
                'add @UseSession() to the route (or take the session with @Session()).',
            );
            pending.catch((error: unknown) => logger.error('Saving the session failed', (error as Error)?.stack));
          }
        } catch (error) {
          logger.error('Saving the session failed', (error as Error)?.stack);
        }
      }
    }
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse['writeHead'];
}
