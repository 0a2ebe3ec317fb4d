import { deflateSync, inflateSync } from 'node:zlib';
import { decodeCanonicalUint, isCanonicalBase64url } from './base64url.js';
import { mayCompress } from './compression.js';
import type { TextSerializer } from '../serializers/text-serializer.interface.js';
import { Signer, type SecretKey, type SignerOptions } from './signer.js';
import { BadPayload, BadSignature, BadTimeSignature, SignatureExpired } from './signing.errors.js';

/**
 * A signed payload decompresses to at most this many bytes. Signatures are
 * checked first, so this only bounds what a holder of the secret can make us
 * inflate; a browser cookie is 4 KiB at most.
 */
const MAX_INFLATED_BYTES = 1024 * 1024;
/** Six bytes reach the year 8 million and stay within Number's exact range. */
const MAX_TIMESTAMP_BYTES = 6;
/** How many verified tokens are remembered (at most 4 KiB each). */
const VERIFIED_TOKENS = 1000;

/** A token whose signature was checked, ready to decode again without the HMAC. */
interface VerifiedToken {
  readonly text: string;
  readonly timestamp: number;
  /**
   * The decoded value when it is a plain object of primitives (the usual
   * session: ids, names, counters), handed out as a shallow copy instead of
   * decoding the text again. A nested value is never shared between requests.
   */
  flat?: Readonly<Record<string, unknown>>;
}

/** @publicApi */
export interface UrlSafeTimedSerializerOptions extends SignerOptions {
  /** Turns the value into text and back; Flask uses its TaggedJSON serializer. */
  serializer: TextSerializer;
  /** Seconds since the epoch; tests replace it to sign or verify at another time. */
  now?: () => number;
}

/**
 * itsdangerous's `URLSafeTimedSerializer`, the token format of Flask's session
 * cookie: `base64url(payload) . base64url(timestamp) . base64url(signature)`,
 * where the payload is zlib-compressed (and then starts with `.`) when that
 * makes it shorter.
 *
 * A token verifies only in the spelling itsdangerous writes: each of its
 * three parts must be canonical base64url (see {@link Signer} for the
 * signature; the timestamp without a leading zero byte), or it is refused
 * with {@link BadTimeSignature} before any HMAC is computed. Python reads
 * other spellings of the same bytes too; itsdangerous never writes them.
 *
 * @publicApi
 */
export class UrlSafeTimedSerializer {
  readonly signer: Signer;
  private readonly serializer: TextSerializer;
  private readonly now: () => number;
  /**
   * Tokens this serializer signed or verified, in insertion order (oldest
   * evicted first). A client sends the same cookie until it changes, so most
   * requests skip the HMAC, base64 and zlib; the age is still checked on each.
   * Keyed by the exact text that was signed or verified, so a hit is that
   * very string and never another spelling of it.
   */
  private readonly verified = new Map<string, VerifiedToken>();

  constructor(secretKeys: SecretKey | readonly SecretKey[], options: UrlSafeTimedSerializerOptions) {
    this.signer = new Signer(secretKeys, options);
    this.serializer = options.serializer;
    this.now = options.now ?? (() => Math.floor(Date.now() / 1000));
  }

  dumps(value: unknown): string {
    const sep = this.signer.separator;
    const text = this.serializer.dumps(value);
    const timestamp = this.now();
    const signed = this.dumpPayload(text) + sep + encodeTimestamp(timestamp);
    const token = signed + sep + this.signer.getSignature(signed);
    this.remember(token, { text, timestamp, flat: undefined });
    return token;
  }

