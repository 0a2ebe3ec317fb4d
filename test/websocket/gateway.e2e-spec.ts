/**
 * Sessions in WebSocket gateways (`@nestjs/websockets`), with the socket.io
 * and the ws adapters and their real clients, on the application's own HTTP
 * server (Express and Fastify, listening on 127.0.0.1). The session is the one
 * the handshake's Cookie header points at; each message opens it afresh.
 */
import {
  Controller,
  Get,
  Injectable,
  Query,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { IoAdapter } from '@nestjs/platform-socket.io';
import { WsAdapter } from '@nestjs/platform-ws';
import {
  MessageBody,
  SubscribeMessage,
  WebSocketGateway,
  WsException,
  type OnGatewayConnection,
  type WsResponse,
} from '@nestjs/websockets';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { interval, map, take, type Observable } from 'rxjs';
import request from 'supertest';
import {
  Session,
  SessionModule,
  SessionReadOnlyError,
  UseSession,
  getSession,
  type SessionMixin,
} from '../../lib/index.js';
import { PLATFORMS, RecordingLogger, cookiePair, type Platform } from '../support/apps.js';
import { CountingCookieInterface, CountingFileSystemInterface, type Counting } from '../support/counting-interfaces.js';
import { freePort } from '../support/loopback-servers.js';
import { ADAPTERS, ExceptionReply, connect, exceptionsReach, type AdapterName, type GatewayClient } from './clients.js';

/** Where a guard leaves the session it saw: on the message's payload, which the handler gets too. */
const SEEN = Symbol('session seen by the guard');

@Injectable()
class LoggedInGuard implements CanActivate {
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await getSession(context);
    const payload = context.switchToWs().getData();
    if (payload && typeof payload === 'object') payload[SEEN] = session;
    if (!session.has('user')) throw new WsException('log in first');
    return true;
  }
}

/** What a write that was refused tells the code that made it. */
function refusal(error: unknown) {
  return { name: (error as Error).constructor.name, readOnly: error instanceof SessionReadOnlyError, message: (error as Error).message };
}

@WebSocketGateway()
class SessionGateway implements OnGatewayConnection {
  /** What handleConnection saw, one entry per connection. */
  static connections: Array<{ user: unknown; writeRefused?: ReturnType<typeof refusal> }> = [];
  static connected?: () => void;

  async handleConnection(client: object): Promise<void> {
    // Nest calls handleConnection(client) itself, without parameter decorators: getSession(client) gives the handshake's session.
    const session = await getSession(client);
    const seen: (typeof SessionGateway.connections)[number] = { user: session.get('user') ?? null };
    try {
      session.set('connected', true);
    } catch (error) {
      seen.writeRefused = refusal(error);
    }
    SessionGateway.connections.push(seen);
    SessionGateway.connected?.();
  }

  @SubscribeMessage('whoami')
  whoami(@Session('user') user?: string): WsResponse {
    return { event: 'whoami', data: { user: user ?? null } };
  }

  @SubscribeMessage('everything')
  everything(@Session() session: SessionMixin): WsResponse {
    return { event: 'everything', data: session.toJSON() };
  }

  @SubscribeMessage('note')
  note(@MessageBody() body: { note: string }, @Session() session: SessionMixin): WsResponse {
    session.set('note', body.note);
    return { event: 'note', data: 'noted' };
  }

  /** A streamed reply that writes the session at every step. */
  @SubscribeMessage('steps')
  steps(@Session() session: SessionMixin): Observable<WsResponse> {
    return interval(5).pipe(
      take(3),
      map((step) => {
        session.set('steps', step + 1);
        return { event: step === 2 ? 'steps' : 'step', data: step + 1 };
      }),
    );
  }

  /** A write whose refusal the handler catches and reports. */
  @SubscribeMessage('try-write')
  tryWrite(@Session() session: SessionMixin): WsResponse {
    try {
      session.set('written', true);
      return { event: 'try-write', data: { written: true } };
    } catch (error) {
      return { event: 'try-write', data: refusal(error) };
    }
  }

