import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { sessionOrPromise } from './request-session.js';
import type { SessionMixin } from './sessions/session-mixin.js';

/**
 * The session of the request, or one of its values (`@Session('userId')`, like
 * `@Body('x')`). It replaces `@nestjs/common`'s `@Session()`, which reads
 * express-session's `req.session`: import it from `nest-session`.
 *
 * The session is opened before the handler runs (Nest settles an asynchronous
 * parameter first) and saved before the response is written. Pipes given after
 * the key run on the value, e.g. `@Session('page', ParseIntPipe)`.
 *
 * @example
 * @Get('me')
 * me(@Session() session: SessionMixin<{ userId: number }>) { return session.get('userId'); }
 *
 * @publicApi
 */
export const Session = createParamDecorator((key: string | undefined, context: ExecutionContext) => {
  const session = sessionOrPromise(context);
  if (key === undefined) return session;
  return session instanceof Promise ? session.then((opened) => opened.get(key)) : (session as SessionMixin).get(key);
});
