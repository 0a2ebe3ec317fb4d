import type { ModuleMetadata, Type, InjectionToken, OptionalFactoryDependency } from '@nestjs/common';
import type { SecretKey } from '../signing/signer.js';
import type { SessionInterface } from '../session-interface.js';

/** The SameSite values Flask accepts (any case; written title-cased). */
export type SameSite = 'Strict' | 'Lax' | 'None' | 'strict' | 'lax' | 'none';

/**
 * Attributes of the session cookie. Each default is Flask's.
 *
 * @publicApi
 */
export interface SessionCookieOptions {
  /** Cookie name. Default `'session'` (Flask `SESSION_COOKIE_NAME`). */
  name?: string;
  /** `Domain` attribute. Default none: the cookie stays on the host that set it (`SESSION_COOKIE_DOMAIN`). */
  domain?: string;
  /** `Path` attribute. Default `applicationRoot` (`SESSION_COOKIE_PATH`). */
  path?: string;
  /** `HttpOnly`: scripts cannot read the cookie. Default `true` (`SESSION_COOKIE_HTTPONLY`). */
  httpOnly?: boolean;
  /** `Secure`: sent over HTTPS only. Default `false` (`SESSION_COOKIE_SECURE`). */
  secure?: boolean;
  /** `SameSite`: `'Strict'`, `'Lax'` or `'None'`, any case. Default none (`SESSION_COOKIE_SAMESITE`). */
  sameSite?: SameSite;
  /** CHIPS `Partitioned`; implies `Secure`. Default `false` (`SESSION_COOKIE_PARTITIONED`). */
  partitioned?: boolean;
}

/**
 * Options of `SessionModule.forRoot()`. Defaults in brackets; Flask's config
 * key in parentheses.
 *
 * @publicApi
 */
export interface SessionModuleOptions {
  /**
   * The session interface: an instance, or an `@Injectable()` class that Nest
   * builds with its own dependencies. [`SecureCookieSessionInterface`] (`app.session_interface`)
   */
  interface?: SessionInterface | Type<SessionInterface>;
  /** Modules whose exports the interface class injects. [none] */
  imports?: ModuleMetadata['imports'];
  /** Signs the cookie. Without it sessions are read-only {@link NullSession}s. [none] (`SECRET_KEY`) */
  secretKey?: SecretKey;
  /** Old keys that still verify cookies while the new `secretKey` signs. [`[]`] (`SECRET_KEY_FALLBACKS`) */
  secretKeyFallbacks?: SecretKey[];
  /** Session cookie attributes. */
  cookie?: SessionCookieOptions;
  /** The application's mount path; the default cookie path. [`'/'`] (`APPLICATION_ROOT`) */
  applicationRoot?: string;
  /**
   * Seconds a permanent session lives, and the oldest signed cookie accepted.
   * [`2678400`, 31 days] (`PERMANENT_SESSION_LIFETIME`)
   */
  permanentSessionLifetime?: number;
  /** Re-send a permanent session's cookie (new expiry) on every request that uses it. [`true`] (`SESSION_REFRESH_EACH_REQUEST`) */
  refreshEachRequest?: boolean;
  /** Warn when a Set-Cookie header is longer than this many bytes; `0` turns the check off. [`4093`] (`MAX_COOKIE_SIZE`) */
  maxCookieSize?: number;
  /**
   * Open and save the session on every HTTP route, as Flask does (a permanent
   * session's cookie is then refreshed by every request), by binding
   * `SessionInterceptor` globally. Every route then pays for sessions; by
   * default only routes with `@Session()` or `@UseSession()` do. [`false`]
   */
  everyRequest?: boolean;
}

/** The options after defaults are applied: what `app.config` holds. */
export interface ResolvedSessionOptions {
  readonly secretKey: SecretKey | undefined;
  readonly secretKeyFallbacks: readonly SecretKey[];
  readonly cookie: Readonly<{
    name: string;
    domain: string | undefined;
    path: string | undefined;
    httpOnly: boolean;
    secure: boolean;
    sameSite: 'Strict' | 'Lax' | 'None' | undefined;
    partitioned: boolean;
  }>;
  readonly applicationRoot: string;
  readonly permanentSessionLifetime: number;
  readonly refreshEachRequest: boolean;
  readonly maxCookieSize: number;
}

/**
 * What a session interface is given with every call: Flask's `app`, reduced to
 * what sessions need.
 *
 * @publicApi
 */
export interface SessionApp {
  readonly config: ResolvedSessionOptions;
}

/** A class whose `createSessionOptions()` gives the options (`forRootAsync({ useClass })`). */
export interface SessionOptionsFactory {
  createSessionOptions(): Promise<Omit<SessionModuleOptions, 'imports' | 'everyRequest'>> | Omit<SessionModuleOptions, 'imports' | 'everyRequest'>;
}

/**
 * Options of `SessionModule.forRootAsync()`: exactly one of `useFactory`,
 * `useClass`, `useExisting`. The options it gives may name an `interface`
 * class, which Nest then builds in the module's scope.
 *
 * @publicApi
 */
export interface SessionModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** As `SessionModuleOptions.everyRequest`; given here because it decides the module's providers. [`false`] */
  everyRequest?: boolean;
  useFactory?: (...args: any[]) => Promise<Omit<SessionModuleOptions, 'imports' | 'everyRequest'>> | Omit<SessionModuleOptions, 'imports' | 'everyRequest'>;
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  useClass?: Type<SessionOptionsFactory>;
  useExisting?: Type<SessionOptionsFactory>;
}
