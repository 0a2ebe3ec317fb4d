import { Controller, Get, Injectable, Module, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { from, switchMap } from 'rxjs';
import { getSession, Session, type SessionMixin } from '../../lib/index.js';

/** A global interceptor that writes the session after the handler: Flask's after_request. */
@Injectable()
class LateWriterInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler) {
    const url: string = context.switchToHttp().getRequest().url;
    if (url !== '/late') return next.handle();
    return next.handle().pipe(
      switchMap((body) =>
        from(
          getSession(context).then((session) => {
            session.set('value', 'set after the handler');
            return body;
          }),
        ),
      ),
    );
  }
}

@Controller()
export class LateController {
  @Get('late')
  late(@Session() session: SessionMixin) {
    session.get('value');
    return 'handler';
  }
}

@Module({ providers: [{ provide: APP_INTERCEPTOR, useClass: LateWriterInterceptor }] })
export class LateWriterModule {}
