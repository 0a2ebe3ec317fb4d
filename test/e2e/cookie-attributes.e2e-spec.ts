/**
 * Cookie attributes returned at run time by overridden getters are checked
 * like the options are at bootstrap: a value that would break the Set-Cookie
 * header never reaches it.
 */
import { Controller, Get, Injectable, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { SecureCookieSessionInterface, Session, SessionModule, type SessionApp, type SessionMixin } from '../../lib/index.js';
import { PLATFORMS, RecordingLogger, cookiePair, createApp, sessionCookie, setCookies, type Platform } from '../support/apps.js';

type HeaderRequest = { headers: Record<string, string | string[] | undefined> };
const header = (request: unknown, name: string) => (request as HeaderRequest | undefined)?.headers[name] as string | undefined;

/** Takes each attribute from a request header, as a multi-tenant app might take the domain from Host. */
@Injectable()
class FromHeaders extends SecureCookieSessionInterface {
  override getCookieDomain(app: SessionApp, request?: unknown) {
    return header(request, 'x-domain') ?? super.getCookieDomain(app);
  }
  override getCookieName(app: SessionApp, request?: unknown) {
    return header(request, 'x-name') ?? super.getCookieName(app);
  }
  override getCookiePath(app: SessionApp, request?: unknown) {
    return header(request, 'x-path') ?? super.getCookiePath(app);
  }
  override getCookieSameSite(app: SessionApp, request?: unknown) {
    return (header(request, 'x-samesite') as 'Lax' | undefined) ?? super.getCookieSameSite(app);
  }
}

@Controller()
class AttributeController {
  @Get('write')
  write(@Session() session: SessionMixin) {
    session.set('value', 1);
    return 'written';
  }

  @Get('remember')
  remember(@Session() session: SessionMixin) {
    session.permanent = true;
    session.set('value', 1);
    return 'remembered';
  }

  @Get('read')
  read(@Session() session: SessionMixin) {
    return { value: session.get('value') ?? null };
  }
}

describe.each(PLATFORMS)('on %s', (platform: Platform) => {
  let app: INestApplication;
  let logger: RecordingLogger;
  beforeEach(async () => {
    logger = new RecordingLogger();
    app = await createApp(
      { imports: [SessionModule.forRoot({ interface: FromHeaders, secretKey: 'k', permanentSessionLifetime: 3600 })], controllers: [AttributeController] },
      logger,
      platform,
    );
  });
  afterEach(() => app.close());

  test('valid values from the request are used', async () => {
    const response = await request(app.getHttpServer())
      .get('/write')
      .set('x-domain', 'shop.example.com')
      .set('x-path', '/shop')
      .set('x-samesite', 'strict')
      .expect(200);
    expect(sessionCookie(response)!.header).toMatch(/; Domain=shop\.example\.com; HttpOnly; Path=\/shop; SameSite=Strict$/);
  });

  test.each<[string, Record<string, string>, string]>([
    ['a domain with ";" (attribute injection)', { 'x-domain': 'example.com; Secure=0; Domain=evil.com' }, 'getCookieDomain()'],
    ['a domain with a space', { 'x-domain': 'exa mple.com' }, 'getCookieDomain()'],
    ['a cookie name with "="', { 'x-name': 'a=b' }, 'getCookieName()'],
    ['a SameSite that is not one', { 'x-samesite': 'Laxx' }, 'getCookieSameSite()'],
    ['a path that is not one', { 'x-path': 'relative' }, 'getCookiePath()'],
  ])('%s: never written; a write that needs the cookie is a 400, logged', async (_case, headers, getter) => {
    const response = await request(app.getHttpServer()).get('/write').set(headers);
    expect(response.status).toBe(400);
    expect(setCookies(response)).toEqual([]);
    expect(logger.messages('error').join('\n')).toContain(getter);
  });

  test('a path is percent-encoded and stays one attribute, as Werkzeug does', async () => {
    const response = await request(app.getHttpServer()).get('/write').set('x-path', '/a;b c').expect(200);
    expect(sessionCookie(response)!.header).toContain('; Path=/a%3Bb%20c');
    expect(sessionCookie(response)!.header.split(';')).toHaveLength(3);
  });

  test('a refresh that only re-sends the cookie is skipped, logged, and the request succeeds', async () => {
    const cookie = cookiePair(await request(app.getHttpServer()).get('/remember').expect(200));
    // A permanent session's cookie is re-sent on every request that reads it...
    const refreshed = await request(app.getHttpServer()).get('/read').set('Cookie', cookie).expect(200, { value: 1 });
    expect(sessionCookie(refreshed)!.expires).toBeInstanceOf(Date);
    // ...except when its attributes are not valid: nothing changed, so nothing is lost.
    const read = await request(app.getHttpServer()).get('/read').set('Cookie', cookie).set('x-domain', 'bad;domain').expect(200, { value: 1 });
    expect(setCookies(read)).toEqual([]);
    expect(logger.messages('error').join('\n')).toContain('getCookieDomain() returned "bad;domain"');
  });
});
