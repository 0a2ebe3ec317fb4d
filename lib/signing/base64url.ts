/**
 * Canonical base64url (RFC 4648 §5, no padding), the only spelling
 * itsdangerous writes. Python's decoder also reads other spellings of the
 * same bytes (stray characters, `=` padding, `+` and `/`, other spare bits in
 * the last character), so one token would have many accepted forms; these
 * checks let exactly one through.
 */

/** The 6-bit value of each base64url character by character code, -1 for every other character. */
const VALUES = new Int8Array(128).fill(-1);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('').forEach((char, value) => {
  VALUES[char.charCodeAt(0)] = value;
});

/** Spare (unused) low bits of the last character, by `length % 4`; `-1`: no byte count has that length. */
const SPARE_BITS = [0, -1, 4, 2] as const;

/** Only base64url characters (a native regular expression scans faster than a loop over a lookup table). */
const ALPHABET_ONLY = /^[A-Za-z0-9_-]*$/;

/**
 * True when `text` is the canonical base64url encoding of some bytes: only
 * `A-Z a-z 0-9 - _`, no padding, a length some byte count gives, and zero
 * spare bits in the last character. The empty string encodes no bytes.
 */
export function isCanonicalBase64url(text: string): boolean {
  const spare = SPARE_BITS[text.length % 4];
  if (spare < 0 || !ALPHABET_ONLY.test(text)) return false;
  return spare === 0 || (VALUES[text.charCodeAt(text.length - 1)] & ((1 << spare) - 1)) === 0;
}

/** Length of the canonical base64url text of `byteLength` bytes. */
export function base64urlLength(byteLength: number): number {
  return Math.ceil((byteLength * 4) / 3);
}

/**
 * The unsigned integer whose minimal big-endian bytes (no leading zero byte;
 * zero as one zero byte) `text` canonically encodes, as itsdangerous writes a
 * timestamp; `undefined` for any other text or more than `maxBytes` bytes.
 * `maxBytes` is at most 6, so the value stays within Number's exact range.
 */
export function decodeCanonicalUint(text: string, maxBytes: number): number | undefined {
  const length = text.length;
  if (length === 0 || length > base64urlLength(maxBytes) || !isCanonicalBase64url(text)) return undefined;
  let bits = 0;
  for (let i = 0; i < length; i++) bits = bits * 64 + VALUES[text.charCodeAt(i)];
  const spare = SPARE_BITS[length % 4];
  const value = bits / 2 ** spare;
  const byteLength = (length * 6 - spare) / 8;
  // A leading zero byte: another spelling of the shorter encoding.
  if (byteLength > 1 && value < 2 ** (8 * (byteLength - 1))) return undefined;
  return value;
}
