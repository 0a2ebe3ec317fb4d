export { SessionModule } from './session.module.js';
export { SessionInterface } from './session-interface.js';
export { SecureCookieSessionInterface } from './secure-cookie/secure-cookie.session-interface.js';
export { Session, UseSession } from './session.decorators.js';
export { SessionInterceptor } from './session.interceptor.js';
export { getSession } from './get-session.js';
export { SessionMixin, type SessionData } from './sessions/session-mixin.js';
export { SecureCookieSession } from './sessions/secure-cookie.session.js';
export { NullSession } from './sessions/null.session.js';
export { ServerSideSession } from './sessions/server-side.session.js';
export { ServerSideSessionInterface, type ServerSideSessionOptions } from './server-side/server-side.session-interface.js';
export { StoreSerializer, type SerializationFormat } from './serializers/store-serializer.js';
export { TaggedJsonSerializer } from './serializers/tagged-json.serializer.js';
export type { TextSerializer } from './serializers/text-serializer.interface.js';
export { Markup } from './serializers/markup.js';
export { Signer, type KeyDerivation, type SecretKey, type SignerOptions } from './signing/signer.js';
export { UrlSafeTimedSerializer, type UrlSafeTimedSerializerOptions } from './signing/url-safe-timed-serializer.js';
export { BadData, BadPayload, BadSignature, BadTimeSignature, SignatureExpired } from './signing/signing.errors.js';
export {
  SessionConfigurationError,
  SessionCookieRejectedError,
  SessionError,
  NullSessionError,
  SessionNotInitializedError,
  SessionReadOnlyError,
  SessionSerializationError,
  SessionStoreUnavailableError,
} from './session.errors.js';
export type {
  ResolvedSessionOptions,
  SameSite,
  SessionApp,
  SessionCookieOptions,
  SessionModuleAsyncOptions,
  SessionModuleOptions,
  SessionOptionsFactory,
} from './interfaces/session-module-options.interface.js';
export type { CookieReadableRequest, HeaderWritableResponse } from './http/platform-seam.js';
