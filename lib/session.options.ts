import type { ResolvedSessionOptions, SessionModuleOptions } from './interfaces/session-module-options.interface.js';
import { SessionConfigurationError } from './session.errors.js';

/** Flask's `PERMANENT_SESSION_LIFETIME`, 31 days, in seconds. */
export const DEFAULT_PERMANENT_SESSION_LIFETIME = 31 * 24 * 60 * 60;
/** Werkzeug's default `max_cookie_size`. */
export const DEFAULT_MAX_COOKIE_SIZE = 4093;

const TOP_LEVEL_KEYS = new Set([
  'interface',
  'imports',
  'secretKey',
  'secretKeyFallbacks',
  'cookie',
  'applicationRoot',
  'permanentSessionLifetime',
  'refreshEachRequest',
  'maxCookieSize',
  'everyRequest',
]);
const COOKIE_KEYS = new Set(['name', 'domain', 'path', 'httpOnly', 'secure', 'sameSite', 'partitioned']);
const SAME_SITE: Record<string, 'Strict' | 'Lax' | 'None'> = { strict: 'Strict', lax: 'Lax', none: 'None' };
/** RFC 6265 cookie-name token characters. */
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Characters that would end or corrupt a cookie attribute. */
const ATTRIBUTE_BREAKERS = /[;,\s\u0000-\u001f\u007f]/;

/**
 * The checks behind the cookie options, also applied at run time to what an
 * overridden `getCookie*()` returns (it may be built from the request).
 */
export const cookieAttributeChecks = {
  name: (value: unknown): value is string => typeof value === 'string' && COOKIE_NAME.test(value),
  domain: (value: unknown): value is string | undefined =>
    value === undefined || (typeof value === 'string' && value.length > 0 && !ATTRIBUTE_BREAKERS.test(value)),
  /** Any path starting with "/": the Set-Cookie writer percent-encodes what would break the attribute, as Werkzeug. */
  path: (value: unknown): value is string => typeof value === 'string' && value.startsWith('/'),
  /** `'Strict'`, `'Lax'` or `'None'` in any case, title-cased; undefined for anything else. */
  sameSite: (value: unknown): 'Strict' | 'Lax' | 'None' | undefined =>
    typeof value === 'string' && Object.hasOwn(SAME_SITE, value.toLowerCase()) ? SAME_SITE[value.toLowerCase()] : undefined,
};

/**
 * Applies Flask's defaults and checks every option, so that a mistake fails at
 * bootstrap with an error naming the option rather than on some request.
 */
export function resolveSessionOptions(options: SessionModuleOptions = {}): ResolvedSessionOptions {
  const fail = (option: string, problem: string) => {
    throw SessionConfigurationError.create(option, problem);
  };
  for (const key of Object.keys(options)) {
    if (!TOP_LEVEL_KEYS.has(key)) fail(key, `unknown option; expected one of ${[...TOP_LEVEL_KEYS].join(', ')}.`);
  }
  const cookie = options.cookie ?? {};
  for (const key of Object.keys(cookie)) {
    if (!COOKIE_KEYS.has(key)) fail(`cookie.${key}`, `unknown option; expected one of ${[...COOKIE_KEYS].join(', ')}.`);
  }

  const { secretKey, secretKeyFallbacks = [] } = options;
  const checkSecret = (option: string, key: unknown) => {
    if (typeof key !== 'string' && !Buffer.isBuffer(key)) fail(option, 'expected a string or a Buffer.');
    if ((key as string | Buffer).length === 0) fail(option, 'a secret key cannot be empty.');
  };
  if (secretKey !== undefined) checkSecret('secretKey', secretKey);
  if (!Array.isArray(secretKeyFallbacks)) fail('secretKeyFallbacks', 'expected an array of secret keys.');
  secretKeyFallbacks.forEach((key, i) => checkSecret(`secretKeyFallbacks[${i}]`, key));

  const applicationRoot = options.applicationRoot ?? '/';
  if (typeof applicationRoot !== 'string' || !applicationRoot.startsWith('/') || ATTRIBUTE_BREAKERS.test(applicationRoot)) {
    fail('applicationRoot', `expected a path starting with "/", got ${JSON.stringify(applicationRoot)}.`);
  }

  const lifetime = options.permanentSessionLifetime ?? DEFAULT_PERMANENT_SESSION_LIFETIME;
  if (typeof lifetime !== 'number' || !Number.isFinite(lifetime) || lifetime < 0) {
    fail('permanentSessionLifetime', `expected a number of seconds >= 0, got ${String(lifetime)}.`);
  }
  const maxCookieSize = options.maxCookieSize ?? DEFAULT_MAX_COOKIE_SIZE;
  if (!Number.isInteger(maxCookieSize) || maxCookieSize < 0) {
    fail('maxCookieSize', `expected a whole number of bytes >= 0 (0 turns the check off), got ${String(maxCookieSize)}.`);
  }
  const booleanOption = (option: string, value: unknown, fallback: boolean): boolean => {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') fail(option, `expected true or false, got ${JSON.stringify(value)}.`);
    return value as boolean;
  };

  const name = cookie.name ?? 'session';
  if (typeof name !== 'string' || !COOKIE_NAME.test(name)) {
    fail('cookie.name', `expected a cookie name (letters, digits, !#$%&'*+-.^_\`|~), got ${JSON.stringify(name)}.`);
  }
  if (cookie.domain !== undefined && (typeof cookie.domain !== 'string' || !cookie.domain || ATTRIBUTE_BREAKERS.test(cookie.domain))) {
    fail('cookie.domain', `expected a domain name, got ${JSON.stringify(cookie.domain)}.`);
  }
  if (cookie.path !== undefined && (typeof cookie.path !== 'string' || !cookie.path.startsWith('/') || ATTRIBUTE_BREAKERS.test(cookie.path))) {
    fail('cookie.path', `expected a path starting with "/", got ${JSON.stringify(cookie.path)}.`);
  }
  let sameSite: 'Strict' | 'Lax' | 'None' | undefined;
  if (cookie.sameSite !== undefined) {
    sameSite = cookieAttributeChecks.sameSite(cookie.sameSite);
    if (!sameSite) fail('cookie.sameSite', `expected 'Strict', 'Lax' or 'None' (any case), got ${JSON.stringify(cookie.sameSite)}.`);
  }

  return Object.freeze({
    secretKey,
    secretKeyFallbacks: Object.freeze([...secretKeyFallbacks]),
    cookie: Object.freeze({
      name,
      domain: cookie.domain,
      path: cookie.path,
      httpOnly: booleanOption('cookie.httpOnly', cookie.httpOnly, true),
      secure: booleanOption('cookie.secure', cookie.secure, false),
      sameSite,
      partitioned: booleanOption('cookie.partitioned', cookie.partitioned, false),
    }),
    applicationRoot,
    permanentSessionLifetime: Math.floor(lifetime),
    refreshEachRequest: booleanOption('refreshEachRequest', options.refreshEachRequest, true),
    maxCookieSize,
  });
}