  /** A write whose refusal the handler lets through, to Nest's exception filter. */
  @SubscribeMessage('write')
  write(@Session() session: SessionMixin): WsResponse {
    session.set('written', true);
    return { event: 'write', data: 'written' };
  }

  @UseGuards(LoggedInGuard)
  @SubscribeMessage('guarded')
  guarded(@MessageBody() payload: Record<symbol, unknown>, @Session() session: SessionMixin): WsResponse {
    return { event: 'guarded', data: { user: session.get('user'), sameSession: payload[SEEN] === session } };
  }

  /** A guard reads the session; the handler never declares it. */
  @UseSession()
  @UseGuards(LoggedInGuard)
  @SubscribeMessage('guard-only')
  guardOnly(): WsResponse {
    return { event: 'guard-only', data: 'let in' };
  }
}

@Controller()
class AccountController {
  @Get('login')
  login(@Query('user') user: string, @Session() session: SessionMixin) {
    session.set('user', user);
    session.set('since', 'login');
    return 'ok';
  }

  /** Forgets the user and keeps the rest: the record and its sid stay. */
  @Get('forget-user')
  forgetUser(@Session() session: SessionMixin) {
    session.delete('user');
    return 'ok';
  }

  @Get('logout')
  logout(@Session() session: SessionMixin) {
    session.clear();
    return 'ok';
  }

  @Get('read')
  read(@Session() session: SessionMixin) {
    const { _permanent, ...data } = session.toJSON() as Record<string, unknown>;
    return data;
  }
}


const SIGNED_REFUSAL =
  'This session is read-only: the session travels in its cookie, and a WebSocket message has no response to carry one: change the session in an HTTP request';
const NEW_SESSION_REFUSAL =
  'This session is read-only: this client has no stored session yet, and a WebSocket message has no response to set its cookie on: create the session in an HTTP request';
const CONNECTION_REFUSAL =
  'This session is read-only: nothing saves a session opened in handleConnection(): change it in a message handler with @Session()';

/** Builds the application on `platform` with the gateway on `adapter`, listening on 127.0.0.1 and a free port. */
async function startApp(
  platform: Platform,
  adapter: AdapterName,
  sessions: Counting,
  logger: RecordingLogger | false = false,
  gateways: unknown[] = [SessionGateway],
): Promise<{ app: INestApplication; url: string }> {
  const moduleRef = await Test.createTestingModule({
    imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'websocket secret' })],
    controllers: [AccountController],
    providers: gateways as never[],
  }).compile();
  let app: INestApplication;
  if (platform === 'express') {
    app = moduleRef.createNestApplication({ logger });
  } else {
    const { FastifyAdapter } = await import('@nestjs/platform-fastify');
    app = moduleRef.createNestApplication(new FastifyAdapter(), { logger });
  }
  app.useWebSocketAdapter(adapter === 'socket.io' ? new IoAdapter(app) : new WsAdapter(app));
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as { port: number };
  return { app, url: `http://127.0.0.1:${port}` };
}

let cacheRoot: string;
beforeAll(() => {
  cacheRoot = mkdtempSync(join(tmpdir(), 'nest-session-ws-'));
});
afterAll(() => rmSync(cacheRoot, { recursive: true, force: true }));

/** What Nest's exception filter sent for a failed message; on NestJS 11's ws adapter nothing arrives (see exceptionsReach). */
function expectExceptionReply(thrown: unknown, adapter: AdapterName, data: Record<string, unknown>) {
  if (!exceptionsReach(adapter)) {
    expect(String(thrown)).toMatch(/^Error: no reply to /);
    return;
  }
  expect(thrown).toBeInstanceOf(ExceptionReply);
  expect((thrown as ExceptionReply).data).toMatchObject(data);
}

