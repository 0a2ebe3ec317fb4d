import { Logger, type ExecutionContext } from '@nestjs/common';
import { graphqlRequest } from './graphql/graphql-request.js';
import { findManager, type SessionManager } from './session.manager.js';
import { stateOf, type RequestSessionState } from './request-state.js';
import { SessionNotInitializedError } from './session.errors.js';
import type { SessionData, SessionMixin } from './sessions/session-mixin.js';
import { FOREIGN_SERVER, handshakeRequest, messageState } from './websocket/handshake.js';

const logger = new Logger('SessionModule');

/**
 * The session of the current request, opened on first use and the same object
 * for every caller after that: a guard that reads it and a handler that writes
 * it share one session. Takes an `ExecutionContext` (guards, interceptors,
 * pipes; HTTP, GraphQL and WebSocket contexts), the request itself (Express
 * middleware's `req`, Fastify's request), or a WebSocket client (a gateway's
 * `handleConnection(client)`).
 *
 * A guard runs before the interceptor: the session it opens is the one the
 * handler gets, and it is saved on the way out when the route has
 * `@Session()` or `@UseSession()`, else when the response is sent. A session
 * opened in `handleConnection` is read-only (nothing saves it); message
 * handlers each get their own.
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
    const { manager, state } = locate(contextOrRequest);
    return manager.sessionOf(state) as Promise<SessionMixin<T>>;
  } catch (error) {
    // Nest's exception filters log no HttpException: without this line a guard's getSession() in the
    // wrong place would answer a bare "Internal server error" and tell the developer nothing.
    if (error instanceof SessionNotInitializedError) logger.error(error.message);
    return Promise.reject(error);
  }
}

function locate(contextOrRequest: ExecutionContext | object): { manager: SessionManager; state: RequestSessionState } {
  if (typeof (contextOrRequest as ExecutionContext).getType === 'function') {
    const context = contextOrRequest as ExecutionContext;
    switch (context.getType<string>()) {
      case 'http':
        return ofRequest(context.getArgByIndex(0));
      case 'graphql': {
        const request = graphqlRequest(context.getArgByIndex(2));
        if (!request) throw SessionNotInitializedError.create('this GraphQL context has no HTTP request (req)');
        return ofRequest(request);
      }
      case 'ws':
        return ofMessage(context.getArgByIndex(0), context.getArgs());
      default:
        throw SessionNotInitializedError.create(`a ${context.getType()} context`);
    }
  }
  const object = contextOrRequest as { headers?: unknown };
  // Not a request (they all have headers): a gateway's client, in handleConnection(client).
  if (object.headers === undefined) return ofConnection(object);
  return ofRequest(object);
}

function managerOf(request: object, detail?: string): SessionManager {
  const manager = findManager(request);
  if (!manager) throw SessionNotInitializedError.create(detail);
  return manager;
}

function ofRequest(request: object): { manager: SessionManager; state: RequestSessionState } {
  const manager = managerOf(request);
  return { manager, state: stateOf(request) ?? manager.open(request) };
}

function ofMessage(client: object, args: object): { manager: SessionManager; state: RequestSessionState } {
  const manager = managerOf(handshakeRequest(client) ?? client, FOREIGN_SERVER);
  return { manager, state: messageState(args) ?? manager.openForMessage(client, args) };
}

/** `handleConnection(client)`: the handshake's session, read as any message's, saved by nothing. */
function ofConnection(client: object): { manager: SessionManager; state: RequestSessionState } {
  const manager = managerOf(handshakeRequest(client) ?? client, FOREIGN_SERVER);
  return { manager, state: manager.openForConnection(client) };
}
