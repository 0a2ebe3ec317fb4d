/**
 * itsdangerous's exception hierarchy, kept so that callers can tell a forged or
 * expired token (`BadSignature`) from one that verified but did not decode
 * (`BadPayload`).
 *
 * @publicApi
 */
export class BadData extends Error {
  override readonly name: string = this.constructor.name;
}

/** The signature did not match any key, or the token is malformed (any spelling but the canonical one). */
export class BadSignature extends BadData {}

/**
 * The timestamp is missing or malformed, a part of a timed token is not
 * canonical base64url, or its signature is bad.
 */
export class BadTimeSignature extends BadSignature {
  constructor(
    message: string,
    /** When the token was signed, if that could be read. */
    readonly dateSigned?: Date,
  ) {
    super(message);
  }
}

/** The token verified but is older than `maxAge` (or dated in the future). */
export class SignatureExpired extends BadTimeSignature {}

/** The token verified but its payload could not be decoded (base64, zlib, JSON or a tag). */
export class BadPayload extends BadData {
  constructor(
    message: string,
    readonly originalError?: unknown,
  ) {
    super(message);
  }
}
