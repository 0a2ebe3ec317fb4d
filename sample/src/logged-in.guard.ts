import { Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { getSession } from 'nest-session';

/** Guards run before interceptors: getSession() opens the same session the handler will get. */
@Injectable()
export class LoggedInGuard implements CanActivate {
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await getSession(context);
    if (!session.has('user')) throw new UnauthorizedException('Log in first: POST /login {"user": "alice"}');
    return true;
  }
}
