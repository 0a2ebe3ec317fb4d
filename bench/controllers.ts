/**
 * The routes every benchmark server serves, over each kind of session:
 *   GET /none   never touches the session
 *   GET /read   reads one value
 *   GET /write  reads and writes a counter
 * and /login, which the runner calls to get a session cookie. Shared by
 * server.ts and sql-server.ts.
 */
import 'reflect-metadata';
import { Controller, Get, Req } from '@nestjs/common';
import { Session, type SessionMixin } from 'nest-session';

export const SECRET = 'benchmark secret';
type Bag = Record<string, unknown>;

/** No sessions: the same answers, for the cost of NestJS alone. */
@Controller()
export class BareController {
  @Get('none') none() {
    return { ok: true };
  }
  @Get('read') read() {
    return { user: 'alice' };
  }
  @Get('write') write() {
    return { count: 1 };
  }
  @Get('login') login() {
    return { ok: true };
  }
}

@Controller()
export class NestSessionController {
  @Get('none') none() {
    return { ok: true };
  }
  @Get('read') read(@Session() session: SessionMixin) {
    return { user: session.get('user') };
  }
  @Get('write') write(@Session() session: SessionMixin) {
    const count = ((session.get('count') as number) ?? 0) + 1;
    session.set('count', count);
    return { count };
  }
  @Get('login') login(@Session() session: SessionMixin) {
    session.set('user', 'alice');
    return { ok: true };
  }
}

/** The same routes over `req.session`, as express-session, cookie-session and nestjs-session expose it. */
@Controller()
export class ReqSessionController {
  @Get('none') none() {
    return { ok: true };
  }
  @Get('read') read(@Req() req: { session: Bag }) {
    return { user: req.session.user };
  }
  @Get('write') write(@Req() req: { session: Bag }) {
    const count = ((req.session.count as number) ?? 0) + 1;
    req.session.count = count;
    return { count };
  }
  @Get('login') login(@Req() req: { session: Bag }) {
    req.session.user = 'alice';
    return { ok: true };
  }
}
