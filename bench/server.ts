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
import { RedisSessionInterface } from 'nest-session/redis';
import { RedisStore } from 'connect-redis';
import { Redis } from 'ioredis';
import { createClient } from 'redis';

const SECRET = 'benchmark secret';
type Kind =
  | 'bare'
  | 'nest-session'
  | 'cookie-session'
  | 'express-session'
  | 'nestjs-session'
  | 'nest-session+redis'
  | 'express-session+connect-redis'
  | 'nestjs-session+connect-redis';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** connect-redis 9 speaks node-redis only (it dropped ioredis). */
async function connectRedisStore(): Promise<RedisStore> {
  const client = createClient({ url: REDIS_URL });
  await client.connect();
  return new RedisStore({ client });
}
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

async function moduleFor(kind: Kind): Promise<DynamicModule> {
  switch (kind) {
    case 'nest-session+redis':
      return {
        module: BenchModule,
        imports: [SessionModule.forRoot({ interface: new RedisSessionInterface({ client: new Redis(REDIS_URL) }), secretKey: SECRET })],
        controllers: [NestSessionController],
      };
    case 'nestjs-session+connect-redis':
      return {
        module: BenchModule,
        imports: [
          NestjsSessionModule.forRoot({
            session: { store: await connectRedisStore(), secret: SECRET, resave: false, saveUninitialized: false },
          } satisfies NestSessionOptions) as never,
        ],
        controllers: [ReqSessionController],
      };
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
const app = await NestFactory.create(await moduleFor(kind), { logger: false });
if (kind === 'cookie-session') app.use(cookieSession({ keys: [SECRET] }));
if (kind === 'express-session') app.use(expressSession({ secret: SECRET, resave: false, saveUninitialized: false }));
if (kind === 'express-session+connect-redis') {
  app.use(expressSession({ store: await connectRedisStore(), secret: SECRET, resave: false, saveUninitialized: false }));
}
await app.listen(port, '127.0.0.1');
process.send?.('ready');
