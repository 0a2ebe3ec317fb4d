/**
 * Flask's own session tests (tests/test_basic.py), translated: the same
 * requests, the same expected cookies and headers.
 */
import { Controller, Get, Header, Injectable, type INestApplication } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import {
  Markup,
  SecureCookieSessionInterface,
  Session,
  SessionMixin,
  SessionModule,
  TaggedJsonSerializer,
  UrlSafeTimedSerializer,
  type SessionApp,
  type SessionModuleOptions,
} from '../../lib/index.js';
import { RecordingLogger, cookiePair, createApp, sessionCookie, setCookies, PLATFORMS, type Platform } from '../support/apps.js';

@Controller()
class FlaskTestController {
  @Get('set')
  set(@Session() session: SessionMixin) {
    session.set('value', 42);
    return '';
  }

  @Get('get')
  get(@Session() session: SessionMixin) {
    return { value: session.get('value') ?? null };
  }

  @Get('clear')
  clear(@Session() session: SessionMixin) {
    session.clear();
    return '';
  }

  @Get('pop')
  pop(@Session() session: SessionMixin) {
    session.pop('value');
    return '';
  }

  @Get('permanent')
  permanent(@Session() session: SessionMixin) {
    session.permanent = true;
    session.set('value', 1);
    return '';
  }

  @Get('read-only')
  readOnly(@Session() session: SessionMixin) {
    return { size: session.size };
  }

  @Get('untouched')
  untouched() {
    return 'no session here';
  }

  @Get('setdefault')
  setdefault(@Session() session: SessionMixin) {
    session.setDefault('value', 'default');
    return '';
  }

  @Get('vary-cookie-header-set')
  @Header('Vary', 'Cookie')
  varyCookieSet(@Session() session: SessionMixin) {
    session.get('value');
    return '';
  }

  @Get('vary-header-set')
  @Header('Vary', 'Accept-Encoding, Accept-Language')
  varyHeaderSet(@Session() session: SessionMixin) {
    session.get('value');
    return '';
  }

  @Get('types/set')
  setTypes(@Session() session: SessionMixin) {
    session.update({
      number: 42,
      text: 'héllo ✓',
      nested: { a: { b: [1, 2, { c: 'd' }] } },
      date: new Date(Date.UTC(2020, 0, 2, 3, 4, 5)),
      bytes: Buffer.from([0, 255, 104, 105]),
      escape: { ' t': 'a' },
      markup: new Markup('<b>bold</b>'),
      none: null,
    });
    return '';
  }

  @Get('types/get')
  getTypes(@Session() session: SessionMixin) {
    const date = session.get('date') as Date;
    const bytes = session.get('bytes') as Buffer;
    return {
      ...session.toJSON(),
      date: date instanceof Date ? date.toISOString() : 'not a Date',
      bytes: Buffer.isBuffer(bytes) ? [...bytes] : 'not a Buffer',
      markup: session.get('markup') instanceof Markup ? String(session.get('markup')) : 'not Markup',
    };
  }
}

