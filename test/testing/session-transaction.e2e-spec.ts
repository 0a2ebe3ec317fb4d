/**
 * `nest-session/testing`: sessionTransaction(), Flask's
 * `client.session_transaction()`, with supertest agents on Express and
 * Fastify, Fastify's inject(), signed cookies and the server-side interfaces
 * (the filesystem store and Redis, on a redis-server of the test's own).
 */
import {
  Controller,
  Get,
  Injectable,
  UnauthorizedException,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import { Redis } from 'ioredis';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { FileSystemSessionInterface } from '../../lib/filesystem/index.js';
import { RedisSessionInterface } from '../../lib/redis/index.js';
import { sessionTransaction } from '../../lib/testing/index.js';
import {
  SecureCookieSessionInterface,
  Session,
  SessionError,
  SessionModule,
  getSession,
  type SessionInterface,
  type SessionMixin,
} from '../../lib/index.js';
import { PLATFORMS, createApp, type Platform } from '../support/apps.js';
import { RedisServer } from '../support/loopback-servers.js';

@Injectable()
class LoggedInGuard implements CanActivate {
  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (!(await getSession(context)).has('userId')) throw new UnauthorizedException('log in first');
    return true;
  }
}

@Controller()
class AccountController {
  @Get('me')
  @UseGuards(LoggedInGuard)
  me(@Session('userId') userId: number) {
    return { userId };
  }

  @Get('count')
  count(@Session() session: SessionMixin) {
    const count = ((session.get('count') as number) ?? 0) + 1;
    session.set('count', count);
    return { count };
  }

  @Get('logout')
  logout(@Session() session: SessionMixin) {
    session.clear();
    return 'ok';
  }
}

let redisServer: RedisServer;
let cacheRoot: string;
const redisClients: Redis[] = [];

beforeAll(async () => {
  redisServer = await RedisServer.start();
  cacheRoot = mkdtempSync(join(tmpdir(), 'nest-session-testing-'));
});
afterAll(async () => {
  redisClients.forEach((client) => client.disconnect());
  await redisServer.close();
  rmSync(cacheRoot, { recursive: true, force: true });
});

/** Each interface, with a way to tell whether the store holds a session id's record (signed cookies have no store). */
const INTERFACES: Array<{ name: string; create(): SessionInterface; stored?(sid: string): Promise<boolean> }> = [
  { name: 'signed cookies', create: () => new SecureCookieSessionInterface() },
  (() => {
    let cacheDir = '';
    return {
      name: 'filesystem store',
      create: () => new FileSystemSessionInterface({ cacheDir: (cacheDir = mkdtempSync(join(cacheRoot, 'sessions-'))) }),
      stored: async (sid: string) => existsSync(join(cacheDir, createHash('sha256').update(`session:${sid}`).digest('hex'))),
    };
  })(),
  {
    name: 'Redis store',
    create: () => {
      const client = new Redis(redisServer.url);
      redisClients.push(client);
      return new RedisSessionInterface({ client });
    },
    stored: async (sid: string) => (await redisClients.at(-1)!.exists(`session:${sid}`)) === 1,
  },
];

/** The value of cookie `name` in a Cookie header. */
function cookieValue(header: string, name = 'session'): string | undefined {
  return header
    .split('; ')
    .map((pair) => pair.split('='))
    .find(([key]) => key === name)?.[1];
}