  /**
   * Verifies and decodes a token. Throws {@link SignatureExpired} when older
   * than `maxAge` seconds (or dated in the future), {@link BadSignature} when
   * forged or malformed, {@link BadPayload} when it verified but did not decode.
   */
  loads(token: string, maxAge?: number): unknown {
    const verified = this.verified.get(token) ?? this.verify(token);
    const { text, timestamp } = verified;
    if (maxAge !== undefined) {
      const age = this.now() - timestamp;
      if (age > maxAge) {
        throw new SignatureExpired(`Signature age ${age} > ${maxAge} seconds`, new Date(timestamp * 1000));
      }
      if (age < 0) {
        throw new SignatureExpired(`Signature age ${age} < 0 seconds`, new Date(timestamp * 1000));
      }
    }
    if (verified.flat) return { ...verified.flat };
    let value: unknown;
    try {
      value = this.serializer.loads(text);
    } catch (error) {
      throw new BadPayload('Could not load the payload because an exception occurred on unserializing the data.', error);
    }
    if (isFlatRecord(value)) verified.flat = { ...value };
    return value;
  }

  private verify(token: string): VerifiedToken {
    const sep = this.signer.separator;
    const signatureAt = token.lastIndexOf(sep);
    if (signatureAt === -1) {
      throw new BadTimeSignature(`No '${sep}' found in value`);
    }
    const signed = token.slice(0, signatureAt);
    const signature = token.slice(signatureAt + sep.length);
    const timestampAt = signed.lastIndexOf(sep);
    if (timestampAt === -1) {
      throw new BadTimeSignature('timestamp missing');
    }
    // The form of every part is checked before the HMAC: only canonical text is worth signing over.
    const timestamp = decodeCanonicalUint(signed.slice(timestampAt + sep.length), MAX_TIMESTAMP_BYTES);
    if (timestamp === undefined) {
      throw new BadTimeSignature('Malformed timestamp');
    }
    const payload = signed.slice(0, timestampAt);
    const encoded = payload.startsWith('.') ? payload.slice(1) : payload;
    if (encoded.length === 0 || !isCanonicalBase64url(encoded)) {
      throw new BadTimeSignature('Malformed payload');
    }
    if (!this.signer.verifySignature(signed, signature)) {
      throw new BadTimeSignature(`Signature '${signature}' does not match`);
    }
    const verified: VerifiedToken = { text: this.decodePayload(payload), timestamp, flat: undefined };
    this.remember(token, verified);
    return verified;
  }

  private remember(token: string, verified: VerifiedToken): void {
    if (this.verified.size >= VERIFIED_TOKENS) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, verified);
  }

  private dumpPayload(text: string): string {
    const json = Buffer.from(text, 'utf8');
    if (mayCompress(json)) {
      const compressed = deflateSync(json);
      if (compressed.length < json.length - 1) return '.' + compressed.toString('base64url');
    }
    return json.toString('base64url');
  }

  /** The payload's text: base64url-decoded (its form was checked) and, with a leading `.`, inflated. */
  private decodePayload(payload: string): string {
    const isCompressed = payload.startsWith('.');
    let bytes = Buffer.from(isCompressed ? payload.slice(1) : payload, 'base64url');
    if (isCompressed) {
      try {
        bytes = inflateSync(bytes, { maxOutputLength: MAX_INFLATED_BYTES });
      } catch (error) {
        throw new BadPayload('Could not zlib decompress the payload before decoding the payload', error);
      }
    }
    return bytes.toString('utf8');
  }
}

/** A plain object whose values are all strings, numbers, booleans or null: safe to copy shallowly. */
function isFlatRecord(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[key];
    if (item !== null && typeof item === 'object') return false;
  }
  return true;
}

/** The last timestamp encoded: it changes once a second, tokens are made far more often. */
let lastTimestamp = { seconds: -1, text: '' };

/** base64url of the integer as big-endian bytes, leading zero bytes stripped. */
function encodeTimestamp(seconds: number): string {
  if (lastTimestamp.seconds === seconds) return lastTimestamp.text;
  lastTimestamp = { seconds, text: timestampText(seconds) };
  return lastTimestamp.text;
}

function timestampText(seconds: number): string {
  let hex = Math.max(0, Math.floor(seconds)).toString(16);
  if (hex.length % 2) hex = '0' + hex;
  return Buffer.from(hex, 'hex').toString('base64url');
}
