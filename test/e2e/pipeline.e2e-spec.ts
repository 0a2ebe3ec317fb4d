/**
 * How the session travels through Nest's request pipeline, on Express and on
 * Fastify: guards, middleware, interceptors, errors, @Res(), streams and SSE.
 */
import {
  BadRequestException,
  CanActivate,
  Catch,
  Controller,
  ExecutionContext,
  ForbiddenException,
  Get,
  HttpException,
  Injectable,
  MessageEvent,
  Module,
  NestMiddleware,
  Req,
  Res,
  ServiceUnavailableException,
  Sse,
  StreamableFile,
  UseFilters,
  UseGuards,
  type ArgumentsHost,
  type ExceptionFilter,
  type INestApplication,
  type MiddlewareConsumer,
} from '@nestjs/common';
import { Readable } from 'node:stream';
import { interval, map, take, type Observable } from 'rxjs';
import request from 'supertest';
import {
  SecureCookieSessionInterface,
  Session,
  SessionInterceptor,
  SessionModule,
  SessionNotInitializedError,
  UseSession,
  getSession,
  type SessionMixin,
} from '../../lib/index.js';
import { PLATFORMS, RecordingLogger, cookiePair, createApp, sessionCookie, setCookies, type Platform } from '../support/apps.js';
import { CountingCookieInterface } from '../support/counting-interfaces.js';

const SEEN = Symbol('session seen by the guard');

/** Express's `res` or Fastify's reply, as a handler with `@Res()` gets it. */
type AnyResponse = { raw?: unknown; send(body: unknown): unknown; header?(name: string, value: string): unknown; append?(name: string, value: string): unknown };

/** Adds a cookie of the handler's own, the way each platform does it without a cookie plugin. */
function addOwnCookie(res: AnyResponse) {
  if (res.raw) res.header!('set-cookie', 'other=kept; Path=/');
  else res.append!('Set-Cookie', 'other=kept; Path=/');
}

/** Lets a request in when the session holds a user; remembers the session object it saw. */
@Injectable()
class LoggedInGuard implements CanActivate {
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await getSession(context);
    context.switchToHttp().getRequest()[SEEN] = session;
    return session.has('user');
  }
}

/** Writes the session, then refuses the request. */
@Injectable()
class CountingRefusalGuard implements CanActivate {
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await getSession(context);
    session.set('refusals', ((session.get('refusals') as number) ?? 0) + 1);
    throw new ForbiddenException('no');
  }
}

/** Writes the session in a guard, and lets the request in. */
@Injectable()
class StampGuard implements CanActivate {
  async canActivate(context: ExecutionContext): Promise<boolean> {
    (await getSession(context)).set('stamped', true);
    return true;
  }
}

@Injectable()
class VisitMiddleware implements NestMiddleware {
  async use(req: { url: string; originalUrl?: string }, _res: unknown, next: () => void) {
    const session = await getSession(req);
    session.set('lastPath', req.originalUrl ?? req.url);
    next();
  }
}

/** An exception filter that writes the session while it answers, as some error pages do. */
@Catch(BadRequestException)
class RememberingFilter implements ExceptionFilter {
  async catch(exception: HttpException, host: ArgumentsHost) {
    const session = await getSession(host.switchToHttp().getRequest());
    session.set('filtered', exception.message);
    const res = host.switchToHttp().getResponse();
    if (res.raw) res.status(400).send({ filtered: true });
    else res.status(400).json({ filtered: true });
  }
}

@Controller()
class PipelineController {
  @Get('login')
  login(@Session() session: SessionMixin) {
    session.set('user', 'alice');
    return 'ok';
  }

  @Get('private')
  @UseGuards(LoggedInGuard)
  private(@Session() session: SessionMixin, @Req() req: Record<symbol, unknown>) {
    session.set('visits', ((session.get('visits') as number) ?? 0) + 1);
    return { sameObject: req[SEEN] === session, user: session.get('user') };
  }

  @Get('guard-only')
  @UseGuards(LoggedInGuard)
  guardOnly() {
    return 'guarded';
  }

  @Get('stamp')
  @UseSession()
  @UseGuards(StampGuard)
  stamp() {
    return 'stamped';
  }

  @Get('refused')
  @UseGuards(CountingRefusalGuard)
  refused() {
    return 'never';
  }

  @Get('http-error')
  httpError(@Session() session: SessionMixin) {
    session.set('error', 'http');
    throw new BadRequestException('bad');
  }

