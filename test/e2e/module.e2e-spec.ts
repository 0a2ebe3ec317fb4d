/** Every form of SessionModule.forRoot / forRootAsync, and bootstrap errors. */
import { Controller, Get, Inject, Injectable, Module, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import {
  SecureCookieSessionInterface,
  Session,
  SessionInterface,
  SessionModule,
  type SessionApp,
  type SessionMixin,
  type SessionModuleOptions,
  type SessionOptionsFactory,
} from '../../lib/index.js';
import { cookiePair, createApp, sessionCookie, setCookies } from '../support/apps.js';

@Controller()
class CounterController {
  constructor(readonly sessions: SessionInterface) {}

  @Get('count')
  count(@Session() session: SessionMixin<{ n: number }>) {
    const n = (session.get('n') ?? 0) + 1;
    session.set('n', n);
    return { n, interface: this.sessions.constructor.name };
  }
}

/** Counts twice: a request with its cookie must see the first count. */
async function countTwice(app: INestApplication) {
  const first = await request(app.getHttpServer()).get('/count').expect(200);
  const name = setCookies(first)[0]?.split('=')[0];
  const second = await request(app.getHttpServer()).get('/count').set('Cookie', cookiePair(first, name)).expect(200);
  return { first: first.body, second: second.body, cookie: sessionCookie(first, name)! };
}

const CONFIG = 'CONFIG';
@Module({ providers: [{ provide: CONFIG, useValue: { secret: 'from config', name: 'cfg' } }], exports: [CONFIG] })
class ConfigModule {}

/** A user's interface with an injected dependency: the cookie name comes from config. */
@Injectable()
class ConfiguredInterface extends SecureCookieSessionInterface {
  constructor(@Inject(CONFIG) private readonly config: { name: string }) {
    super();
  }
  override getCookieName(): string {
    return this.config.name;
  }
}

@Injectable()
class OptionsFactory implements SessionOptionsFactory {
  constructor(@Inject(CONFIG) private readonly config: { secret: string }) {}
  createSessionOptions(): SessionModuleOptions {
    return { secretKey: this.config.secret, cookie: { name: 'from-class' } };
  }
}

@Module({ imports: [ConfigModule], providers: [OptionsFactory], exports: [OptionsFactory] })
class OptionsFactoryModule {}

let app: INestApplication;
afterEach(() => app?.close());

async function appWith(sessionModule: ReturnType<typeof SessionModule.forRoot>) {
  app = await createApp({ imports: [sessionModule], controllers: [CounterController] });
  return app;
}

test('forRoot() with no argument gives read-only signed-cookie sessions', async () => {
  await appWith(SessionModule.forRoot());
  await request(app.getHttpServer()).get('/count').expect(500);
  expect(app.get(SessionInterface)).toBeInstanceOf(SecureCookieSessionInterface);
});

test('forRoot(options)', async () => {
  await appWith(SessionModule.forRoot({ secretKey: 'k', cookie: { name: 'sid', sameSite: 'Lax' } }));
  const { second, cookie } = await countTwice(app);
  expect(second.n).toBe(2);
  expect(cookie.name).toBe('sid');
  expect(cookie.sameSite).toBe('lax');
});

test('forRoot(an interface instance)', async () => {
  const instance = new ConfiguredInterface({ name: 'instance' });
  await appWith(SessionModule.forRoot(instance));
  expect(app.get(SessionInterface)).toBe(instance);
  // No secretKey in this form: the interface gives null sessions.
  await request(app.getHttpServer()).get('/count').expect(500);
});

test('forRoot(an injectable class) is built by DI', async () => {
  @Injectable()
  class StandaloneInterface extends SecureCookieSessionInterface {
    override getSigningSerializer(app: SessionApp) {
      return super.getSigningSerializer({ config: { ...app.config, secretKey: 'built-in' } });
    }
  }
  await appWith(SessionModule.forRoot(StandaloneInterface));
  const { second } = await countTwice(app);
  expect(second).toEqual({ n: 2, interface: 'StandaloneInterface' });
});

test('forRoot({ interface: Class, imports }) injects the class from the imported modules', async () => {
  await appWith(SessionModule.forRoot({ interface: ConfiguredInterface, imports: [ConfigModule], secretKey: 'k' }));
  const { second, cookie } = await countTwice(app);
  expect(second).toEqual({ n: 2, interface: 'ConfiguredInterface' });
  expect(cookie.name).toBe('cfg');
});

test('forRootAsync({ useFactory, inject, imports })', async () => {
  await appWith(
    SessionModule.forRootAsync({
      imports: [ConfigModule],
      inject: [CONFIG],
      useFactory: (config: { secret: string }) => ({ secretKey: config.secret, cookie: { name: 'from-factory' } }),
    }),
  );
  const { second, cookie } = await countTwice(app);
  expect(second.n).toBe(2);
  expect(cookie.name).toBe('from-factory');
});

test('forRootAsync with a factory that names an interface class builds it in the module scope', async () => {
  await appWith(
    SessionModule.forRootAsync({
      imports: [ConfigModule],
      useFactory: async () => ({ secretKey: 'k', interface: ConfiguredInterface }),
    }),
  );
  const { second, cookie } = await countTwice(app);
  expect(second).toEqual({ n: 2, interface: 'ConfiguredInterface' });
  expect(cookie.name).toBe('cfg');
});

test('forRootAsync({ useClass })', async () => {
  await appWith(SessionModule.forRootAsync({ imports: [ConfigModule], useClass: OptionsFactory }));
  const { second, cookie } = await countTwice(app);
  expect(second.n).toBe(2);
  expect(cookie.name).toBe('from-class');
});

test('forRootAsync({ useExisting })', async () => {
  await appWith(SessionModule.forRootAsync({ imports: [OptionsFactoryModule], useExisting: OptionsFactory }));
  const { cookie } = await countTwice(app);
  expect(cookie.name).toBe('from-class');
});

test('the resolved interface is injectable as SessionInterface in any module', async () => {
  @Injectable()
  class UsesSessions {
    constructor(readonly sessions: SessionInterface) {}
  }
  @Module({ providers: [UsesSessions], exports: [UsesSessions] })
  class FeatureModule {}
  app = await createApp({ imports: [SessionModule.forRoot({ secretKey: 'k' }), FeatureModule] });
  expect(app.get(UsesSessions).sessions).toBeInstanceOf(SecureCookieSessionInterface);
});

describe('misconfiguration fails at bootstrap, naming the option', () => {
  it.each<[string, SessionModuleOptions]>([
    ['secretKey', { secretKey: '' }],
    ['secretKeyFallbacks[1]', { secretKey: 'k', secretKeyFallbacks: ['ok', ''] }],
    ['permanentSessionLifetime', { permanentSessionLifetime: -1 }],
    ['permanentSessionLifetime', { permanentSessionLifetime: NaN }],
    ['maxCookieSize', { maxCookieSize: -5 }],
    ['applicationRoot', { applicationRoot: 'app' }],
    ['cookie.sameSite', { cookie: { sameSite: 'Laxx' as 'Lax' } }],
    ['cookie.name', { cookie: { name: 'bad name;' } }],
    ['cookie.path', { cookie: { path: 'no-slash' } }],
    ['cookie.domain', { cookie: { domain: 'a;b' } }],
    ['cookie.httpOnly', { cookie: { httpOnly: 'yes' as unknown as boolean } }],
    ['refreshEachRequest', { refreshEachRequest: 1 as unknown as boolean }],
    ['secret', { secret: 'typo' } as SessionModuleOptions],
    ['cookie.maxAge', { cookie: { maxAge: 1 } as never }],
  ])('%s', async (option, options) => {
    await expect(appWith(SessionModule.forRoot(options))).rejects.toThrow(`Invalid SessionModule option "${option}"`);
  });

  it('an interface that is not a SessionInterface', () => {
    expect(() => SessionModule.forRoot({ interface: {} as SessionInterface })).toThrow('"interface"');
  });

  it('forRootAsync without exactly one way to make the options', () => {
    expect(() => SessionModule.forRootAsync({})).toThrow('"forRootAsync"');
  });

  it('forRootAsync options that fail validation', async () => {
    await expect(
      appWith(SessionModule.forRootAsync({ useFactory: () => ({ cookie: { sameSite: 'bogus' as 'Lax' } }) })),
    ).rejects.toThrow('"cookie.sameSite"');
  });

  it('importing SessionModule twice in one application', async () => {
    await expect(
      createApp({ imports: [SessionModule.forRoot({ secretKey: 'a' }), SessionModule.forRoot({ secretKey: 'b' })] }).then((a) => (app = a)),
    ).rejects.toThrow(/more than once/);
  });
});
