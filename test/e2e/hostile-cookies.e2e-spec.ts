/** Whatever a client sends as its cookie, the request succeeds with an empty session. */
import { Controller, Get, type INestApplication } from '@nestjs/common';
import fc from 'fast-check';
import request from 'supertest';
import { Session, SessionModule, type SessionMixin } from '../../lib/index.js';
import { cookiePair, createApp, PLATFORMS, type Platform } from '../support/apps.js';

@Controller()
class EchoController {
  @Get('echo')
  echo(@Session() session: SessionMixin) {
    return { data: session.toJSON(), isNew: session.new };
  }

  @Get('login')
  login(@Session() session: SessionMixin) {
    session.update({ user: 'alice', admin: false });
    return '';
  }
}

describe.each(PLATFORMS)('on %s', (platform: Platform) => {
  const createAppOn = (metadata: Parameters<typeof createApp>[0], logger: Parameters<typeof createApp>[1] = false) => createApp(metadata, logger, platform);

  let app: INestApplication;
  let valid: string;
  beforeAll(async () => {
    app = await createAppOn({ imports: [SessionModule.forRoot({ secretKey: 'k' })], controllers: [EchoController] });
    valid = cookiePair(await request(app.getHttpServer()).get('/login')).slice('session='.length);
  });
  afterAll(() => app.close());

  const cookieText = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.string({ unit: fc.constantFrom(...'.-_=%"\\;, abcXYZ019eyJ'.split('')), maxLength: 200 }),
    fc.array(fc.base64String({ maxLength: 60 }), { minLength: 1, maxLength: 5 }).map((parts) => parts.join('.')),
  );

  test('no random cookie value makes a request fail', async () => {
    await fc.assert(
      fc.asyncProperty(cookieText, async (value) => {
        // Header values cannot hold control characters or non-Latin-1 text; browsers never send them.
        const header = `session=${value}`.replace(/[^\x20-\x7e]/g, '');
        const response = await request(app.getHttpServer()).get('/echo').set('Cookie', header);
        expect(response.status).toBe(200);
        expect(response.body).toEqual({ data: {}, isNew: true });
      }),
      { numRuns: 300 },
    );
  });

  test('no one-character change to a valid cookie is accepted', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(valid.length - 1), fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.'), async (at, char) => {
        const changed = valid.slice(0, at) + char + valid.slice(at + 1);
        fc.pre(changed !== valid);
        const response = await request(app.getHttpServer()).get('/echo').set('Cookie', `session=${changed}`);
        expect(response.status).toBe(200);
        expect(response.body.data).toEqual({});
      }),
      { numRuns: 300 },
    );
  });

  test('the unchanged cookie is accepted (the property above is not vacuous)', async () => {
    const response = await request(app.getHttpServer()).get('/echo').set('Cookie', `session=${valid}`);
    expect(response.body).toEqual({ data: { user: 'alice', admin: false }, isNew: false });
  });

  test('a duplicated session cookie uses the first, as Werkzeug does', async () => {
    const response = await request(app.getHttpServer()).get('/echo').set('Cookie', `session=${valid}; session=garbage`);
    expect(response.body.data).toEqual({ user: 'alice', admin: false });
  });
});
