import type { CallHandler, ExecutionContext, NestInterceptor } from '@nestjs/common';
import { Logger } from '@nestjs/common';
import { catchError, concatMap, from, type Observable } from 'rxjs';
import { commitSession, getSession } from './request-session.js';
import { OPENS_SESSION_METADATA } from './session.constants.js';

/**
 * Opens the session before a handler that takes it, and saves it on the
 * handler's outgoing observable, before the body is written, also when the
 * handler throws (Flask saves on handled errors too).
 *
 * It is attached only to the routes that use the session (by `@Session()` and
 * `@UseSession()`), so every other route runs with no session code at all.
 */
export class SessionInterceptor implements NestInterceptor {
  private readonly logger = new Logger('SessionModule');

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    if (context.getType() !== 'http') return next.handle();
    const request = context.switchToHttp().getRequest();
    if (Reflect.getMetadata(OPENS_SESSION_METADATA, context.getHandler())) {
      await getSession(context);
    }
    return next.handle().pipe(
      concatMap(async (body) => {
        await commitSession(request);
        return body;
      }),
      catchError((error: unknown) => from(this.commitThenRethrow(request, error))),
    );
  }

  private async commitThenRethrow(request: object, error: unknown): Promise<never> {
    try {
      await commitSession(request);
    } catch (saveError) {
      this.logger.error('Saving the session of a failed request failed', (saveError as Error)?.stack);
    }
    throw error;
  }
}

/** The one interceptor instance that the decorators attach to routes; it finds each request's application itself. */
export const SESSION_INTERCEPTOR = new SessionInterceptor();
