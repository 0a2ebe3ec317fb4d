import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { HmacKey } from './hmac-key.js';
import { BadSignature } from './signing.errors.js';

/** A secret as Flask accepts it: text (UTF-8 encoded) or raw bytes. */
export type SecretKey = string | Buffer;

/** itsdangerous key derivations. Flask's session cookie uses `'hmac'`. */
export type KeyDerivation = 'hmac' | 'concat' | 'django-concat' | 'none';

/** @publicApi */
export interface SignerOptions {
  /** Namespaces the derived key, so a token signed for one purpose is useless for another. */
  salt: string;
  /** Separator between value and signature. Default `'.'`; must not be a base64url character. */
  separator?: string;
  /** Default `'hmac'` here (Flask's choice; itsdangerous's own default is `'django-concat'`). */
  keyDerivation?: KeyDerivation;
  /** A node:crypto hash name. Default `'sha1'`, as Flask. */
  digestMethod?: string;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * itsdangerous's `Signer`: `value + sep + base64url(HMAC(derivedKey, value))`.
 *
 * Keys are given oldest first, as Flask's `[*SECRET_KEY_FALLBACKS, SECRET_KEY]`:
 * the last one signs, every one verifies (newest first).
 *
 * Verification is stricter than itsdangerous in one way: the signature must be
 * the canonical base64url text of the expected digest. Python's decoder ignores
 * stray characters and the spare bits of the last character, so several
 * spellings of one signature pass there; only the canonical one passes here.
 *
 * @publicApi
 */
export class Signer {
  readonly salt: string;
  readonly separator: string;
  readonly keyDerivation: KeyDerivation;
  readonly digestMethod: string;
  /** Derived keys, newest first (the order verification tries them in). */
  private readonly derivedKeys: HmacKey[];

  constructor(secretKeys: SecretKey | readonly SecretKey[], options: SignerOptions) {
    this.salt = options.salt;
    this.separator = options.separator ?? '.';
    this.keyDerivation = options.keyDerivation ?? 'hmac';
    this.digestMethod = options.digestMethod ?? 'sha1';
    if (this.separator.length === 0 || BASE64URL.test(this.separator)) {
      throw new TypeError('The separator cannot be empty or contain base64url characters.');
    }
    const keys = (Array.isArray(secretKeys) ? secretKeys : [secretKeys]) as SecretKey[];
    if (keys.length === 0) {
      throw new TypeError('A Signer needs at least one secret key.');
    }
    this.derivedKeys = keys.map((key) => new HmacKey(this.digestMethod, this.deriveKey(toBytes(key)))).reverse();
  }

  /** The key that signs, derived from the last (current) secret. */
  deriveKey(secret: Buffer): Buffer {
    const salt = Buffer.from(this.salt, 'utf8');
    switch (this.keyDerivation) {
      case 'hmac':
        return createHmac(this.digestMethod, secret).update(salt).digest();
      case 'concat':
        return createHash(this.digestMethod).update(salt).update(secret).digest();
      case 'django-concat':
        return createHash(this.digestMethod).update(salt).update('signer').update(secret).digest();
      case 'none':
        return secret;
      default:
        throw new TypeError('Unknown key derivation method');
    }
  }

  /** base64url signature of `value` with the current key. */
  getSignature(value: string): string {
    return this.derivedKeys[0].sign(value);
  }

  sign(value: string): string {
    return value + this.separator + this.getSignature(value);
  }

  verifySignature(value: string, signature: string): boolean {
    const given = Buffer.from(signature, 'latin1');
    for (const key of this.derivedKeys) {
      const expected = Buffer.from(key.sign(value), 'latin1');
      if (expected.length === given.length && timingSafeEqual(expected, given)) {
        return true;
      }
    }
    return false;
  }

  /** Returns the signed value, or throws {@link BadSignature}. */
  unsign(signedValue: string): string {
    const at = signedValue.lastIndexOf(this.separator);
    if (at === -1) {
      throw new BadSignature(`No '${this.separator}' found in value`);
    }
    const value = signedValue.slice(0, at);
    const signature = signedValue.slice(at + this.separator.length);
    if (this.verifySignature(value, signature)) {
      return value;
    }
    throw new BadSignature(`Signature '${signature}' does not match`);
  }
}

export function toBytes(key: SecretKey): Buffer {
  return typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
}