  @Get('filtered')
  @UseFilters(RememberingFilter)
  filtered(@Session() session: SessionMixin) {
    session.set('before', 'throw');
    throw new BadRequestException('bad input');
  }

  @Get('crash')
  crash(@Session() session: SessionMixin) {
    session.set('error', 'crash');
    throw new Error('boom');
  }

  @Get('read')
  read(@Session() session: SessionMixin) {
    return session.toJSON();
  }

  @Get('two')
  two(@Session() session: SessionMixin, @Session('user') user?: string) {
    session.set('seenUser', user ?? null);
    return { user: user ?? null };
  }

  @Get('passthrough')
  passthrough(@Session() session: SessionMixin, @Res({ passthrough: true }) res: AnyResponse) {
    addOwnCookie(res);
    session.set('via', 'passthrough');
    return 'ok';
  }

  @Get('file')
  file(@Session() session: SessionMixin) {
    session.set('via', 'file');
    return new StreamableFile(Readable.from([Buffer.from('file body')]));
  }

  @Get('library')
  library(@Session() session: SessionMixin, @Res() res: AnyResponse) {
    session.set('via', 'library');
    res.send('sent by the handler');
  }

  @Get('library-async')
  async libraryAsync(@Session() session: SessionMixin, @Res() res: AnyResponse) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    session.set('via', 'library-async');
    res.send({ ok: true });
  }

  @Get('lazy')
  @UseSession()
  async lazy(@Req() req: object) {
    const session = await getSession(req);
    session.set('via', 'lazy');
    return 'ok';
  }

  @Get('middleware')
  middleware() {
    return 'ok';
  }

  @Sse('events')
  events(@Session() session: SessionMixin): Observable<MessageEvent> {
    session.set('via', 'sse');
    return interval(1).pipe(
      take(2),
      map((i) => ({ data: { i } })),
    );
  }
}

@Module({ controllers: [PipelineController] })
class PipelineModule {
  configure(consumer: MiddlewareConsumer) {
    consumer.apply(VisitMiddleware).forRoutes('middleware');
  }
}


test('@Session() binds SessionInterceptor to its handler once, however many @Session() parameters it has', () => {
  const bound = (name: keyof PipelineController) => Reflect.getMetadata('__interceptors__', PipelineController.prototype[name]) as unknown[];
  expect(bound('two')).toEqual([SessionInterceptor]);
  expect(bound('read')).toEqual([SessionInterceptor]);
  expect(bound('guardOnly')).toBeUndefined();
});