describe.each(PLATFORMS)('on %s', (platform: Platform) => {
  const createAppOn = (metadata: Parameters<typeof createApp>[0], logger: Parameters<typeof createApp>[1] = false) => createApp(metadata, logger, platform);

  async function flaskApp(options: SessionModuleOptions, logger: RecordingLogger | false = false): Promise<INestApplication> {
    return createAppOn({ imports: [SessionModule.forRoot(options)], controllers: [FlaskTestController] }, logger);
  }

  const KEY = 'test key';
  let app: INestApplication;
  afterEach(async () => app?.close());

  test('a value set in one request is read in the next', async () => {
    app = await flaskApp({ secretKey: KEY });
    const set = await request(app.getHttpServer()).get('/set').expect(200);
    const got = await request(app.getHttpServer()).get('/get').set('Cookie', cookiePair(set)).expect(200);
    expect(got.body).toEqual({ value: 42 });
  });

  test('the default cookie is exactly what Flask writes', async () => {
    app = await flaskApp({ secretKey: KEY });
    const set = await request(app.getHttpServer()).get('/set');
    expect(sessionCookie(set)!.header).toMatch(/^session=eyJ2YWx1ZSI6NDJ9\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27}; HttpOnly; Path=\/$/);
  });

  test('the cookie path is applicationRoot (test_session_using_application_root)', async () => {
    app = await flaskApp({ secretKey: KEY, applicationRoot: '/bar' });
    expect(sessionCookie(await request(app.getHttpServer()).get('/set'))!.path).toBe('/bar');
  });

  test('cookie.path wins over applicationRoot (test_session_path)', async () => {
    app = await flaskApp({ secretKey: KEY, applicationRoot: '/bar', cookie: { path: '/foo' } });
    expect(sessionCookie(await request(app.getHttpServer()).get('/set'))!.path).toBe('/foo');
  });

  test('every cookie attribute, on set and on delete (test_session_using_session_settings)', async () => {
    app = await flaskApp({
      secretKey: KEY,
      cookie: { domain: '.example.com', path: '/', httpOnly: false, secure: true, sameSite: 'Lax', partitioned: true },
    });
    const set = await request(app.getHttpServer()).get('/set');
    const header = sessionCookie(set)!.header;
    expect(header).toMatch(/^session=[^;]+; Domain=example\.com; Secure; Path=\/; SameSite=Lax; Partitioned$/);
    const deleted = await request(app.getHttpServer()).get('/clear').set('Cookie', cookiePair(set));
    expect(sessionCookie(deleted)!.header).toBe(
      'session=; Domain=example.com; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Secure; Path=/; SameSite=Lax; Partitioned',
    );
  });

  test('Partitioned implies Secure', async () => {
    app = await flaskApp({ secretKey: KEY, cookie: { partitioned: true } });
    expect(sessionCookie(await request(app.getHttpServer()).get('/set'))!.header).toMatch(/; Secure; HttpOnly; Path=\/; Partitioned$/);
  });

  test.each([
    ['Strict', 'Strict'],
    ['lax', 'Lax'],
    ['NONE', 'None'],
  ])('SameSite %s is written as %s (test_session_using_samesite_attribute)', async (given, written) => {
    app = await flaskApp({ secretKey: KEY, cookie: { sameSite: given as 'Lax' } });
    expect(sessionCookie(await request(app.getHttpServer()).get('/set'))!.header).toContain(`; SameSite=${written}`);
  });

  test('no SameSite attribute by default', async () => {
    app = await flaskApp({ secretKey: KEY });
    expect(sessionCookie(await request(app.getHttpServer()).get('/set'))!.header).not.toContain('SameSite');
  });

  test('an invalid SameSite fails at bootstrap, naming the option', async () => {
    await expect(flaskApp({ secretKey: KEY, cookie: { sameSite: 'invalid' as 'Lax' } })).rejects.toThrow('"cookie.sameSite"');
  });

  test('without a secret key, reads work and writes fail with the no-secret-key error (test_missing_session)', async () => {
    const logger = new RecordingLogger();
    app = await flaskApp({}, logger);
    await request(app.getHttpServer()).get('/get').expect(200, { value: null });
    const write = await request(app.getHttpServer()).get('/set').expect(500);
    expect(setCookies(write)).toEqual([]);
    expect(logger.messages('error').join('\n')).toContain('no secret key was set');
    expect(logger.messages('warn').join('\n')).toContain('No secretKey is set');
  });

  test('secretKeyFallbacks: a cookie of an old key opens, and the new key signs (test_session_secret_key_fallbacks)', async () => {
    app = await flaskApp({ secretKey: 'old' });
    const old = await request(app.getHttpServer()).get('/set');
    await app.close();
    app = await flaskApp({ secretKey: 'new', secretKeyFallbacks: ['older', 'old'] });
    const opened = await request(app.getHttpServer()).get('/permanent').set('Cookie', cookiePair(old));
    const resigned = cookiePair(opened);
    await app.close();
    app = await flaskApp({ secretKey: 'new' });
    const got = await request(app.getHttpServer()).get('/get').set('Cookie', resigned);
    expect(got.body).toEqual({ value: 1 });
    await app.close();
    app = await flaskApp({ secretKey: 'unrelated', secretKeyFallbacks: [] });
    expect((await request(app.getHttpServer()).get('/get').set('Cookie', cookiePair(old))).body).toEqual({ value: null });
  });

  test('a permanent session expires after permanentSessionLifetime; a browser session has no Expires (test_session_expiration)', async () => {
    app = await flaskApp({ secretKey: KEY, permanentSessionLifetime: 3600 });
    const before = Date.now();
    const permanent = sessionCookie(await request(app.getHttpServer()).get('/permanent'))!;
    expect(permanent.expires!.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 3600_000);
    expect(permanent.expires!.getTime()).toBeLessThanOrEqual(Date.now() + 3600_000);
    expect(permanent.header).not.toContain('Max-Age');
    const browser = sessionCookie(await request(app.getHttpServer()).get('/set'))!;
    expect(browser.expires).toBeUndefined();
  });

  test('a cookie older than the lifetime opens as an empty session, even for a browser session', async () => {
    app = await flaskApp({ secretKey: KEY, permanentSessionLifetime: 60 });
    const past = new UrlSafeTimedSerializer(KEY, {
      salt: 'cookie-session',
      serializer: new TaggedJsonSerializer(),
      now: () => Math.floor(Date.now() / 1000) - 61,
    });
    const got = await request(app.getHttpServer()).get('/get').set('Cookie', `session=${past.dumps({ value: 1 })}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual({ value: null });
    expect(setCookies(got)).toEqual([]);
  });

  test('a value set late in the pipeline is saved (test_session_stored_last)', async () => {
    const { LateWriterModule, LateController } = await import('../support/late-writer.js');
    app = await createAppOn({
      imports: [SessionModule.forRoot({ secretKey: KEY }), LateWriterModule],
      controllers: [LateController, FlaskTestController],
    });
    const first = await request(app.getHttpServer()).get('/late');
    expect(first.text).toBe('handler');
    const got = await request(app.getHttpServer()).get('/get').set('Cookie', cookiePair(first));
    expect(got.body).toEqual({ value: 'set after the handler' });
  });

  test('special types round trip (test_session_special_types)', async () => {
    app = await flaskApp({ secretKey: KEY });
    const set = await request(app.getHttpServer()).get('/types/set');
    const got = await request(app.getHttpServer()).get('/types/get').set('Cookie', cookiePair(set));
    expect(got.body).toEqual({
      number: 42,
      text: 'héllo ✓',
      nested: { a: { b: [1, 2, { c: 'd' }] } },
      date: '2020-01-02T03:04:05.000Z',
      bytes: [0, 255, 104, 105],
      escape: { ' t': 'a' },
      markup: '<b>bold</b>',
      none: null,
    });
  });

  describe('when Set-Cookie is sent (test_session_cookie_setting)', () => {
    it.each`
      permanent | refresh  | route          | sent
      ${true}   | ${true}  | ${'read-only'} | ${true}
      ${true}   | ${true}  | ${'set'}       | ${true}
      ${true}   | ${false} | ${'read-only'} | ${false}
      ${true}   | ${false} | ${'set'}       | ${true}
      ${false}  | ${true}  | ${'read-only'} | ${false}
      ${false}  | ${true}  | ${'set'}       | ${true}
      ${false}  | ${false} | ${'read-only'} | ${false}
      ${false}  | ${false} | ${'set'}       | ${true}
    `('permanent=$permanent refreshEachRequest=$refresh /$route: $sent', async ({ permanent, refresh, route, sent }) => {
      app = await flaskApp({ secretKey: KEY, refreshEachRequest: refresh });
      const first = await request(app.getHttpServer()).get(permanent ? '/permanent' : '/set');
      const second = await request(app.getHttpServer()).get(`/${route}`).set('Cookie', cookiePair(first));
      expect(sessionCookie(second) !== undefined).toBe(sent);
    });
  });

  describe('Vary: Cookie (test_session_vary_cookie)', () => {
    beforeEach(async () => {
      app = await flaskApp({ secretKey: KEY });
    });

    it.each(['set', 'get', 'read-only', 'setdefault', 'clear', 'pop'])('is added when /%s uses the session', async (route) => {
      const response = await request(app.getHttpServer()).get(`/${route}`);
      expect(response.headers.vary).toBe('Cookie');
    });

    it('is not added when the session is not used', async () => {
      const response = await request(app.getHttpServer()).get('/untouched').set('Cookie', 'session=anything');
      expect(response.headers.vary).toBeUndefined();
      expect(setCookies(response)).toEqual([]);
    });

    it('is not repeated when the handler already set it', async () => {
      const response = await request(app.getHttpServer()).get('/vary-cookie-header-set');
      expect(response.headers.vary).toBe('Cookie');
    });

    it('is merged into an existing Vary header', async () => {
      const response = await request(app.getHttpServer()).get('/vary-header-set');
      expect(response.headers.vary).toBe('Accept-Encoding, Accept-Language, Cookie');
    });
  });

  test('clearing an already empty session still sends the delete, as Flask does', async () => {
    app = await flaskApp({ secretKey: KEY });
    const response = await request(app.getHttpServer()).get('/clear');
    expect(sessionCookie(response)!.header).toBe('session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; Path=/');
  });

  test('a session that becomes empty deletes its cookie', async () => {
    app = await flaskApp({ secretKey: KEY });
    const set = await request(app.getHttpServer()).get('/set');
    const popped = await request(app.getHttpServer()).get('/pop').set('Cookie', cookiePair(set));
    expect(sessionCookie(popped)!.header).toContain('Max-Age=0');
  });

  test('a cookie name chosen per request (test_session_dynamic_cookie_name)', async () => {
    @Injectable()
    class PathCookieNameInterface extends SecureCookieSessionInterface {
      override getCookieName(app: SessionApp, request?: { url?: string }): string {
        return request?.url?.startsWith('/types') ? 'dynamic_cookie_name' : super.getCookieName(app);
      }
    }
    app = await createAppOn({
      imports: [SessionModule.forRoot({ interface: PathCookieNameInterface, secretKey: KEY })],
      controllers: [FlaskTestController],
    });
    const dynamic = await request(app.getHttpServer()).get('/types/set');
    expect(sessionCookie(dynamic, 'dynamic_cookie_name')).toBeDefined();
    expect(sessionCookie(dynamic)).toBeUndefined();
    const got = await request(app.getHttpServer()).get('/types/get').set('Cookie', cookiePair(dynamic, 'dynamic_cookie_name'));
    expect(got.body.number).toBe(42);
    const plain = await request(app.getHttpServer()).get('/set');
    expect(sessionCookie(plain)).toBeDefined();
  });

  describe('cookie size', () => {
    @Controller()
    class BigController {
      @Get('big')
      big(@Session() session: SessionMixin) {
        // Random bytes do not compress, so the cookie really is large.
        session.set('blob', randomBytes(4000));
        return '';
      }
    }

    it("logs Werkzeug's warning for a cookie over maxCookieSize and still sets it", async () => {
      const logger = new RecordingLogger();
      app = await createAppOn({ imports: [SessionModule.forRoot({ secretKey: KEY })], controllers: [BigController] }, logger);
      const response = await request(app.getHttpServer()).get('/big').expect(200);
      expect(sessionCookie(response)).toBeDefined();
      expect(logger.messages('warn').join('\n')).toMatch(
        /^The 'session' cookie is too large: the value was \d+ bytes but the header required 26 extra bytes\. The final size was \d+ bytes but the limit is 4093 bytes\. Browsers may silently ignore cookies larger than this\.$/m,
      );
    });

    it('does not check with maxCookieSize 0', async () => {
      const logger = new RecordingLogger();
      app = await createAppOn({ imports: [SessionModule.forRoot({ secretKey: KEY, maxCookieSize: 0 })], controllers: [BigController] }, logger);
      await request(app.getHttpServer()).get('/big').expect(200);
      expect(logger.messages('warn').filter((m) => m.includes('too large'))).toEqual([]);
    });
  });
});
