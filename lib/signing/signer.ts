import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { isCanonicalBase64url } from './base64url.js';
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

/** `String.prototype.isWellFormed` (Node 20+; not in the ES2022 type library this package compiles against). */
const isWellFormed = (String.prototype as unknown as { isWellFormed(this: string): boolean }).isWellFormed;

/**
 * itsdangerous's `Signer`: `value + sep + base64url(HMAC(derivedKey, value))`.
 *
 * Keys are given oldest first, as Flask's `[*SECRET_KEY_FALLBACKS, SECRET_KEY]`:
 * the last one signs, every one verifies (newest first).
 *
 * Verification is stricter than itsdangerous in two ways, so that a token has
 * exactly one accepted spelling (a blocklist of stolen tokens then works):
 *
 * - The signature must be the canonical base64url text of a digest: only
 *   `A-Z a-z 0-9 - _`, the digest's length, no padding, zero spare bits in
 *   the last character. Anything else is refused before any HMAC is computed.
 *   Python's decoder skips stray characters, padding and spare bits, so
 *   several spellings of one signature pass there; itsdangerous only ever
 *   writes the canonical one, so every token it makes verifies here.
 * - The signed value must be well-formed UTF-16: a lone surrogate has no
 *   UTF-8 encoding and would be signed as U+FFFD, giving every lone surrogate
 *   and U+FFFD one signature. Signing such a value throws a `TypeError`.
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
  /** Characters in a signature: the base64url length of one digest. */
  private readonly signatureLength: number;

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
    this.signatureLength = this.derivedKeys[0].sign('').length;
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

  /** base64url signature of `value` with the current key. Throws a `TypeError` for a value with a lone surrogate. */
  getSignature(value: string): string {
    if (!isWellFormed.call(value)) {
      throw new TypeError('Cannot sign a value with a lone surrogate: UTF-8 has no encoding for it.');
    }
    return this.derivedKeys[0].sign(value);
  }

  sign(value: string): string {
    return value + this.separator + this.getSignature(value);
  }

  /**
   * True when `signature` is, character for character, the signature of
   * `value` by one of the keys. Any other spelling is refused before the
   * HMAC; the digests are compared in constant time.
   */
  verifySignature(value: string, signature: string): boolean {
    if (signature.length !== this.signatureLength || !isCanonicalBase64url(signature) || !isWellFormed.call(value)) {
      return false;
    }
    // ASCII only now, so latin1 keeps every character as one byte: nothing is dropped.
    const given = Buffer.from(signature, 'latin1');
    for (const key of this.derivedKeys) {
      if (timingSafeEqual(Buffer.from(key.sign(value), 'latin1'), given)) {
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
