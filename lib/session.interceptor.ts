import {
  Injectable,
  Logger,
  Optional,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { Observable, Subscriber, finalize } from 'rxjs';
import { graphqlRequest } from './graphql/graphql-request.js';
import { saveBeforeRawHeaders } from './http/response-backstop.js';
import type { RequestSessionState } from './request-state.js';
import { SessionError, SessionNotInitializedError } from './session.errors.js';
import { SessionManager } from './session.manager.js';
import { forgetHandlerState, setHandlerState } from './websocket/handshake.js';

/** Nest's metadata keys for `@Sse()` (`SSE_METADATA`) and for route parameters (`ROUTE_ARGS_METADATA`). */
const SSE_METADATA = '__sse__';
const ROUTE_ARGS_METADATA = '__routeArguments__';
/** `RouteParamtypes.RESPONSE` and `.NEXT`: a handler with `@Res()` or `@Next()` may write the response itself. */
const WRITES_ITSELF = /^[12]:/;

/**
 * Whether a handler may write Fastify's raw response itself (`@Sse()`, or
 * `@Res()`/`@Next()` with `reply.raw.write()`), out of the reach of Fastify's
 * hooks. Read once per handler.
 */
const writesRawByHandler = new WeakMap<object, boolean>();
function writesRaw(context: ExecutionContext): boolean {
  const handler = context.getHandler();
  let writes = writesRawByHandler.get(handler);
  if (writes === undefined) {
    const params: object = Reflect.getMetadata(ROUTE_ARGS_METADATA, context.getClass(), handler.name) ?? {};
    writes = Boolean(Reflect.getMetadata(SSE_METADATA, handler)) || Object.keys(params).some((key) => WRITES_ITSELF.test(key));
    writesRawByHandler.set(handler, writes);
  }
  return writes;
}

/**
 * Opens the session before the handler and saves it on the handler's way out:
 * before the first value it returns reaches Nest (so before any byte of the
 * response, a `StreamableFile` or the first SSE event included), and, when
 * the handler throws, before the error reaches the exception filters (Flask
 * saves on handled errors too). A failing save (a store that is down, a value
 * with no JSON form) becomes the request's error, so the exception filters
 * answer it.
 *
 * Bound where the session is used, so a route that never uses it runs no
 * session code: `@Session()` binds it to its handler, `@UseSession()` to a
 * class or method, and `SessionModule.forRoot({ everyRequest: true })` to
 * every route. A second binding on the same handler does nothing.
 *
 * - HTTP (Express, Fastify): as above.
 * - GraphQL: opens the session of the HTTP request; it is saved once, when
 *   the HTTP response is sent, however many resolvers used it.
 * - WebSocket messages: each message opens the session afresh from the
 *   handshake's cookie and stores what its handler wrote before each reply
 *   reaches the client, and when the handler completes.
 *
 * @publicApi
 */
@Injectable()
export class SessionInterceptor implements NestInterceptor {
  private readonly logger = new Logger('SessionInterceptor');
  private readonly manager: SessionManager;

  constructor(@Optional() manager?: SessionManager) {
    // Bound by @Session() in an application that does not import SessionModule: say so at bootstrap.
    if (!manager) throw SessionNotInitializedError.create();
    this.manager = manager;
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    switch (context.getType<string>()) {
      case 'http':
        return this.interceptHttp(context, next);
      case 'graphql':
        return this.interceptGraphql(context, next);
      case 'ws':
        return this.interceptMessage(context, next);
      default:
        return next.handle();
    }
  }

  private interceptHttp(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    // What switchToHttp() returns, without the three closures it adds to the context each call.
    const request = context.getArgByIndex(0);
    const response = context.getArgByIndex(1);
    const state = this.manager.open(request);
    if (state.intercepted) return next.handle();
    state.intercepted = true;
    const save = () => this.manager.save(state, response);
    // @Sse() on Fastify writes reply.raw, which Fastify's onSend never sees, and sends the headers
    // before the first event; a handler with @Res() may write reply.raw too: that response's own
    // writeHead saves first.
    if (response?.raw && writesRaw(context)) {
      saveBeforeRawHeaders(state, response, (opened, raw) => this.manager.save(opened, raw));
    }
    return saveOnTheWayOut(state, next, 'first-value', save, this.logger);
  }

  private interceptGraphql(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const request = graphqlRequest(context.getArgByIndex(2));
    if (!request) throw SessionNotInitializedError.create('this GraphQL context has no HTTP request (req)');
    const state = this.manager.open(request);
    // Saved by the HTTP response's backstop: once, after every resolver of the request.
    return state.session ? next.handle() : afterOpening(state, () => next.handle());
  }

  private interceptMessage(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const client = context.getArgByIndex(0);
    const payload = context.getArgByIndex(1);
    const state = this.manager.openForMessage(client, context.getArgs());
    if (state.intercepted) return next.handle();
    state.intercepted = true;
    setHandlerState(client, payload, state);
    const replies = saveOnTheWayOut(state, next, 'every-value', () => this.manager.save(state, undefined), this.logger);
    return replies.pipe(finalize(() => forgetHandlerState(client, payload, state)));
  }
}

/** `next.handle()` once the session is open; an open that fails (a store that is down) is the request's error. */
function afterOpening(state: RequestSessionState, handle: () => Observable<unknown>): Observable<unknown> {
  return new Observable((subscriber) => {
    let inner: { unsubscribe(): void } | undefined;
    let closed = false;
    state.opening!.then(
      () => {
        if (!closed) inner = handle().subscribe(subscriber);
      },
      (error: unknown) => subscriber.error(error),
    );
    return () => {
      closed = true;
      inner?.unsubscribe();
    };
  });
}

/**
 * The handler's observable, with the session saved before the values reach
 * Nest, and before the handler's error or completion:
 * - `first-value` (HTTP): before the first value (the body); later writes are
 *   the response backstop's.
 * - `every-value` (a WebSocket message): before each reply, so a client that
 *   has a reply can rely on what it stored, and at completion. A save with
 *   nothing written since the last one does nothing.
 * Values that arrive while an asynchronous save is in flight wait for it, in
 * order; if it fails, its error replaces whatever the handler produced.
 */
function saveOnTheWayOut(
  state: RequestSessionState,
  next: CallHandler,
  when: 'first-value' | 'every-value',
  save: () => void | Promise<void>,
  logger: Logger,
): Observable<unknown> {
  const handled = new Observable<unknown>((subscriber) => next.handle().subscribe(new SavingSubscriber(subscriber, save, when === 'every-value', logger)));
  return state.session ? handled : afterOpening(state, () => handled);
}

const BEFORE = 0;
const SAVED = 1;
const FAILED = 2;

/**
 * The subscriber behind {@link saveOnTheWayOut}: one object a request (an
 * RxJS operator's own shape), and no closure or promise on the usual path, a
 * synchronous save before one value: measured, the wrapper it replaced (an
 * Observable of closures) cost 6 % of a signed-cookie /write request.
 */
class SavingSubscriber extends Subscriber<unknown> {
  private phase = BEFORE;
  /** What waits for the save in flight, in order; undefined when none is in flight. */
  private waiting: Array<() => void> | undefined;

  constructor(
    destination: Subscriber<unknown>,
    private readonly save: () => void | Promise<void>,
    private readonly everyValue: boolean,
    private readonly logger: Logger,
  ) {
    super(destination);
  }

  protected override _next(value: unknown): void {
    if (this.phase === SAVED && !this.everyValue && this.waiting === undefined) return this.destination.next(value);
    this.afterSave(() => this.destination.next(value));
  }

  protected override _error(error: unknown): void {
    // Nest's exception filter logs no HttpException, and a SessionError is one: a 500 from the
    // session (a write without a secret key, a read-only session) would go unexplained.
    if (error instanceof SessionError && error.getStatus() >= 500) this.logger.error(error.message, error.stack);
    this.afterSave(() => this.end(() => this.destination.error(error)), error);
  }

  protected override _complete(): void {
    this.afterSave(() => this.end(() => this.destination.complete()));
  }

  /** Runs `emit` once the session is saved: at once after a synchronous save, else when the save in flight is done. */
  private afterSave(emit: () => void, handlerError?: unknown): void {
    if (this.phase === FAILED) return;
    if (this.waiting) {
      this.waiting.push(emit);
      return;
    }
    if (this.phase === SAVED && !this.everyValue) return emit();
    let saving: void | Promise<void>;
    try {
      saving = this.save();
    } catch (error) {
      return this.fail(error, handlerError);
    }
    if (!saving) {
      this.phase = SAVED;
      return emit();
    }
    this.waiting = [emit];
    saving.then(
      () => {
        this.phase = SAVED;
        // What arrived meanwhile, in order (a WebSocket reply among them saves again first, and
        // what follows it waits for that save).
        const waiting = this.waiting!;
        this.waiting = undefined;
        for (const queued of waiting) this.afterSave(queued, handlerError);
      },
      (error: unknown) => this.fail(error, handlerError),
    );
  }

  private fail(error: unknown, handlerError: unknown): void {
    if (this.phase === FAILED) return;
    this.phase = FAILED;
    this.waiting = undefined;
    if (handlerError !== undefined) {
      this.logger.error(
        `The handler failed, then saving its session failed too; the save's error answers the request. The handler's: ${(handlerError as Error)?.message}`,
        (handlerError as Error)?.stack,
      );
    }
    this.end(() => this.destination.error(error));
  }

  /** The last signal to the destination, then this subscriber's own teardown (RxJS's own _error/_complete do both). */
  private end(signal: () => void): void {
    try {
      signal();
    } finally {
      this.unsubscribe();
    }
  }
}