describe.each(PLATFORMS)('on %s', (platform: Platform) => {
  describe.each(INTERFACES)('with $name', (sessions) => {
    let app: INestApplication;

    beforeEach(async () => {
      app = await createApp(
        { imports: [SessionModule.forRoot({ interface: sessions.create(), secretKey: 'testing secret' })], controllers: [AccountController] },
        false,
        platform,
      );
    });
    afterEach(() => app.close());

    // The README's example.
    test('a test starts logged in without calling a login route', async () => {
      const agent = request.agent(app.getHttpServer());
      await agent.get('/me').expect(401);

      await sessionTransaction(agent, (session) => {
        session.set('userId', 42);
      });

      await agent.get('/me').expect(200, { userId: 42 });
    });

    test('it opens the session the agent’s cookies point at, and the agent sends the changed one', async () => {
      const agent = request.agent(app.getHttpServer());
      await agent.get('/count').expect(200, { count: 1 });
      await agent.get('/count').expect(200, { count: 2 });
      let seen: unknown;
      const cookie = await sessionTransaction<{ count: number }>(agent, (session) => {
        seen = session.get('count');
        session.set('count', 10);
      });
      expect(seen).toBe(2);
      expect(cookieValue(cookie)).toBeDefined();
      await agent.get('/count').expect(200, { count: 11 });
    });

    test('the changed session is stored before sessionTransaction() resolves', async () => {
      const agent = request.agent(app.getHttpServer());
      const cookie = await sessionTransaction(agent, (session) => session.set('userId', 7));
      const value = cookieValue(cookie)!;
      if (sessions.stored) {
        expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/); // a sid, the data in the store
        expect(await sessions.stored(value)).toBe(true);
      } else {
        expect(value.split('.')).toHaveLength(3); // the data, signed, in the cookie
      }
      // A plain request with that cookie, not the agent, sees it too.
      await request(app.getHttpServer()).get('/me').set('Cookie', cookie).expect(200, { userId: 7 });
    });

    test('clearing the session in a transaction logs the agent out', async () => {
      const agent = request.agent(app.getHttpServer());
      const before = await sessionTransaction(agent, (session) => session.set('userId', 42));
      await agent.get('/me').expect(200);
      const after = await sessionTransaction(agent, (session) => session.clear());
      expect(after).toBe(''); // the jar dropped the deleted cookie
      await agent.get('/me').expect(401);
      if (sessions.stored) expect(await sessions.stored(cookieValue(before)!)).toBe(false);
    });

    test('an error in the callback reaches the test and nothing is saved', async () => {
      const agent = request.agent(app.getHttpServer());
      await sessionTransaction(agent, (session) => session.set('userId', 1));
      const failure = sessionTransaction(agent, (session) => {
        session.set('userId', 2);
        throw new Error('changed my mind');
      });
      await expect(failure).rejects.toThrow('changed my mind');
      await agent.get('/me').expect(200, { userId: 1 });
    });

    test('an asynchronous callback is awaited before the save', async () => {
      const agent = request.agent(app.getHttpServer());
      await sessionTransaction(agent, async (session) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        session.set('userId', 5);
      });
      await agent.get('/me').expect(200, { userId: 5 });
    });

    test('the application form, for clients that keep no cookies: it returns the Cookie header to send, from a given one', async () => {
      const first = await sessionTransaction(app, (session) => session.set('userId', 3));
      expect(cookieValue(first)).toBeDefined();
      await request(app.getHttpServer()).get('/me').set('Cookie', first).expect(200, { userId: 3 });

      // Starting from the client's cookies: the session they point at, the other cookies kept byte for byte.
      let seen: unknown;
      const next = await sessionTransaction(
        app,
        (session) => {
          seen = session.get('userId');
          session.set('userId', 4);
        },
        { cookie: `theme=dark%2Cwide; ${first}` },
      );
      expect(seen).toBe(3);
      expect(next.startsWith('theme=dark%2Cwide; session=')).toBe(true);
      await request(app.getHttpServer()).get('/me').set('Cookie', next).expect(200, { userId: 4 });
    });

    if (platform === 'fastify') {
      test('Fastify’s inject(): pass the Cookie header sessionTransaction(app) returns', async () => {
        const fastify = app as unknown as { inject(options: object): Promise<{ statusCode: number; json(): unknown }> };
        const cookie = await sessionTransaction(app, (session) => session.set('userId', 99));
        const response = await fastify.inject({ method: 'GET', url: '/me', headers: { cookie } });
        expect(response.statusCode).toBe(200);
        expect(response.json()).toEqual({ userId: 99 });
      });
    }
  });

  describe('configuration', () => {
    let app: INestApplication | undefined;
    afterEach(() => app?.close());

    test('signed cookies without a secret key: an error like Flask’s, "Session backend did not open a session"', async () => {
      app = await createApp({ imports: [SessionModule.forRoot()], controllers: [AccountController] }, false, platform);
      const agent = request.agent(app.getHttpServer());
      const failure = sessionTransaction(agent, () => undefined);
      await expect(failure).rejects.toThrow(SessionError);
      await expect(sessionTransaction(agent, () => undefined)).rejects.toThrow(
        'Session backend did not open a session. Check the configuration: signed-cookie sessions need a secret key, SessionModule.forRoot({ secretKey }).',
      );
    });

    test('request(server), which keeps no cookies, is refused with a message that says what to pass', async () => {
      app = await createApp({ imports: [SessionModule.forRoot({ secretKey: 'k' })], controllers: [AccountController] }, false, platform);
      await expect(sessionTransaction(request(app.getHttpServer()) as never, () => undefined)).rejects.toThrow(
        'sessionTransaction() needs the application, its HTTP server, or a supertest agent made from it: request.agent(app.getHttpServer())',
      );
    });

    test('an application without SessionModule: the error says so', async () => {
      app = await createApp({ controllers: [] }, false, platform);
      await expect(sessionTransaction(request.agent(app.getHttpServer()), () => undefined)).rejects.toThrow(
        'sessionTransaction() found no SessionModule on this HTTP server',
      );
    });

    test('a Secure cookie, which supertest’s plain-HTTP agent would never send: the error says why', async () => {
      app = await createApp({ imports: [SessionModule.forRoot({ secretKey: 'k', cookie: { secure: true } })], controllers: [AccountController] }, false, platform);
      await expect(sessionTransaction(request.agent(app.getHttpServer()), (session) => session.set('userId', 1))).rejects.toThrow(
        /the agent would not send the session cookie it was given to http:\/\/127\.0\.0\.1\/ \(Set-Cookie: session=[^;]+; Secure; HttpOnly; Path=\/\)\. Check the cookie options domain, secure and path\./,
      );
    });

    test('an application root: the session cookie’s path is where the transaction opens and where the agent sends it', async () => {
      @Controller('app')
      class RootedController extends AccountController {}
      app = await createApp({ imports: [SessionModule.forRoot({ secretKey: 'k', applicationRoot: '/app' })], controllers: [RootedController] }, false, platform);
      const agent = request.agent(app.getHttpServer());
      await agent.get('/app/count').expect(200, { count: 1 });
      let seen: unknown;
      await sessionTransaction(agent, (session) => {
        seen = session.get('count');
        session.set('userId', 8);
      });
      expect(seen).toBe(1);
      await agent.get('/app/me').expect(200, { userId: 8 });
    });
  });
});