describe.each(PLATFORMS)('on %s', (platform: Platform) => {
  let app: INestApplication;
  let sessions: CountingCookieInterface;
  let server: ReturnType<INestApplication['getHttpServer']>;

  beforeEach(async () => {
    sessions = new CountingCookieInterface();
    app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' }), PipelineModule] }, false, platform);
    server = app.getHttpServer();
  });
  afterEach(() => app.close());

  async function login() {
    return cookiePair(await request(server).get('/login'));
  }

  async function sessionOf(cookie: string) {
    return (await request(server).get('/read').set('Cookie', cookie)).body;
  }

  /** Opens and saves made by one request. */
  async function counted(run: () => Promise<unknown>) {
    const before = { opens: sessions.opens, saves: sessions.saves };
    await run();
    return { opens: sessions.opens - before.opens, saves: sessions.saves - before.saves };
  }

  test('a guard and the handler share one session, opened once and saved once', async () => {
    const cookie = await login();
    let response!: request.Response;
    const calls = await counted(async () => {
      response = await request(server).get('/private').set('Cookie', cookie).expect(200);
    });
    expect(response.body).toEqual({ sameObject: true, user: 'alice' });
    expect(calls).toEqual({ opens: 1, saves: 1 });
    expect(await sessionOf(cookiePair(response))).toEqual({ user: 'alice', visits: 1 });
  });

  test('two @Session() parameters on one handler: one open, one save', async () => {
    const cookie = await login();
    let response!: request.Response;
    const calls = await counted(async () => {
      response = await request(server).get('/two').set('Cookie', cookie).expect(200, { user: 'alice' });
    });
    expect(calls).toEqual({ opens: 1, saves: 1 });
    expect(await sessionOf(cookiePair(response))).toEqual({ user: 'alice', seenUser: 'alice' });
  });

  test('a guard reading the session on a route without @Session() still varies on Cookie', async () => {
    await request(server).get('/guard-only').expect(403);
    const response = await request(server).get('/guard-only').set('Cookie', await login()).expect(200, 'guarded');
    expect(response.headers.vary).toBe('Cookie');
  });

  test('@UseSession(): a guard that writes the session on a handler without @Session() has it saved once', async () => {
    let response!: request.Response;
    const calls = await counted(async () => {
      response = await request(server).get('/stamp').expect(200, 'stamped');
    });
    expect(calls).toEqual({ opens: 1, saves: 1 });
    expect(await sessionOf(cookiePair(response))).toEqual({ stamped: true });
  });

  test('a guard that writes the session and then refuses still saves it, once', async () => {
    const first = await request(server).get('/refused').expect(403);
    let second!: request.Response;
    const calls = await counted(async () => {
      second = await request(server).get('/refused').set('Cookie', cookiePair(first)).expect(403);
    });
    expect(calls).toEqual({ opens: 1, saves: 1 });
    expect(await sessionOf(cookiePair(second))).toEqual({ refusals: 2 });
  });

  test('the session is saved once when the handler throws an HttpException', async () => {
    let response!: request.Response;
    const calls = await counted(async () => {
      response = await request(server).get('/http-error').expect(400);
    });
    expect(calls).toEqual({ opens: 1, saves: 1 });
    expect(await sessionOf(cookiePair(response))).toEqual({ error: 'http' });
  });

  test('the session is saved when the handler crashes into a 500', async () => {
    const response = await request(server).get('/crash').expect(500);
    expect(await sessionOf(cookiePair(response))).toEqual({ error: 'crash' });
  });

  test('an exception filter that writes the session has its write saved too', async () => {
    const response = await request(server).get('/filtered').expect(400, { filtered: true });
    expect(await sessionOf(cookiePair(response))).toEqual({ before: 'throw', filtered: 'bad input' });
  });

  test('@Res({ passthrough: true }) keeps both its own cookies and the session cookie', async () => {
    const response = await request(server).get('/passthrough').expect(200);
    expect(setCookies(response).some((h) => h.startsWith('other=kept'))).toBe(true);
    expect(await sessionOf(cookiePair(response))).toEqual({ via: 'passthrough' });
  });

  test('a StreamableFile response keeps the session cookie', async () => {
    const response = await request(server).get('/file').expect(200);
    expect(response.body.toString()).toBe('file body');
    expect(await sessionOf(cookiePair(response))).toEqual({ via: 'file' });
  });

  test.each(['library', 'library-async'])('@Res() without passthrough (/%s): the cookie is set as the handler sends', async (route) => {
    let response!: request.Response;
    const calls = await counted(async () => {
      response = await request(server).get(`/${route}`).expect(200);
    });
    expect(calls).toEqual({ opens: 1, saves: 1 });
    expect(await sessionOf(cookiePair(response))).toEqual({ via: route });
  });

  test('getSession(request) inside a @UseSession() handler saves the session', async () => {
    const response = await request(server).get('/lazy').expect(200);
    expect(await sessionOf(cookiePair(response))).toEqual({ via: 'lazy' });
  });

  test('middleware can use the session through getSession(req), saved when the response is sent', async () => {
    const response = await request(server).get('/middleware').expect(200);
    expect(await sessionOf(cookiePair(response))).toEqual({ lastPath: '/middleware' });
  });

  test('an SSE stream carries the session cookie in its headers', async () => {
    const response = await request(server)
      .get('/events')
      .buffer(true)
      .parse((res, done) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk));
        res.on('end', () => done(null, text));
      });
    expect(response.headers['content-type']).toContain('text/event-stream');
    expect(response.body).toContain('data: {"i":1}');
    expect(await sessionOf(cookiePair(response))).toEqual({ via: 'sse' });
  });

  test('a route that never uses the session never opens or saves it', async () => {
    const cookie = await login();
    @Controller('plain')
    class Plain {
      @Get() plain() {
        return 'plain';
      }
    }
    await app.close();
    app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [Plain] }, false, platform);
    let response!: request.Response;
    const calls = await counted(async () => {
      response = await request(app.getHttpServer()).get('/plain').set('Cookie', cookie).expect(200, 'plain');
    });
    expect(calls).toEqual({ opens: 0, saves: 0 });
    expect(setCookies(response)).toEqual([]);
    expect(response.headers.vary).toBeUndefined();
  });

  test('everyRequest: true opens and saves the session on every route, refreshing a permanent cookie as Flask does', async () => {
    @Controller()
    class Mixed {
      @Get('remember')
      remember(@Session() session: SessionMixin) {
        session.permanent = true;
        session.set('user', 'alice');
        return 'ok';
      }
      @Get('plain') plain() {
        return 'plain';
      }
    }
    await app.close();
    app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k', everyRequest: true })], controllers: [Mixed] }, false, platform);
    const first = await request(app.getHttpServer()).get('/remember').expect(200);
    let plain!: request.Response;
    const calls = await counted(async () => {
      plain = await request(app.getHttpServer()).get('/plain').set('Cookie', cookiePair(first)).expect(200, 'plain');
    });
    expect(calls).toEqual({ opens: 1, saves: 1 });
    expect(sessionCookie(plain)!.expires).toBeInstanceOf(Date);
    expect(plain.headers.vary).toBe('Cookie');
  });

  test('two applications in one process keep their own sessions (no process-wide registry)', async () => {
    const other = await createApp({ imports: [SessionModule.forRoot({ secretKey: 'another key' }), PipelineModule] }, false, platform);
    try {
      const mine = await login();
      const theirs = await request(other.getHttpServer()).get('/read').set('Cookie', mine).expect(200);
      expect(theirs.body).toEqual({}); // signed with another key: not theirs
      const viaMiddleware = await request(other.getHttpServer()).get('/middleware').expect(200);
      expect((await request(other.getHttpServer()).get('/read').set('Cookie', cookiePair(viaMiddleware))).body).toEqual({ lastPath: '/middleware' });
      expect(await sessionOf(cookiePair(viaMiddleware))).toEqual({});
    } finally {
      await other.close();
    }
  });

  describe('when the save itself fails', () => {
    @Controller()
    class BadValueController {
      @Get('bad-value')
      badValue(@Session() session: SessionMixin) {
        session.set('cart', { items: [new Map()] } as never);
        return { saved: 'supposedly' };
      }
      @Get('bad-value-library')
      badValueLibrary(@Session() session: SessionMixin, @Res() res: AnyResponse) {
        session.set('cart', { items: [new Map()] } as never);
        res.send({ saved: 'supposedly' });
      }
    }

    @Injectable()
    class UnavailableInterface extends SecureCookieSessionInterface {
      override saveSession(): Promise<void> {
        return Promise.reject(new ServiceUnavailableException('The session store is down'));
      }
    }

    it.each(['bad-value', 'bad-value-library'])(
      '/%s: a value with no JSON form turns the response into a 500, logs the key, keeps the old cookie',
      async (route) => {
        const logger = new RecordingLogger();
        await app.close();
        app = await createApp({ imports: [SessionModule.forRoot({ secretKey: 'k' })], controllers: [BadValueController] }, logger, platform);
        const response = await request(app.getHttpServer()).get(`/${route}`);
        expect(response.status).toBe(500);
        expect(response.body).toEqual({ statusCode: 500, message: 'Internal server error' });
        expect(setCookies(response)).toEqual([]);
        const errors = logger.messages('error').join('\n');
        expect(errors).toContain('Cannot serialize the session value at "cart.items[0]": a Map has no JSON form');
        expect(errors.split('Cannot serialize').length - 1).toBe(1); // logged once, not again by Nest's filter
      },
    );

    it('an HttpException from an asynchronous save becomes the response', async () => {
      await app.close();
      app = await createApp(
        { imports: [SessionModule.forRoot({ interface: UnavailableInterface, secretKey: 'k' })], controllers: [BadValueController, PipelineController] },
        false,
        platform,
      );
      const response = await request(app.getHttpServer()).get('/login');
      expect(response.status).toBe(503);
      expect(response.body).toMatchObject({ statusCode: 503, message: 'The session store is down' });
      // A route that does not use the session is unaffected.
      await request(app.getHttpServer()).get('/middleware').expect(200, 'ok');
    });
  });
});

test('@Session() in an application without SessionModule fails at bootstrap, saying what to import', async () => {
  await expect(createApp({ controllers: [PipelineController] })).rejects.toThrow(SessionNotInitializedError);
  await expect(createApp({ controllers: [PipelineController] })).rejects.toThrow('import SessionModule.forRoot()');
});