describe.each(ADAPTERS)('%s adapter', (adapter) => {
  describe.each(PLATFORMS)('on %s', (platform) => {
    let app: INestApplication;
    let url: string;
    let sessions: Counting;
    let logger: RecordingLogger;
    const clients: GatewayClient[] = [];

    async function open(cookie?: string, transports?: Array<'polling' | 'websocket'>): Promise<GatewayClient> {
      const connected = new Promise<void>((resolve) => (SessionGateway.connected = resolve));
      const client = await connect(adapter, url, cookie, transports);
      clients.push(client);
      await connected; // handleConnection has run
      return client;
    }

    async function login(user = 'alice', cookie?: string): Promise<string> {
      const get = request(app.getHttpServer()).get(`/login?user=${user}`);
      if (cookie) get.set('Cookie', cookie);
      return cookiePair(await get.expect(200));
    }

    async function httpRead(cookie: string) {
      return (await request(app.getHttpServer()).get('/read').set('Cookie', cookie).expect(200)).body;
    }

    async function counted<T>(run: () => Promise<T>): Promise<{ result: T; opens: number; saves: number }> {
      const before = { opens: sessions.opens, saves: sessions.saves };
      const result = await run();
      return { result, opens: sessions.opens - before.opens, saves: sessions.saves - before.saves };
    }

    afterEach(async () => {
      clients.splice(0).forEach((client) => client.close());
      SessionGateway.connections = [];
      await app.close();
    });

    describe('with signed cookies', () => {
      beforeEach(async () => {
        sessions = new CountingCookieInterface();
        logger = new RecordingLogger();
        ({ app, url } = await startApp(platform, adapter, sessions, logger));
      });

      test('@Session() in a message handler reads the session of the handshake’s cookie', async () => {
        const anonymous = await open();
        expect(await anonymous.ask('whoami')).toEqual({ user: null });
        const client = await open(await login('alice'));
        expect(await client.ask('whoami')).toEqual({ user: 'alice' });
      });

      if (adapter === 'socket.io') {
        test.each([['polling, then upgrade', undefined], ['websocket only', ['websocket' as const]]])(
          'socket.io transports (%s) carry the handshake’s cookie',
          async (_name, transports) => {
            const client = await open(await login('carol'), transports);
            expect(await client.ask('whoami')).toEqual({ user: 'carol' });
          },
        );
      }

      test('handleConnection(client): getSession(client) gives the handshake’s session, read-only', async () => {
        await open(await login('alice'));
        expect(SessionGateway.connections).toEqual([{ user: 'alice', writeRefused: { name: 'SessionReadOnlyError', readOnly: true, message: CONNECTION_REFUSAL } }]);
      });

      test('a write in a message handler is refused with SessionReadOnlyError, which says why', async () => {
        const cookie = await login('alice');
        const client = await open(cookie);
        // The handler that catches the error reads the reason.
        expect(await client.ask('try-write')).toEqual({ name: 'SessionReadOnlyError', readOnly: true, message: SIGNED_REFUSAL });
        // A handler that lets it through: the client gets Nest's generic error, the log the reason, once.
        const thrown = await client.ask('write').catch((error: unknown) => error);
        expectExceptionReply(thrown, adapter, { status: 'error', message: 'Internal server error' });
        const logged = logger.messages('error').filter((line) => line.includes('read-only'));
        expect(logged).toEqual([SIGNED_REFUSAL]);
        // Nothing changed.
        expect(await httpRead(cookie)).toEqual({ user: 'alice', since: 'login' });
      });

      test('a guard with getSession(context) and the handler share the message’s session: one open per message', async () => {
        const refused = await open();
        const error = await refused.ask('guarded', {}).catch((e: unknown) => e);
        expectExceptionReply(error, adapter, { status: 'error', message: 'log in first' });

        const client = await open(await login('alice'));
        const { result, opens } = await counted(() => client.ask('guarded', {}));
        expect(result).toEqual({ user: 'alice', sameSession: true });
        expect(opens).toBe(1);
      });

      test('a guard alone (@UseSession()) reads the session, one open per message', async () => {
        const client = await open(await login('alice'));
        const { result, opens } = await counted(() => client.ask('guard-only', {}));
        expect(result).toBe('let in');
        expect(opens).toBe(1);
      });

      test('each message opens the session afresh from the handshake’s cookie', async () => {
        const client = await open(await login('alice'));
        const { opens } = await counted(async () => {
          await client.ask('whoami');
          await client.ask('whoami');
        });
        expect(opens).toBe(2);
      });
    });

    describe('with a server-side store (filesystem)', () => {
      beforeEach(async () => {
        sessions = new CountingFileSystemInterface({ cacheDir: mkdtempSync(join(cacheRoot, 'sessions-')) });
        logger = new RecordingLogger();
        ({ app, url } = await startApp(platform, adapter, sessions, logger));
      });

      test('a message handler’s write is stored: HTTP requests see it; one open and one save per message', async () => {
        const cookie = await login('alice');
        const client = await open(cookie);
        const { result, opens, saves } = await counted(() => client.ask('note', { note: 'over the socket' }));
        expect(result).toBe('noted');
        expect({ opens, saves }).toEqual({ opens: 1, saves: 1 });
        expect(await httpRead(cookie)).toEqual({ user: 'alice', since: 'login', note: 'over the socket' });
      });

      test('a streamed reply: its writes are stored by the time the client has its last reply', async () => {
        const cookie = await login('alice');
        const client = await open(cookie);
        expect(await client.ask('steps')).toBe(3);
        expect(await httpRead(cookie)).toEqual({ user: 'alice', since: 'login', steps: 3 });
      });

      test('each message sees what HTTP requests stored meanwhile, a logout included', async () => {
        const cookie = await login('alice');
        const client = await open(cookie);
        expect(await client.ask('whoami')).toEqual({ user: 'alice' });
        await login('bob', cookie); // the same sid, rewritten over HTTP
        expect(await client.ask('whoami')).toEqual({ user: 'bob' });
        await request(app.getHttpServer()).get('/logout').set('Cookie', cookie).expect(200);
        expect(await client.ask('whoami')).toEqual({ user: null });
        // The record is gone: the session is new, and a new session cannot be created over a WebSocket.
        expect(await client.ask('try-write')).toEqual({ name: 'SessionReadOnlyError', readOnly: true, message: NEW_SESSION_REFUSAL });
      });

      test('a client without a session cookie gets a new session, read-only, with a message that says why', async () => {
        const client = await open();
        expect(await client.ask('whoami')).toEqual({ user: null });
        expect(await client.ask('try-write')).toEqual({ name: 'SessionReadOnlyError', readOnly: true, message: NEW_SESSION_REFUSAL });
        const thrown = await client.ask('write').catch((error: unknown) => error);
        expectExceptionReply(thrown, adapter, { status: 'error', message: 'Internal server error' });
        expect(logger.messages('error').filter((line) => line.includes('read-only'))).toEqual([NEW_SESSION_REFUSAL]);
      });

      test('handleConnection(client): the handshake’s session, read-only even when it is stored', async () => {
        await open(await login('alice'));
        expect(SessionGateway.connections).toEqual([{ user: 'alice', writeRefused: { name: 'SessionReadOnlyError', readOnly: true, message: CONNECTION_REFUSAL } }]);
      });

      test('a guard and the handler share the message’s session: one open, one save, the write stored', async () => {
        const cookie = await login('alice');
        const client = await open(cookie);
        const { result, opens, saves } = await counted(() => client.ask('guarded', {}));
        expect(result).toEqual({ user: 'alice', sameSession: true });
        expect({ opens, saves }).toEqual({ opens: 1, saves: 1 });
      });

      test('a guard that refuses a message leaves nothing behind: the next message opens afresh', async () => {
        const cookie = await login('alice');
        const client = await open(cookie);
        await request(app.getHttpServer()).get('/forget-user').set('Cookie', cookie).expect(200);
        // No payload: the message has no object of its own to keep its session by.
        const refused = await client.ask('guard-only').catch((error: unknown) => error);
        expectExceptionReply(refused, adapter, { message: 'log in first' });
        await login('bob', cookie); // the same record, rewritten over HTTP
        expect(await client.ask('guard-only')).toBe('let in');
        expect(await client.ask('whoami')).toEqual({ user: 'bob' });
      });
    });
  });
});

