/**
 * One benchmark server: `node bench/dist/server.js KIND PORT`. Every kind is a
 * NestJS app on Express with the same three routes:
 *   GET /none   never touches the session
 *   GET /read   reads one value
 *   GET /write  reads and writes a counter
 * and /login, which the runner calls once to get a session cookie.
 */
import 'reflect-metadata';
import { Controller, Get, Module, Req, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import cookieSession from 'cookie-session';
import expressSession from 'express-session';
import { NestSessionOptions, SessionModule as NestjsSessionModule } from 'nestjs-session';
import { Session, SessionModule, type SessionMixin } from 'nest-session';

const SECRET = 'benchmark secret';
type Kind = 'bare' | 'nest-session' | 'cookie-session' | 'express-session' | 'nestjs-session';
type Bag = Record<string, unknown>;

@Controller()
class BareController {
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
class NestSessionController {
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
class ReqSessionController {
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

function moduleFor(kind: Kind): DynamicModule {
  switch (kind) {
    case 'bare':
      return { module: BenchModule, controllers: [BareController] };
    case 'nest-session':
      return { module: BenchModule, imports: [SessionModule.forRoot({ secretKey: SECRET })], controllers: [NestSessionController] };
    case 'nestjs-session':
      return {
        module: BenchModule,
        imports: [
          NestjsSessionModule.forRoot({
            session: { secret: SECRET, resave: false, saveUninitialized: false },
          } satisfies NestSessionOptions) as never,
        ],
        controllers: [ReqSessionController],
      };
    default:
      return { module: BenchModule, controllers: [ReqSessionController] };
  }
}

@Module({})
class BenchModule {}

const [kind, port] = [process.argv[2] as Kind, Number(process.argv[3])];
const app = await NestFactory.create(moduleFor(kind), { logger: false });
if (kind === 'cookie-session') app.use(cookieSession({ keys: [SECRET] }));
if (kind === 'express-session') app.use(expressSession({ secret: SECRET, resave: false, saveUninitialized: false }));
await app.listen(port, '127.0.0.1');
process.send?.('ready');
