/**
 * Byte compatibility with a real Flask app (Debian's python3-flask): the same
 * secret opens the other side's cookies, with the same values.
 */
import { Controller, Get, Injectable, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import {
  Markup,
  SecureCookieSessionInterface,
  Session,
  SessionModule,
  UrlSafeTimedSerializer,
  type SessionApp,
  type SessionMixin,
  type SessionModuleOptions,
} from '../../lib/index.js';
import { cookiePair, createApp, PLATFORMS, type Platform } from '../support/apps.js';
import { describeValue, flask } from '../support/flask.js';

type Made = { cookie: string; header: string };
type Read = { session: Record<string, unknown> };

@Controller()
class CompatController {
  @Get('describe')
  describe(@Session() session: SessionMixin) {
    return { session: describeValue(session.toJSON()), permanent: session.permanent };
  }

  @Get('types')
  types(@Session() session: SessionMixin) {
    session.update({
      string: 'h\u00e9llo \u2713',
      int: 42,
      float: 1.5,
      bool: true,
      none: null,
      nested: { a: { b: [1, 2, { c: 'd' }] } },
      list: [1, 'two', 3.5],
      date: new Date(Date.UTC(2020, 0, 2, 3, 4, 5)),
      bytes: Buffer.from('\x00\xffhello', 'latin1'),
      escape: { ' t': 'a' },
      markup: new Markup('<b>bold</b>'),
    });
    session.permanent = true;
    return '';
  }

  @Get('simple')
  simple(@Session() session: SessionMixin) {
    session.set('user_id', 7);
    return '';
  }
}

describe.each(PLATFORMS)('on %s', (platform: Platform) => {
  const createAppOn = (metadata: Parameters<typeof createApp>[0], logger: Parameters<typeof createApp>[1] = false) => createApp(metadata, logger, platform);

  let app: INestApplication;
  afterEach(() => app?.close());

  async function nest(options: SessionModuleOptions) {
    app = await createAppOn({ imports: [SessionModule.forRoot(options)], controllers: [CompatController] });
    return app.getHttpServer();
  }

  /** Python types JavaScript has no counterpart for arrive as their closest value. */
  function withoutPythonOnlyTypes(value: unknown): unknown {
    if (Array.isArray(value)) return value.map(withoutPythonOnlyTypes);
    if (value && typeof value === 'object') {
      const record = value as Record<string, unknown>;
      if ('$tuple' in record) return withoutPythonOnlyTypes(record.$tuple);
      if ('$uuid' in record) return record.$uuid;
      return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, withoutPythonOnlyTypes(v)]));
    }
    return value;
  }

  test('a cookie made by Flask opens in nest-session with the same values', async () => {
    const made = flask<Made>({ op: 'make', secret: 'shared', case: 'types', permanent: true });
    const expected = flask<Read>({ op: 'read', secret: 'shared', cookie: made.cookie });
    expect(made.cookie.startsWith('.')).toBe(true); // Flask compressed it
    const server = await nest({ secretKey: 'shared' });
    const response = await request(server).get('/describe').set('Cookie', `session=${made.cookie}`).expect(200);
    expect(response.body.session).toEqual(withoutPythonOnlyTypes(expected.session));
    expect(response.body.permanent).toBe(true);
    expect(response.body.session).toMatchObject({
      tuple: [1, 2],
      uuid: '12345678-1234-5678-1234-567812345678',
      escape: { ' t': 'a' },
      markup: { $markup: '<b>bold</b>' },
    });
  });

  test('a cookie made by nest-session opens in Flask with the same values', async () => {
    const server = await nest({ secretKey: 'shared' });
    const made = await request(server).get('/types').expect(200);
    const mine = await request(server).get('/describe').set('Cookie', cookiePair(made));
    const read = flask<Read>({ op: 'read', secret: 'shared', cookie: cookiePair(made).slice('session='.length) });
    expect(read.session).toEqual(mine.body.session);
    expect(read.session).toMatchObject({
      _permanent: true,
      string: 'h\u00e9llo \u2713',
      date: { $date: '2020-01-02T03:04:05Z' },
      bytes: { $bytes: 'AP9oZWxsbw==' },
      escape: { ' t': 'a' },
      markup: { $markup: '<b>bold</b>' },
    });
  });

  test('the same data signed at the same second gives the same cookie on both sides', async () => {
    const theirs = flask<Made>({ op: 'make', secret: 'shared', case: 'simple' }).cookie;
    const stamp = Buffer.from(theirs.split('.')[1], 'base64url');
    const signedAt = stamp.readUIntBE(0, stamp.length);
    /** Signs at the second Flask signed at, whatever the clock says now (starting Python takes a while). */
    @Injectable()
    class AtFlasksSecond extends SecureCookieSessionInterface {
      override getSigningSerializer(sessionApp: SessionApp) {
        const { salt, digestMethod, keyDerivation, serializer } = this;
        return new UrlSafeTimedSerializer([sessionApp.config.secretKey!], { salt, digestMethod, keyDerivation, serializer, now: () => signedAt });
      }
    }
    const server = await nest({ secretKey: 'shared', interface: AtFlasksSecond });
    const mine = cookiePair(await request(server).get('/simple')).slice('session='.length);
    expect(mine).toBe(theirs);
  });

  test('a wrong secret on either side gives an empty session, not an error', async () => {
    const made = flask<Made>({ op: 'make', secret: 'flask-secret', case: 'simple' });
    const server = await nest({ secretKey: 'another' });
    const response = await request(server).get('/describe').set('Cookie', `session=${made.cookie}`).expect(200);
    expect(response.body.session).toEqual({});
    const mine = cookiePair(await request(server).get('/simple')).slice('session='.length);
    expect(flask<Read>({ op: 'read', secret: 'flask-secret', cookie: mine }).session).toEqual({});
  });

  describe('key fallbacks work both ways', () => {
    test('Flask signed with the old key; nest-session has it as a fallback', async () => {
      const made = flask<Made>({ op: 'make', secret: 'old', case: 'simple' });
      const server = await nest({ secretKey: 'new', secretKeyFallbacks: ['old'] });
      const response = await request(server).get('/describe').set('Cookie', `session=${made.cookie}`);
      expect(response.body.session).toEqual({ user_id: 7 });
    });

    test('nest-session signed with the old key; Flask has it as a fallback', async () => {
      const server = await nest({ secretKey: 'old' });
      const mine = cookiePair(await request(server).get('/simple')).slice('session='.length);
      const read = flask<Read>({ op: 'read', secret: 'new', fallbacks: ['old'], cookie: mine });
      expect(read.session).toEqual({ user_id: 7 });
    });

    test('the newest key signs on both sides', async () => {
      const server = await nest({ secretKey: 'new', secretKeyFallbacks: ['old'] });
      const mine = cookiePair(await request(server).get('/simple')).slice('session='.length);
      expect(flask<Read>({ op: 'read', secret: 'new', cookie: mine }).session).toEqual({ user_id: 7 });
      expect(flask<Read>({ op: 'read', secret: 'old', cookie: mine }).session).toEqual({});
      const theirs = flask<Made>({ op: 'make', secret: 'new', fallbacks: ['old'], case: 'simple' });
      await app.close();
      const onlyNew = await nest({ secretKey: 'new' });
      expect((await request(onlyNew).get('/describe').set('Cookie', `session=${theirs.cookie}`)).body.session).toEqual({ user_id: 7 });
    });
  });
});
