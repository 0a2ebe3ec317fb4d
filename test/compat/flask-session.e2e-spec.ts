/**
 * Records shared with Flask-Session in Redis: `session:<sid>` holding the
 * msgpack (or JSON) of the session dict, `_permanent` included.
 */
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import request from 'supertest';
import { Session, SessionModule, type SerializationFormat, type SessionMixin } from '../../lib/index.js';
import { RedisSessionInterface } from '../../lib/redis/index.js';
import { cookiePair, createApp, PLATFORMS, type Platform } from '../support/apps.js';
import { describeValue, flaskSession } from '../support/flask.js';
import { RedisServer } from '../support/loopback-servers.js';

@Controller()
class CompatController {
  @Get('describe')
  describe(@Session() session: SessionMixin) {
    return describeValue(session.toJSON());
  }

  @Get('write')
  write(@Session() session: SessionMixin) {
    session.update({ user_id: 7, name: 'h\u00e9llo', ratio: 0.5, flags: [true, false, null], nested: { a: [1, 2, { b: 'c' }] } });
    return { sid: (session as unknown as { sid: string }).sid };
  }

  @Get('write-types')
  writeTypes(@Session() session: SessionMixin) {
    session.update({ when: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)), raw: Buffer.from([0, 255]) });
    return { sid: (session as unknown as { sid: string }).sid };
  }
}

const COMMON = { _permanent: true, user_id: 7, name: 'h\u00e9llo', ratio: 0.5, flags: [true, false, null], nested: { a: [1, 2, { b: 'c' }] } };

let server: RedisServer;
let client: Redis;
let app: INestApplication;
beforeAll(async () => {
  server = await RedisServer.start();
  client = new Redis(server.url);
});
afterAll(async () => {
  client.disconnect();
  await server.close();
});
afterEach(() => app?.close());

describe.each(PLATFORMS)('on %s', (platform: Platform) => {
  const createAppOn = (metadata: Parameters<typeof createApp>[0], logger: Parameters<typeof createApp>[1] = false) => createApp(metadata, logger, platform);

  async function nest(serializationFormat: SerializationFormat) {
    app = await createAppOn({
      imports: [SessionModule.forRoot({ interface: new RedisSessionInterface({ client, serializationFormat }), secretKey: 'k' })],
      controllers: [CompatController],
    });
    return app.getHttpServer();
  }

  test('a msgpack session written the Flask-Session way opens in nest-session', async () => {
    const sid = randomBytes(32).toString('base64url');
    flaskSession({ op: 'write', port: server.port, sid, format: 'msgpack' });
    const response = await request(await nest('msgpack')).get('/describe').set('Cookie', `session=${sid}`).expect(200);
    expect(response.body).toEqual({ ...COMMON, when: { $date: '2024-01-02T03:04:05Z' }, raw: { $bytes: 'AP8=' } });
  });

  test('a JSON session written the Flask-Session way opens in nest-session', async () => {
    const sid = randomBytes(32).toString('base64url');
    flaskSession({ op: 'write', port: server.port, sid, format: 'json' });
    const response = await request(await nest('json')).get('/describe').set('Cookie', `session=${sid}`).expect(200);
    expect(response.body).toEqual(COMMON);
  });

  test.each(['msgpack', 'json'] as const)('a %s session written by nest-session reads back in Python with the same values', async (format) => {
    const http = await nest(format);
    const written = await request(http).get('/write');
    const read = flaskSession<{ session: unknown }>({ op: 'read', port: server.port, sid: written.body.sid });
    expect(read.session).toEqual(COMMON);
    if (format === 'msgpack') {
      const typed = await request(http).get('/write-types').set('Cookie', cookiePair(written));
      const again = flaskSession<{ session: Record<string, unknown> }>({ op: 'read', port: server.port, sid: typed.body.sid });
      expect(again.session).toMatchObject({ when: { $date: '2024-01-02T03:04:05Z' }, raw: { $bytes: 'AP8=' } });
    }
  });
});
