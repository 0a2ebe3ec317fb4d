import { createParamDecorator, type ExecutionContext, type PipeTransform, type Type } from '@nestjs/common';
import { INTERCEPTORS_METADATA } from '@nestjs/common/constants.js';
import { openedSession } from './request-session.js';
import { OPENS_SESSION_METADATA } from './session.constants.js';
import { SESSION_INTERCEPTOR } from './session.interceptor.js';

const sessionParam = createParamDecorator((key: string | undefined, context: ExecutionContext) => {
  const session = openedSession(context.switchToHttp().getRequest());
  return key === undefined ? session : session.get(key);
});

/**
 * The session of the request, or one of its values (`@Session('userId')`, like
 * `@Body('x')`). It replaces `@nestjs/common`'s `@Session()`, which reads
 * express-session's `req.session`: import it from `nest-session`.
 *
 * The route gets the session interceptor, which opens the session before the
 * handler and saves it before the body is written.
 *
 * @example
 * @Get('me')
 * me(@Session() session: SessionMixin<{ userId: number }>) { return session.get('userId'); }
 *
 * @publicApi
 */
export function Session(key?: string, ...pipes: Array<Type<PipeTransform> | PipeTransform>): ParameterDecorator {
  const decorateParameter = sessionParam(key, ...pipes);
  return (target, propertyKey, index) => {
    decorateParameter(target, propertyKey, index);
    if (propertyKey === undefined) return;
    const handler = (target as Record<string | symbol, object>)[propertyKey];
    attachInterceptor(handler);
    Reflect.defineMetadata(OPENS_SESSION_METADATA, true, handler);
  };
}

/**
 * Gives a route (or every route of a controller) the session interceptor
 * without taking the session as a parameter: for handlers and guards that call
 * `getSession()`, so that a session store is written before the response
 * starts. With signed cookies it is optional: a session opened anywhere is
 * saved as the headers are written.
 *
 * @publicApi
 */
export function UseSession(): ClassDecorator & MethodDecorator {
  return (target: object, _key?: string | symbol, descriptor?: PropertyDescriptor) => {
    attachInterceptor(descriptor ? descriptor.value : target);
  };
}

function attachInterceptor(target: object): void {
  const interceptors: unknown[] = Reflect.getMetadata(INTERCEPTORS_METADATA, target) ?? [];
  if (!interceptors.includes(SESSION_INTERCEPTOR)) {
    // First, so it is the outermost of the route's own interceptors and sees their errors.
    Reflect.defineMetadata(INTERCEPTORS_METADATA, [SESSION_INTERCEPTOR, ...interceptors], target);
  }
}
