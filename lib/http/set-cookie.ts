import { domainToASCII } from 'node:url';

/** The attributes Werkzeug's `dump_cookie` writes, in its order. */
export interface SetCookieAttributes {
  domain?: string;
  expires?: Date | null;
  maxAge?: number;
  secure?: boolean;
  httpOnly?: boolean;
  path?: string;
  sameSite?: 'Strict' | 'Lax' | 'None';
  partitioned?: boolean;
}

/** RFC 6265 cookie-octet: a value made only of these needs no encoding. */
const COOKIE_OCTETS = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$/;
/** What Werkzeug leaves unquoted in a path, besides letters, digits and `_.-~`. */
const PATH_UNSAFE = /[^A-Za-z0-9_.\-~%!$&'()*+,/:=@]/gu;

/**
 * A `Set-Cookie` header value byte for byte as Werkzeug writes it, attribute
 * order included (Domain, Expires, Max-Age, Secure, HttpOnly, Path, SameSite,
 * Partitioned), so a response matches Flask's. Partitioned implies Secure, as
 * browsers require.
 */
export function formatSetCookie(name: string, value: string, attributes: SetCookieAttributes): string {
  const parts = [`${name}=${COOKIE_OCTETS.test(value) ? value : encodeURIComponent(value)}`];
  if (attributes.domain) {
    const host = attributes.domain.split(':')[0].replace(/^\.+/, '');
    parts.push(`Domain=${domainToASCII(host) || host}`);
  }
  if (attributes.expires) parts.push(`Expires=${attributes.expires.toUTCString()}`);
  if (attributes.maxAge !== undefined) parts.push(`Max-Age=${attributes.maxAge}`);
  if (attributes.secure || attributes.partitioned) parts.push('Secure');
  if (attributes.httpOnly) parts.push('HttpOnly');
  if (attributes.path !== undefined) parts.push(`Path=${attributes.path.replace(PATH_UNSAFE, encodeURIComponent)}`);
  if (attributes.sameSite) parts.push(`SameSite=${attributes.sameSite}`);
  if (attributes.partitioned) parts.push('Partitioned');
  return parts.join('; ');
}

/** Werkzeug's warning text for a cookie over `max_cookie_size`, or undefined when it fits. */
export function cookieSizeWarning(name: string, header: string, valueSize: number, maxSize: number): string | undefined {
  // formatSetCookie writes ASCII only, so characters are bytes.
  const size = header.length;
  if (!maxSize || size <= maxSize) return undefined;
  return (
    `The '${name}' cookie is too large: the value was ${valueSize} bytes but the header required ` +
    `${size - valueSize} extra bytes. The final size was ${size} bytes but the limit is ${maxSize} bytes. ` +
    'Browsers may silently ignore cookies larger than this.'
  );
}
