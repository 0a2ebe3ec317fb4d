/**
 * A custom SessionInterface written against the base class's helpers (the
 * platform seam) works unchanged on Express and on Fastify: the README's
 * example, sessions kept in a user store and found by a request header, with
 * an injected dependency.
 */
import { Controller, Get, Injectable, Module, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import {
  SessionInterface,
  SessionMixin,
  Session,
  SessionModule,
  type CookieReadableRequest,
  type HeaderWritableResponse,
  type SessionApp,
} from '../../lib/index.js';
import { PLATFORMS, createApp, setCookies, type Platform } from '../support/apps.js';

@Injectable()
class UserStore {
  readonly sessions = new Map<string, Record<string, unknown>>();
  async load(userId: string) {
    return this.sessions.get(userId) ?? {};
  }
  async save(userId: string, data: Record<string, unknown>) {
    this.sessions.set(userId, data);
  }
}

@Module({ providers: [UserStore], exports: [UserStore] })
class UserStoreModule {}

class UserSession extends SessionMixin {
  constructor(
    readonly userId: string,
    data?: Record<string, unknown>,
  ) {
    super(data);
  }
}

@Injectable()
class HeaderSessionInterface extends SessionInterface {
  constructor(private readonly users: UserStore) {
    super();
  }

  async openSession(_app: SessionApp, request: CookieReadableRequest) {
    const userId = this.getRequestHeader(request, 'X-User-ID');
    if (!userId) return null; // a read-only NullSession
    return new UserSession(userId, await this.users.load(userId));
  }

  async saveSession(_app: SessionApp, session: SessionMixin, response: HeaderWritableResponse) {
    if (session.accessed) this.addVaryHeader(response, 'X-User-ID');
    if (!session.modified) return;
    this.setResponseHeader(response, 'X-Session-Saved', 'yes');
    await this.users.save((session as UserSession).userId, session.toJSON());
  }
}

@Controller()
class VisitsController {
  @Get('visit')
  visit(@Session() session: SessionMixin<{ visits: number }>) {
    const visits = (session.get('visits') ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }

  @Get('peek')
  peek(@Session('visits') visits?: number) {
    return { visits: visits ?? 0 };
  }
}

describe.each(PLATFORMS)('on %s', (platform: Platform) => {
  let app: INestApplication;
  beforeEach(async () => {
    app = await createApp(
      { imports: [SessionModule.forRoot({ interface: HeaderSessionInterface, imports: [UserStoreModule] })], controllers: [VisitsController] },
      false,
      platform,
    );
  });
  afterEach(() => app.close());

  test('sessions are found by the header, stored in the injected store, and vary on the header', async () => {
    const first = await request(app.getHttpServer()).get('/visit').set('X-User-ID', 'u1').expect(200, { visits: 1 });
    expect(first.headers['x-session-saved']).toBe('yes');
    expect(first.headers.vary).toBe('X-User-ID');
    expect(setCookies(first)).toEqual([]);
    await request(app.getHttpServer()).get('/visit').set('X-User-ID', 'u1').expect(200, { visits: 2 });
    const peek = await request(app.getHttpServer()).get('/peek').set('X-User-ID', 'u1').expect(200, { visits: 2 });
    expect(peek.headers['x-session-saved']).toBeUndefined();
    expect(app.get(UserStore).sessions.get('u1')).toEqual({ visits: 2 });
  });

  test('no header: a read-only null session, and a write is a clear 500', async () => {
    await request(app.getHttpServer()).get('/peek').expect(200, { visits: 0 });
    await request(app.getHttpServer()).get('/visit').expect(500);
  });
});
