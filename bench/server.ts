/**
 * One benchmark server: `node bench/dist/server.js KIND PORT`. Every kind is a
 * NestJS app (on Express, or on Fastify for the kinds that say so) with the
 * same three routes:
 *   GET /none   never touches the session
 *   GET /read   reads one value
 *   GET /write  reads and writes a counter
 * and /login, which the runner calls once to get a session cookie.
 */
import 'reflect-metadata';
import { Controller, Get, Module, Req, type DynamicModule } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { NestFactory } from '@nestjs/core';
import cookieSession from 'cookie-session';
import expressSession from 'express-session';
import { NestSessionOptions, SessionModule as NestjsSessionModule } from 'nestjs-session';
import { SessionModule, getSession } from 'nest-session';
import { RedisSessionInterface } from 'nest-session/redis';
import { RedisStore } from 'connect-redis';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { BareController, NestSessionController, ReqSessionController, SECRET } from './controllers.js';

type Kind =
  | 'bare'
  | 'nest-session'
  | 'cookie-session'
  | 'express-session'
  | 'nestjs-session'
  | 'nest-session+redis'
  | 'express-session+connect-redis'
  | 'nestjs-session+connect-redis'
  | 'nest-session (no interceptor)'
  | 'bare+fastify'
  | 'nest-session+fastify'
  | 'nest-session+fastify (no interceptor)'
  | '@fastify/secure-session'
  | '@fastify/session';
const ON_FASTIFY = new Set<Kind>(['bare+fastify', 'nest-session+fastify', 'nest-session+fastify (no interceptor)', '@fastify/secure-session', '@fastify/session']);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** connect-redis 9 speaks node-redis only (it dropped ioredis). */
async function connectRedisStore(): Promise<RedisStore> {
  const client = createClient({ url: REDIS_URL });
  await client.connect();
  return new RedisStore({ client });
}

/**
 * nest-session without its interceptor: the session opened with getSession()
 * and saved by the HTTP backstop when the response is sent. Against
 * NestSessionController, it measures what binding SessionInterceptor costs.
 */
@Controller()
class BackstopOnlyController {
  @Get('none') none() {
    return { ok: true };
  }
  @Get('read') async read(@Req() req: object) {
    return { user: (await getSession(req)).get('user') };
  }
  @Get('write') async write(@Req() req: object) {
    const session = await getSession(req);
    const count = ((session.get('count') as number) ?? 0) + 1;
    session.set('count', count);
    return { count };
  }
  @Get('login') async login(@Req() req: object) {
    (await getSession(req)).set('user', 'alice');
    return { ok: true };
  }
}

/** The same routes over @fastify/secure-session's `request.session`. */
type SecureSession = { get(key: string): unknown; set(key: string, value: unknown): void };
@Controller()
class SecureSessionController {
  @Get('none') none() {
    return { ok: true };
  }
  @Get('read') read(@Req() req: { session: SecureSession }) {
    return { user: req.session.get('user') };
  }
  @Get('write') write(@Req() req: { session: SecureSession }) {
    const count = ((req.session.get('count') as number) ?? 0) + 1;
    req.session.set('count', count);
    return { count };
  }
  @Get('login') login(@Req() req: { session: SecureSession }) {
    req.session.set('user', 'alice');
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
    case 'bare+fastify':
      return { module: BenchModule, controllers: [BareController] };
    case 'nest-session':
    case 'nest-session+fastify':
      return { module: BenchModule, imports: [SessionModule.forRoot({ secretKey: SECRET })], controllers: [NestSessionController] };
    case 'nest-session (no interceptor)':
    case 'nest-session+fastify (no interceptor)':
      return { module: BenchModule, imports: [SessionModule.forRoot({ secretKey: SECRET })], controllers: [BackstopOnlyController] };
    case '@fastify/secure-session':
      return { module: BenchModule, controllers: [SecureSessionController] };
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
const module = await moduleFor(kind);
const app = ON_FASTIFY.has(kind)
  ? await NestFactory.create(module, new FastifyAdapter(), { logger: false })
  : await NestFactory.create(module, { logger: false });
if (kind === '@fastify/secure-session') {
  const { default: secureSession } = await import('@fastify/secure-session');
  // A 32-byte key, as the plugin's genkey writes.
  await (app as unknown as { register(plugin: unknown, options: unknown): Promise<unknown> }).register(secureSession, {
    key: Buffer.alloc(32, SECRET),
    cookie: { path: '/', httpOnly: true },
  });
}
if (kind === '@fastify/session') {
  const [{ default: fastifyCookie }, { default: fastifySession }] = await Promise.all([import('@fastify/cookie'), import('@fastify/session')]);
  const register = (app as unknown as { register(plugin: unknown, options?: unknown): Promise<unknown> }).register.bind(app);
  await register(fastifyCookie);
  await register(fastifySession, { secret: `${SECRET} of at least 32 characters`, cookie: { secure: false }, saveUninitialized: false });
}
if (kind === 'cookie-session') app.use(cookieSession({ keys: [SECRET] }));
if (kind === 'express-session') app.use(expressSession({ secret: SECRET, resave: false, saveUninitialized: false }));
if (kind === 'express-session+connect-redis') {
  app.use(expressSession({ store: await connectRedisStore(), secret: SECRET, resave: false, saveUninitialized: false }));
}
await app.listen(port, '127.0.0.1');
process.send?.('ready');
