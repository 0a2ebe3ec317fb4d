import { Inject, Injectable, Logger, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { SessionApp, SessionModuleOptions } from './interfaces/session-module-options.interface.js';
import { SecureCookieSessionInterface } from './secure-cookie/secure-cookie.session-interface.js';
import { SESSION_MODULE_OPTIONS } from './session.constants.js';
import { SessionConfigurationError } from './session.errors.js';
import { resolveSessionOptions } from './session.options.js';
import { SessionInterface } from './session-interface.js';
import { hookResponses } from './request-session.js';

/** Runtimes by the platform instance (the Express app) that serves their requests. */
const runtimesByPlatform = new WeakMap<object, SessionRuntime>();
const liveRuntimes = new Set<SessionRuntime>();

/**
 * One application's sessions: its resolved config (`app`) and interface.
 * Guards and middleware reach it through the request, since they run before
 * any interceptor and cannot be injected from a free function.
 */
@Injectable()
export class SessionRuntime implements OnModuleInit, OnModuleDestroy {
  readonly app: SessionApp;
  private readonly logger = new Logger('SessionModule');
  private platform?: object;

  constructor(
    @Inject(SESSION_MODULE_OPTIONS) options: SessionModuleOptions,
    readonly sessionInterface: SessionInterface,
    @Optional() private readonly adapterHost?: HttpAdapterHost,
  ) {
    this.app = Object.freeze({ config: resolveSessionOptions(options) });
    if (
      !sessionInterface ||
      typeof sessionInterface.openSession !== 'function' ||
      typeof sessionInterface.saveSession !== 'function'
    ) {
      throw SessionConfigurationError.create('interface', 'expected a SessionInterface instance or an @Injectable() subclass of SessionInterface.');
    }
    sessionInterface.validate?.(this.app);
  }

  onModuleInit(): void {
    if (this.sessionInterface instanceof SecureCookieSessionInterface && !this.app.config.secretKey) {
      this.logger.warn(
        'No secretKey is set: sessions are read-only and every write throws. Pass SessionModule.forRoot({ secretKey }).',
      );
    }
    this.platform = this.adapterHost?.httpAdapter?.getInstance?.();
    if (this.platform) {
      if (runtimesByPlatform.has(this.platform)) {
        throw new SessionConfigurationError(
          'SessionModule is imported more than once in this application; import SessionModule.forRoot() once, in the root module.',
        );
      }
      runtimesByPlatform.set(this.platform, this);
      const responsePrototype = (this.platform as { response?: object }).response;
      if (responsePrototype) hookResponses(responsePrototype);
    }
    liveRuntimes.add(this);
  }

  onModuleDestroy(): void {
    if (this.platform && runtimesByPlatform.get(this.platform) === this) runtimesByPlatform.delete(this.platform);
    liveRuntimes.delete(this);
  }
}

/**
 * The runtime of the application serving `request`: found through Express's
 * `req.app` (Fastify's `request.server`), or the only application running.
 */
export function findRuntime(request: { app?: object; server?: object }): SessionRuntime | undefined {
  const platform = request.app ?? request.server;
  const runtime = platform && runtimesByPlatform.get(platform);
  if (runtime) return runtime;
  return liveRuntimes.size === 1 ? liveRuntimes.values().next().value : undefined;
}
