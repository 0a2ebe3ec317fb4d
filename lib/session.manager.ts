import { HttpException, Inject, Injectable, Logger, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { HeaderWritableResponse } from './http/platform-seam.js';
import { installExpressBackstop, installFastifyBackstop } from './http/response-backstop.js';
import type { SessionApp, SessionModuleOptions } from './interfaces/session-module-options.interface.js';
import { STATE, needsSave, stateHolder, type RequestSessionState, type StateHolder } from './request-state.js';
import { SecureCookieSessionInterface } from './secure-cookie/secure-cookie.session-interface.js';
import { SESSION_MODULE_OPTIONS } from './session.constants.js';
import { SessionConfigurationError, SessionError, SessionNotInitializedError } from './session.errors.js';
import { resolveSessionOptions } from './session.options.js';
import { SessionInterface } from './session-interface.js';
import { READ_ONLY, WRITES, type SessionMixin } from './sessions/session-mixin.js';
import { FOREIGN_SERVER, captureWebSocketHandshakes, handshakeRequest, messageState, setMessageState } from './websocket/handshake.js';

/** Where an application's manager is found from its platform objects: the Express app, the Fastify instance, the HTTP server. */
const MANAGER = Symbol('nest-session.manager');

type ManagerCarrier = { [MANAGER]?: SessionManager };

/**
 * One application's sessions: the resolved options (Flask's `app.config`),
 * the configured `SessionInterface`, and the only two places where a session
 * is opened ({@link open}) and saved ({@link save}).
 *
 * `SessionInterceptor` opens the session before the handler and saves it on
 * the handler's way out. What no interceptor sees (a guard that refuses, a
 * handler that sends the response itself with `@Res()`, a write made by an
 * outer interceptor or an exception filter after the save) is saved when the
 * response is about to be sent: the backstop this manager installs on the
 * platform at startup (lib/http/response-backstop.ts).
 *
 * Guards, middleware and `getSession()` have no injector at hand; they find
 * the manager through the request, on the platform objects it is attached to
 * here (the Express app, the Fastify instance, the HTTP server).
 */
@Injectable()
export class SessionManager implements OnModuleInit, OnModuleDestroy {
  readonly app: SessionApp;
  private readonly logger = new Logger('SessionModule');
  private readonly carriers: ManagerCarrier[] = [];

  constructor(
    @Inject(SESSION_MODULE_OPTIONS) options: SessionModuleOptions,
    readonly sessionInterface: SessionInterface,
    @Optional() private readonly adapterHost?: HttpAdapterHost,
  ) {
    this.app = Object.freeze({ config: resolveSessionOptions(options) });
    if (
      !sessionInterface ||
      typeof sessionInterface.openSession !== 'function' ||
      typeof sessionInterface.saveSession !== 'function'
    ) {
      throw SessionConfigurationError.create('interface', 'expected a SessionInterface instance or an @Injectable() subclass of SessionInterface.');
    }
    sessionInterface.validate?.(this.app);
  }

  onModuleInit(): void {
    if (this.sessionInterface instanceof SecureCookieSessionInterface && !this.app.config.secretKey) {
      this.logger.warn(
        'No secretKey is set: sessions are read-only and every write throws. Pass SessionModule.forRoot({ secretKey }).',
      );
    }
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter) return; // an application context without HTTP (e.g. a microservice)
    const platform = adapter.getInstance?.() as object | undefined;
    const server = adapter.getHttpServer?.() as object | undefined;
    for (const carrier of [platform, server] as Array<ManagerCarrier | undefined>) {
      if (!carrier) continue;
      if (carrier[MANAGER] && carrier[MANAGER] !== this) {
        throw new SessionConfigurationError(
          'SessionModule is imported more than once in this application; import SessionModule.forRoot() once, in the root module.',
        );
      }
      carrier[MANAGER] = this;
      this.carriers.push(carrier);
    }
    const saveBeforeHeaders = (state: RequestSessionState, response: HeaderWritableResponse) => this.save(state, response);
    if (adapter.getType?.() === 'fastify') installFastifyBackstop(platform as never, saveBeforeHeaders);
    else if ((platform as { response?: object } | undefined)?.response) installExpressBackstop(platform as never, saveBeforeHeaders);
    if (server) captureWebSocketHandshakes(server);
  }

  onModuleDestroy(): void {
    for (const carrier of this.carriers) if (carrier[MANAGER] === this) delete carrier[MANAGER];
  }

  /**
   * The session state of `request`, opening the session if nobody has: the
   * same object for the guard, the interceptor, the handler and the filter.
   * `holder` is where the state is kept (see `stateHolder`), `request` what
   * the interface reads the cookie from.
   */
  open(request: object, holder: StateHolder = stateHolder(request)): RequestSessionState {
    const existing = holder[STATE];
    if (existing) return existing;
    const state = this.openDetached(request);
    holder[STATE] = state;
    return state;
  }

  /** A new state, opened from `request` and kept nowhere: a WebSocket message's own. */
  openDetached(request: object): RequestSessionState {
    const state: RequestSessionState = {
      session: undefined,
      opening: undefined,
      savedWrites: -1,
      saving: undefined,
      intercepted: false,
      request,
    };
    const { sessionInterface, app } = this;
    let opened: ReturnType<SessionInterface['openSession']>;
    try {
      opened = sessionInterface.openSession(app, request);
    } catch (error) {
      throw this.failure('Opening', error);
    }
    if (isThenable(opened)) {
      state.opening = Promise.resolve(opened).then(
        (session) => (state.session = session ?? sessionInterface.makeNullSession(app)),
        (error: unknown) => Promise.reject(this.failure('Opening', error)),
      );
    } else {
      state.session = opened ?? sessionInterface.makeNullSession(app);
    }
    return state;
  }

  /**
   * The state of one WebSocket message of `client`, kept by `args`, the
   * arguments array Nest gives the message's guards and interceptors
   * (`context.getArgs()`): opened afresh from the handshake's cookie for each
   * message, so it sees what HTTP requests stored meanwhile. A session the
   * interface cannot save without a response (signed cookies; a server-side
   * session with no record yet) is read-only: a write throws an error that
   * says why.
   */
  openForMessage(client: object, args: object): RequestSessionState {
    const existing = messageState(args);
    if (existing) return existing;
    const state = this.openHandshake(client, (session) => this.sessionInterface.refusesWithoutResponse(session));
    setMessageState(args, state);
    return state;
  }

  /** The handshake's session in a gateway's `handleConnection(client)`: read-only, as nothing saves it. */
  openForConnection(client: object): RequestSessionState {
    return this.openHandshake(client, () => 'nothing saves a session opened in handleConnection(): change it in a message handler with @Session()');
  }

  private openHandshake(client: object, refusal: (session: SessionMixin) => string | undefined): RequestSessionState {
    const request = handshakeRequest(client);
    if (!request) {
      // Nest's WebSocket exception filter logs no HttpException: the client would only see "Internal server error".
      const error = SessionNotInitializedError.create(FOREIGN_SERVER);
      this.logger.error(error.message);
      throw error;
    }
    const state = this.openDetached(request);
    const guard = (session: SessionMixin) => {
      const reason = refusal(session);
      if (reason !== undefined) session[READ_ONLY] = reason;
      return session;
    };
    if (state.session) guard(state.session);
    else state.opening = state.opening!.then(guard);
    return state;
  }

  /** The open session of `state`, waiting for an asynchronous open. */
  sessionOf(state: RequestSessionState): Promise<SessionMixin> {
    return (state.opening ??= Promise.resolve(state.session!));
  }

  /**
   * Saves the session of `state` onto `response` (none for a WebSocket
   * message), unless it was saved already and not written since. Returns a
   * promise only when the interface saves asynchronously (a store), so a
   * signed-cookie save costs no turn of the event loop. A save already in
   * flight is waited for, then the session saved again only if it was written
   * meanwhile.
   */
  save(state: RequestSessionState, response: HeaderWritableResponse | undefined): void | Promise<void> {
    if (state.saving) return state.saving.then(() => this.save(state, response));
    if (!needsSave(state)) return;
    const session = state.session;
    if (!session) return state.opening!.then(() => this.save(state, response));
    state.savedWrites = session[WRITES];
    const { sessionInterface, app } = this;
    if (sessionInterface.isNullSession(session)) return;
    let saved: ReturnType<SessionInterface['saveSession']>;
    try {
      saved = sessionInterface.saveSession(app, session, response);
    } catch (error) {
      throw this.failure('Saving', error);
    }
    if (!isThenable(saved)) return;
    const saving = Promise.resolve(saved).then(
      () => {
        if (state.saving === saving) state.saving = undefined;
      },
      (error: unknown) => {
        if (state.saving === saving) state.saving = undefined;
        throw this.failure('Saving', error);
      },
    );
    state.saving = saving;
    return saving;
  }

  /**
   * The error a failed open or save raises, logged here once: a server-side
   * failure (a store that is down, a value with no JSON form, a bug in a
   * custom interface) with its detail, which the client never sees. Anything
   * that is not an `HttpException` becomes a `SessionError` (a 500), so the
   * exception filters answer it without logging it a second time.
   */
  private failure(what: 'Opening' | 'Saving', error: unknown): HttpException {
    const failure =
      error instanceof HttpException ? error : new SessionError(`${(error as Error)?.message ?? String(error)}`, 500);
    if (failure !== error && error instanceof Error) failure.stack = error.stack;
    if (failure.getStatus() >= 500) this.logger.error(`${what} the session failed: ${failure.message}`, failure.stack);
    return failure;
  }
}

/**
 * The manager of the application whose HTTP server is `server`, if it has
 * one. Internal: `nest-session/testing` finds the application of a supertest
 * agent through it.
 */
export function managerOfServer(server: unknown): SessionManager | undefined {
  return server !== null && typeof server === 'object' ? (server as ManagerCarrier)[MANAGER] : undefined;
}

/** The manager of the application that `request` came to, found through the platform objects it is attached to. */
export function findManager(request: object): SessionManager | undefined {
  const candidate = request as {
    app?: ManagerCarrier;
    server?: ManagerCarrier;
    raw?: { socket?: { server?: ManagerCarrier } };
    socket?: { server?: ManagerCarrier };
  };
  return (
    candidate.app?.[MANAGER] ?? // Express's req.app
    candidate.server?.[MANAGER] ?? // Fastify's request.server (also under inject())
    (candidate.raw ?? candidate).socket?.server?.[MANAGER] // any Node request on the app's HTTP server
  );
}

export function isThenable<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | null)?.then === 'function';
}
