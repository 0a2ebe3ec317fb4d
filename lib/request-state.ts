import { WRITES, type SessionMixin } from './sessions/session-mixin.js';

/** The key of a request's session state on its holder (see {@link stateHolder}). */
export const STATE = Symbol('nest-session.state');

/**
 * What one request (or one WebSocket message) knows of its session: opened at
 * most once, saved by whoever sees the end of the request first, and saved
 * again only when it was written after that.
 */
export interface RequestSessionState {
  /** Set at once when the interface opened synchronously, else when `opening` settles. */
  session: SessionMixin | undefined;
  /** Made on first need: a synchronous open only needs a promise when `getSession()` asks. */
  opening: Promise<SessionMixin> | undefined;
  /** The session's write count when it was last saved; -1 before the first save. */
  savedWrites: number;
  /** The save in flight, which the end of the response waits for. */
  saving: Promise<void> | undefined;
  /** True once an interceptor took charge of saving: an inner one (a second binding) leaves it alone. */
  intercepted: boolean;
  /** The request, as the interface's `getCookie*(app, request)` receive it. */
  readonly request: unknown;
}

export type StateHolder = { [STATE]?: RequestSessionState };

/**
 * Where a request's session state lives, the same object whichever form of
 * the request a caller holds:
 * - Express: `res.locals`, a per-request dictionary already (a new property
 *   on Node's request object would cost it a new shape: measured, 1 % of a
 *   whole request in the cookie bench's /read);
 * - Fastify: Node's request under `request.raw`, which middleware receives too.
 */
export function stateHolder(request: object): StateHolder {
  const raw = (request as { raw?: object }).raw ?? request;
  return (raw as { res?: { locals?: StateHolder } }).res?.locals ?? (raw as StateHolder);
}

/** The state of a request whose session was opened, else undefined. */
export function stateOf(request: object): RequestSessionState | undefined {
  return stateHolder(request)[STATE];
}

/** True when the session was never saved, or was written since its last save. */
export function needsSave(state: RequestSessionState): boolean {
  const session = state.session;
  return session === undefined ? state.opening !== undefined : state.savedWrites !== session[WRITES];
}
