import { Global, Module, type DynamicModule, type Provider, type Type } from '@nestjs/common';
import { APP_INTERCEPTOR, ModuleRef } from '@nestjs/core';
import type {
  SessionModuleAsyncOptions,
  SessionModuleOptions,
  SessionOptionsFactory,
} from './interfaces/session-module-options.interface.js';
import { SecureCookieSessionInterface } from './secure-cookie/secure-cookie.session-interface.js';
import { SESSION_MODULE_OPTIONS } from './session.constants.js';
import { SessionConfigurationError } from './session.errors.js';
import { SessionInterceptor } from './session.interceptor.js';
import { SessionManager } from './session.manager.js';
import { SessionInterface } from './session-interface.js';

type InterfaceChoice = SessionInterface | Type<SessionInterface> | undefined;

/**
 * Flask's sessions for a NestJS application. Import it once, in the root
 * module; it is global, so `SessionInterface` can be injected anywhere.
 *
 * What it registers, and where a session's life happens:
 * - the `SessionInterface` (the DI token is the abstract class itself);
 * - {@link SessionManager}: opens (`open`) and saves (`save`) sessions, and
 *   at startup installs the HTTP backstop that saves what no interceptor saw
 *   (lib/http/response-backstop.ts);
 * - {@link SessionInterceptor}: opens the session before a handler and saves
 *   it on the handler's way out; bound by `@Session()` / `@UseSession()`
 *   where the session is used, or globally with `everyRequest: true`.
 *
 * @example
 * SessionModule.forRoot({ secretKey: process.env.SECRET_KEY, cookie: { sameSite: 'Lax' } })
 *
 * @publicApi
 */
@Global()
@Module({})
export class SessionModule {
  /**
   * - no argument: signed-cookie sessions (read-only until a `secretKey` is set);
   * - options ({@link SessionModuleOptions});
   * - a `SessionInterface` instance, e.g. `new RedisSessionInterface({ client })`;
   * - an `@Injectable()` `SessionInterface` class, built by Nest with its own
   *   dependencies (list their modules in `imports` of the options form).
   */
  static forRoot(config?: SessionModuleOptions | SessionInterface | Type<SessionInterface>): DynamicModule {
    const options: SessionModuleOptions = isInterfaceChoice(config) ? { interface: config } : { ...config };
    const { imports = [], interface: choice, everyRequest, ...rest } = options;
    assertInterfaceChoice(choice);
    return {
      module: SessionModule,
      global: true,
      imports,
      providers: [
        { provide: SESSION_MODULE_OPTIONS, useValue: { interface: choice, ...rest } },
        interfaceProvider(choice),
        ...sessionProviders(everyRequest),
      ],
      exports: EXPORTS,
    };
  }

  /**
   * Options from a factory (`useFactory` + `inject`), a class implementing
   * {@link SessionOptionsFactory} (`useClass`), or an existing provider of one
   * (`useExisting`).
   */
  static forRootAsync(async: SessionModuleAsyncOptions): DynamicModule {
    const ways = [async.useFactory, async.useClass, async.useExisting].filter(Boolean).length;
    if (ways !== 1) {
      throw SessionConfigurationError.create('forRootAsync', 'give exactly one of useFactory, useClass or useExisting.');
    }
    const providers: Provider[] = [];
    if (async.useFactory) {
      providers.push({ provide: SESSION_MODULE_OPTIONS, useFactory: async.useFactory, inject: async.inject ?? [] });
    } else {
      const factoryClass = (async.useClass ?? async.useExisting)!;
      if (async.useClass) providers.push({ provide: factoryClass, useClass: factoryClass });
      providers.push({
        provide: SESSION_MODULE_OPTIONS,
        useFactory: (factory: SessionOptionsFactory) => factory.createSessionOptions(),
        inject: [factoryClass],
      });
    }
    providers.push(
      {
        provide: SessionInterface,
        inject: [SESSION_MODULE_OPTIONS, ModuleRef],
        useFactory: (options: SessionModuleOptions, moduleRef: ModuleRef) => {
          if (options?.everyRequest !== undefined) {
            throw SessionConfigurationError.create(
              'everyRequest',
              'give it to forRootAsync({ everyRequest }) itself, not from the factory: it decides which providers the module has.',
            );
          }
          const choice = options?.interface;
          assertInterfaceChoice(choice);
          if (typeof choice === 'function') return moduleRef.create(choice);
          return choice ?? new SecureCookieSessionInterface();
        },
      },
      ...sessionProviders(async.everyRequest),
    );
    return { module: SessionModule, global: true, imports: async.imports ?? [], providers, exports: EXPORTS };
  }
}

const EXPORTS = [SessionInterface, SessionManager, SessionInterceptor];

/** The manager and the interceptor; with `everyRequest`, the interceptor bound to every route too. */
function sessionProviders(everyRequest: unknown): Provider[] {
  if (everyRequest !== undefined && typeof everyRequest !== 'boolean') {
    throw SessionConfigurationError.create('everyRequest', `expected true or false, got ${JSON.stringify(everyRequest)}.`);
  }
  const providers: Provider[] = [SessionManager, SessionInterceptor];
  if (everyRequest) providers.push({ provide: APP_INTERCEPTOR, useExisting: SessionInterceptor });
  return providers;
}

function interfaceProvider(choice: InterfaceChoice): Provider {
  if (typeof choice === 'function') return { provide: SessionInterface, useClass: choice };
  return { provide: SessionInterface, useValue: choice ?? new SecureCookieSessionInterface() };
}

function isInterfaceChoice(config: unknown): config is SessionInterface | Type<SessionInterface> {
  return config instanceof SessionInterface || typeof config === 'function';
}

function assertInterfaceChoice(choice: unknown): asserts choice is InterfaceChoice {
  if (choice === undefined || choice instanceof SessionInterface) return;
  if (typeof choice === 'function' && choice.prototype instanceof SessionInterface) return;
  throw SessionConfigurationError.create('interface', 'expected a SessionInterface instance or a class that extends SessionInterface.');
}