const FOREIGN_SERVER_ERROR =
  "No session is available (this WebSocket client's handshake did not come through the application's HTTP server; " +
  'a gateway on a port of its own (@WebSocketGateway(port)) cannot reach the sessions: declare it without a port, ' +
  'to share the server the session cookie is set on). Potential solutions: import SessionModule.forRoot() once in the root module ' +
  'of the application; sessions work in HTTP handlers (Express and Fastify), GraphQL resolvers and WebSocket gateways on the ' +
  "application's own server.";

describe.each(ADAPTERS)('a %s gateway on a port of its own', (adapter) => {
  test('what works and what fails, and that each failure says why in the log', async () => {
    const port = await freePort();
    const connections: unknown[] = [];
    let connected!: () => void;
    const connectedOnce = new Promise<void>((resolve) => (connected = resolve));

    @WebSocketGateway(port)
    class OwnPortGateway implements OnGatewayConnection {
      async handleConnection(client: object) {
        connections.push(await getSession(client).then((session) => session.get('user'), (error: Error) => error.message));
        connected();
      }
      @SubscribeMessage('whoami')
      whoami(@Session('user') user?: string): WsResponse {
        return { event: 'whoami', data: { user: user ?? null } };
      }
      @UseGuards(LoggedInGuard)
      @SubscribeMessage('guarded')
      guarded(): WsResponse {
        return { event: 'guarded', data: 'let in' };
      }
    }

    const logger = new RecordingLogger();
    const { app } = await startApp('express', adapter, new CountingCookieInterface(), logger, [OwnPortGateway]);
    try {
      const cookie = cookiePair(await request(app.getHttpServer()).get('/login?user=alice').expect(200));
      const client = await connect(adapter, `http://127.0.0.1:${port}`, cookie);
      try {
        await connectedOnce;
        const errorsFor = async (event: string) => {
          const before = logger.messages('error').length;
          const reply = await client.ask(event, {}).catch((error: unknown) => error);
          // On NestJS 11's ws adapter an exception never reaches the client: read its absence as Nest 12's reply.
          const unheard = !exceptionsReach(adapter) && String(reply).startsWith('Error: no reply to ');
          return { reply: reply instanceof ExceptionReply ? reply.data.message : unheard ? 'Internal server error' : reply, logged: logger.messages('error').slice(before) };
        };
        // getSession(client) in handleConnection and getSession(context) in a guard find no application: a clear error, logged.
        expect(connections).toEqual([FOREIGN_SERVER_ERROR]);
        expect(await errorsFor('guarded')).toEqual({ reply: 'Internal server error', logged: [FOREIGN_SERVER_ERROR] });
        if (adapter === 'socket.io') {
          // socket.io keeps the handshake request and the interceptor has the manager from DI: @Session() reads the cookie's session.
          expect(await errorsFor('whoami')).toEqual({ reply: { user: 'alice' }, logged: [] });
        } else {
          // ws keeps no handshake request, and this one never passed the application's server.
          expect(await errorsFor('whoami')).toEqual({ reply: 'Internal server error', logged: [FOREIGN_SERVER_ERROR] });
        }
      } finally {
        client.close();
      }
    } finally {
      await app.close();
    }
  });
});

test('@Session() on handleConnection fails where the gateway is declared, saying what to use instead', () => {
  expect(() => {
    @WebSocketGateway()
    class WrongGateway implements OnGatewayConnection {
      handleConnection(@Session() _session: SessionMixin) {}
    }
    return WrongGateway;
  }).toThrow(
    '@Session() cannot be used in handleConnection(): Nest calls it directly, without parameter decorators. ' +
      'Use `const session = await getSession(client)` there (read-only: nothing saves it), or @Session() in a @SubscribeMessage() handler.',
  );
});
