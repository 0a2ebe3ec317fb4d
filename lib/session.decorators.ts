import { UseInterceptors, createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { graphqlRequest } from './graphql/graphql-request.js';
import { stateOf, type RequestSessionState } from './request-state.js';
import { SessionInterceptor } from './session.interceptor.js';
import { SessionError, SessionNotInitializedError } from './session.errors.js';
import { findManager } from './session.manager.js';
import { handlerState } from './websocket/handshake.js';

/** Nest's metadata key for `@UseInterceptors()` (`INTERCEPTORS_METADATA`), stable since Nest 5. */
const INTERCEPTORS_METADATA = '__interceptors__';

/** The gateway methods Nest calls directly with the socket (`OnGatewayConnection`, `OnGatewayDisconnect`, `OnGatewayInit`). */
const GATEWAY_HOOKS = new Set<string | symbol>(['handleConnection', 'handleDisconnect', 'afterInit']);

/**
 * Binds {@link SessionInterceptor} to the decorated method, once, whatever
 * number of `@Session()` parameters it has: a parameter decorator's enhancers
 * run when the class is declared, before Nest reads the method's
 * interceptors to build its routes.
 */
function bindSessionInterceptor(target: object, key: string | symbol | undefined): void {
  if (key === undefined) return;
  if (GATEWAY_HOOKS.has(key)) {
    // Nest calls these itself with its own arguments: the parameter would silently be the socket.
    throw new SessionError(
      `@Session() cannot be used in ${String(key)}(): Nest calls it directly, without parameter decorators. ` +
        `Use \`const session = await getSession(client)\` there (read-only: nothing saves it), or @Session() in a @SubscribeMessage() handler.`,
    );
  }
  const method = (target as Record<string | symbol, object>)[key];
  const bound: unknown[] = Reflect.getMetadata(INTERCEPTORS_METADATA, method) ?? [];
  if (bound.includes(SessionInterceptor)) return;
  UseInterceptors(SessionInterceptor)(target, key, Object.getOwnPropertyDescriptor(target, key)!);
}

/**
 * The session of the request, or one of its values (`@Session('userId')`, like
 * `@Body('x')`). It replaces `@nestjs/common`'s `@Session()`, which reads
 * express-session's `req.session`: import it from `nest-session`.
 *
 * It binds {@link SessionInterceptor} to its handler, which opens the session
 * before the handler runs and saves it on the handler's way out, so only the
 * routes that declare it pay for sessions. Pipes given after the key run on
 * the value, e.g. `@Session('page', ParseIntPipe)`. Works in controllers
 * (Express and Fastify), GraphQL resolvers and WebSocket message handlers.
 *
 * @example
 * @Get('me')
 * me(@Session() session: SessionMixin<{ userId: number }>) { return session.get('userId'); }
 *
 * @publicApi
 */
export const Session = createParamDecorator(
  (key: string | undefined, context: ExecutionContext) => {
    const state = openedBy(context);
    const session = state.session;
    if (session) return key === undefined ? session : session.get(key);
    // Still opening (a GraphQL field resolver's session, opened here): Nest awaits a parameter's promise.
    return state.opening!.then((opened) => (key === undefined ? opened : opened.get(key)));
  },
  [bindSessionInterceptor],
);

/**
 * Binds {@link SessionInterceptor} to a controller, resolver or gateway class,
 * or to one method, for handlers that reach the session only through guards,
 * middleware or services (`getSession()`), so it is saved on the way out as
 * with `@Session()`. Routes without it or `@Session()` run no session code.
 *
 * @example
 * @UseSession()
 * @UseGuards(LoggedInGuard)
 * @Controller('account')
 * export class AccountController {}
 *
 * @publicApi
 */
export function UseSession(): ClassDecorator & MethodDecorator {
  return UseInterceptors(SessionInterceptor);
}

/**
 * The state the interceptor opened for this handler call (it ran before the
 * parameters were resolved); in GraphQL, the request's state, which may still
 * be opening.
 */
function openedBy(context: ExecutionContext): RequestSessionState {
  let state: RequestSessionState | undefined;
  switch (context.getType<string>()) {
    case 'http':
      state = stateOf(context.getArgByIndex(0));
      break;
    case 'graphql': {
      // A field resolver (@ResolveField) runs without interceptors unless GraphQLModule's
      // `fieldResolverEnhancers` lists them: open the request's session here. The HTTP
      // response's backstop saves it, as for every GraphQL request.
      const request = graphqlRequest(context.getArgByIndex(2));
      state = request && (stateOf(request) ?? findManager(request)?.open(request));
      if (state) return state;
      break;
    }
    case 'ws':
      state = handlerState(context.getArgByIndex(0), context.getArgByIndex(1));
      break;
  }
  if (!state?.session) throw SessionNotInitializedError.create(`@Session() in a ${context.getType()} context that SessionInterceptor did not open`);
  return state;
}
