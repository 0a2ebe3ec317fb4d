import { Injectable } from '@nestjs/common';
import type { SessionApp } from '../interfaces/session-module-options.interface.js';
import type { CookieReadableRequest, HeaderWritableResponse } from '../http/platform-seam.js';
import { TaggedJsonSerializer } from '../serializers/tagged-json.serializer.js';
import type { TextSerializer } from '../serializers/text-serializer.interface.js';
import { SessionInterface } from '../session-interface.js';
import { SecureCookieSession } from '../sessions/secure-cookie.session.js';
import type { SessionData, SessionMixin } from '../sessions/session-mixin.js';
import type { KeyDerivation } from '../signing/signer.js';
import { BadData } from '../signing/signing.errors.js';
import { UrlSafeTimedSerializer } from '../signing/url-safe-timed-serializer.js';

/**
 * The default interface: the whole session travels in a cookie signed the way
 * Flask signs it (itsdangerous `URLSafeTimedSerializer`, salt
 * `'cookie-session'`, HMAC-SHA1, `'hmac'` key derivation, Flask's tagged JSON),
 * so a Flask app with the same secret reads it and the other way round.
 *
 * The cookie is signed, not encrypted: the client can read its data.
 * A bad, tampered, truncated or expired cookie gives an empty session; the
 * request goes on normally.
 *
 * @publicApi
 */
@Injectable()
export class SecureCookieSessionInterface extends SessionInterface {
  /** Namespaces the signing key. Default `'cookie-session'`. */
  salt = 'cookie-session';
  /** Hash of the HMAC. Default `'sha1'`. */
  digestMethod = 'sha1';
  /** Default `'hmac'`. */
  keyDerivation: KeyDerivation = 'hmac';
  /** Default Flask's tagged JSON. */
  serializer: TextSerializer = new TaggedJsonSerializer();
  /** The class of opened sessions. */
  sessionClass: new (data?: SessionData) => SessionMixin = SecureCookieSession;

  /** `null` when no secret key is set: sessions are then {@link NullSession}s. */
  getSigningSerializer(app: SessionApp): UrlSafeTimedSerializer | null {
    if (!app.config.secretKey) return null;
    return this.cachedSigner(
      app,
      (keys) =>
        new UrlSafeTimedSerializer(keys, {
          salt: this.salt,
          digestMethod: this.digestMethod,
          keyDerivation: this.keyDerivation,
          serializer: this.serializer,
        }),
    );
  }

  openSession(app: SessionApp, request: CookieReadableRequest): SessionMixin | null {
    const signer = this.getSigningSerializer(app);
    if (!signer) return null;
    const cookie = this.getRequestCookie(app, request);
    if (!cookie) return this.freshSession();
    try {
      const data = signer.loads(cookie, app.config.permanentSessionLifetime);
      if (data === null || typeof data !== 'object' || Array.isArray(data)) {
        throw new BadData('The session cookie does not hold a dictionary.');
      }
      return new this.sessionClass(data as SessionData);
    } catch (error) {
      if (!(error instanceof BadData)) throw error;
      this.logger.debug?.(`Ignoring the session cookie: ${error.message}`);
      return this.freshSession();
    }
  }

  saveSession(app: SessionApp, session: SessionMixin, response: HeaderWritableResponse | undefined): void {
    // Flask adds Vary when the session was accessed, and again with any
    // Set-Cookie; once is enough, as adding twice changes nothing.
    let vary = session.accessed;
    if (this.isSessionEmpty(session)) {
      if (session.modified) {
        this.deleteSessionCookie(app, response);
        vary = true;
      }
    } else if (this.shouldSetCookie(app, session)) {
      const signer = this.getSigningSerializer(app);
      if (signer) {
        this.setSessionCookie(app, session, response, signer.dumps(Object.fromEntries(this.sessionData(session))));
        vary = true;
      }
    }
    if (vary) this.addVaryCookie(response);
  }

  private freshSession(): SessionMixin {
    const session = new this.sessionClass();
    session.new = true;
    return session;
  }
}
