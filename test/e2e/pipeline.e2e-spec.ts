/**
 * How the session travels through Nest's request pipeline: guards,
 * middleware, errors, @Res(), streams and SSE.
 */
import {
  BadRequestException,
  CanActivate,
  Controller,
  ExecutionContext,
  ForbiddenException,
  Get,
  Injectable,
  MessageEvent,
  Module,
  NestMiddleware,
  Res,
  ServiceUnavailableException,
  Sse,
  StreamableFile,
  UseGuards,
  type INestApplication,
  type MiddlewareConsumer,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import { createServer } from 'node:http';
import { Readable } from 'node:stream';
import { interval, map, take, type Observable } from 'rxjs';
import request from 'supertest';
import {
  SecureCookieSessionInterface,
  Session,
  SessionModule,
  getSession,
  type SessionApp,
  type SessionMixin,
} from '../../lib/index.js';
import { RecordingLogger, cookiePair, createApp, sessionCookie, setCookies } from '../support/apps.js';

const SEEN = Symbol('session seen by the guard');

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

@Injectable()
class VisitMiddleware implements NestMiddleware {
  async use(req: Request, _res: Response, next: () => void) {
    const session = await getSession(req);
    session.set('lastPath', req.originalUrl);
    next();
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
  private(@Session() session: SessionMixin, @Res({ passthrough: true }) res: Response) {
    const req = res.req as unknown as Record<symbol, unknown>;
    session.set('visits', ((session.get('visits') as number) ?? 0) + 1);
    return { sameObject: req[SEEN] === session, user: session.get('user') };
  }

  @Get('guard-only')
  @UseGuards(LoggedInGuard)
  guardOnly() {
    return 'guarded';
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

  @Get('crash')
  crash(@Session() session: SessionMixin) {
    session.set('error', 'crash');
    throw new Error('boom');
  }

  @Get('read')
  read(@Session() session: SessionMixin) {
    return session.toJSON();
  }

  @Get('passthrough')
  passthrough(@Session() session: SessionMixin, @Res({ passthrough: true }) res: Response) {
    res.cookie('other', 'kept');
    session.set('via', 'passthrough');
    return 'ok';
  }

  @Get('file')
  file(@Session() session: SessionMixin) {
    session.set('via', 'file');
    return new StreamableFile(Readable.from([Buffer.from('file body')]));
  }

  @Get('library')
  library(@Session() session: SessionMixin, @Res() res: Response) {
    session.set('via', 'library');
    res.send('sent by the handler');
  }

  @Get('library-async')
  async libraryAsync(@Session() session: SessionMixin, @Res() res: Response) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    session.set('via', 'library-async');
    res.json({ ok: true });
  }

  @Get('lazy')
  async lazy(@Res({ passthrough: true }) res: Response) {
    const session = await getSession(res.req);
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

/** Counts opens and saves, to prove untouched routes never reach the interface. */
@Injectable()
class CountingInterface extends SecureCookieSessionInterface {
  opens = 0;
  saves = 0;
  override openSession(app: SessionApp, req: never) {
    this.opens++;
    return super.openSession(app, req);
  }
  override saveSession(app: SessionApp, session: SessionMixin, res: never) {
    this.saves++;
    return super.saveSession(app, session, res);
  }
}

let app: INestApplication;
let sessions: CountingInterface;
let server: ReturnType<INestApplication['getHttpServer']>;

beforeEach(async () => {
  sessions = new CountingInterface();
  app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' }), PipelineModule] });
  server = app.getHttpServer();
});
afterEach(() => app.close());

async function login() {
  return cookiePair(await request(server).get('/login'));
}

async function sessionOf(cookie: string) {
  return (await request(server).get('/read').set('Cookie', cookie)).body;
}

test('a guard and the handler share one session, opened once', async () => {
  const cookie = await login();
  const before = sessions.opens;
  const response = await request(server).get('/private').set('Cookie', cookie).expect(200);
  expect(response.body).toEqual({ sameObject: true, user: 'alice' });
  expect(sessions.opens - before).toBe(1);
  expect(await sessionOf(cookiePair(response))).toEqual({ user: 'alice', visits: 1 });
});

test('a guard reading the session on a route without @Session() still varies on Cookie', async () => {
  await request(server).get('/guard-only').expect(403);
  const response = await request(server).get('/guard-only').set('Cookie', await login()).expect(200, 'guarded');
  expect(response.headers.vary).toBe('Cookie');
});

test('a guard that writes the session and then refuses still saves it', async () => {
  const first = await request(server).get('/refused').expect(403);
  const second = await request(server).get('/refused').set('Cookie', cookiePair(first)).expect(403);
  expect(await sessionOf(cookiePair(second))).toEqual({ refusals: 2 });
});

test('the session is saved when the handler throws an HttpException', async () => {
  const response = await request(server).get('/http-error').expect(400);
  expect(await sessionOf(cookiePair(response))).toEqual({ error: 'http' });
});

test('the session is saved when the handler crashes into a 500', async () => {
  const response = await request(server).get('/crash').expect(500);
  expect(await sessionOf(cookiePair(response))).toEqual({ error: 'crash' });
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
  const response = await request(server).get(`/${route}`).expect(200);
  expect(await sessionOf(cookiePair(response))).toEqual({ via: route });
});

test('getSession(request) inside the handler saves the session', async () => {
  const response = await request(server).get('/lazy').expect(200);
  expect(await sessionOf(cookiePair(response))).toEqual({ via: 'lazy' });
});

test('middleware can use the session through getSession(req)', async () => {
  const response = await request(server).get('/middleware').expect(200);
  expect(await sessionOf(cookiePair(response))).toEqual({ lastPath: '/middleware' });
});

test('an SSE stream carries the session cookie in its headers', async () => {
  const response = await request(server).get('/events').buffer(true).parse((res, done) => {
    let text = '';
    res.on('data', (chunk: Buffer) => (text += chunk));
    res.on('end', () => done(null, text));
  });
  expect(response.headers['content-type']).toContain('text/event-stream');
  expect(await sessionOf(cookiePair(response))).toEqual({ via: 'sse' });
});

test('a route that never uses the session never opens or saves it', async () => {
  const cookie = await login();
  const before = { opens: sessions.opens, saves: sessions.saves };
  @Controller('plain')
  class Plain {
    @Get() plain() {
      return 'plain';
    }
  }
  await app.close();
  app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [Plain] });
  const response = await request(app.getHttpServer()).get('/plain').set('Cookie', cookie).expect(200, 'plain');
  expect({ opens: sessions.opens, saves: sessions.saves }).toEqual(before);
  expect(setCookies(response)).toEqual([]);
  expect(response.headers.vary).toBeUndefined();
});

test('@Session() in an application without SessionModule is a clear 500, not a crash', async () => {
  await app.close();
  app = await createApp({ controllers: [PipelineController] });
  const response = await request(app.getHttpServer()).get('/read');
  expect(response.status).toBe(500);
  expect(sessionCookie(response)).toBeUndefined();
});

describe('when the save itself fails', () => {
  @Controller()
  class BadValueController {
    @Get('bad-value')
    badValue(@Session() session: SessionMixin) {
      session.set('cart', { items: [new Map()] } as never);
      return { saved: 'supposedly' };
    }
  }

  @Injectable()
  class UnavailableInterface extends SecureCookieSessionInterface {
    override saveSession(): Promise<void> {
      return Promise.reject(new ServiceUnavailableException('The session store is down'));
    }
  }

  it('a value with no JSON form turns the response into a 500 naming the key, and keeps the old cookie', async () => {
    const logger = new RecordingLogger();
    await app.close();
    app = await createApp({ imports: [SessionModule.forRoot({ secretKey: 'k' })], controllers: [BadValueController] }, logger);
    const response = await request(app.getHttpServer()).get('/bad-value');
    expect(response.status).toBe(500);
    expect(response.body).toEqual({ statusCode: 500, message: 'Internal server error' });
    expect(setCookies(response)).toEqual([]);
    expect(logger.messages('error').join('\n')).toContain('Cannot serialize the session value at "cart.items[0]": a Map has no JSON form');
  });

  it('an HttpException from an asynchronous save becomes the response', async () => {
    await app.close();
    app = await createApp({ imports: [SessionModule.forRoot({ interface: UnavailableInterface, secretKey: 'k' })], controllers: [BadValueController, PipelineController] });
    const response = await request(app.getHttpServer()).get('/login');
    expect(response.status).toBe(503);
    expect(response.body).toMatchObject({ statusCode: 503, message: 'The session store is down' });
    // A route that does not use the session is unaffected.
    await request(app.getHttpServer()).get('/middleware').expect(200, 'ok');
  });
});

test('a response without Express (a plain Node server) is saved through its own end()', async () => {
  const plain = createServer(async (req, res) => {
    Object.assign(req, { res });
    const session = await getSession(req);
    session.set('via', 'node');
    res.end('plain node');
  });
  const response = await request(plain).get('/').expect(200, 'plain node');
  expect(await sessionOf(cookiePair(response))).toEqual({ via: 'node' });
});
