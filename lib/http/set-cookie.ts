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
  let header = name + '=' + (COOKIE_OCTETS.test(value) ? value : encodeURIComponent(value));
  if (attributes.domain) header += '; Domain=' + domainText(attributes.domain);
  if (attributes.expires) header += '; Expires=' + httpDate(attributes.expires);
  if (attributes.maxAge !== undefined) header += '; Max-Age=' + attributes.maxAge;
  if (attributes.secure || attributes.partitioned) header += '; Secure';
  if (attributes.httpOnly) header += '; HttpOnly';
  if (attributes.path !== undefined) header += '; Path=' + pathText(attributes.path);
  if (attributes.sameSite) header += '; SameSite=' + attributes.sameSite;
  if (attributes.partitioned) header += '; Partitioned';
  return header;
}

// Each response of an app writes the same domain and path, and expiry dates
// that change once a second: the last text of each is kept.
let lastDomain = { domain: '', text: '' };
let lastPath = { path: '', text: '' };
let lastDate = { seconds: NaN, text: '' };

function domainText(domain: string): string {
  if (lastDomain.domain !== domain) {
    const host = domain.split(':')[0].replace(/^\.+/, '');
    lastDomain = { domain, text: domainToASCII(host) || host };
  }
  return lastDomain.text;
}

function pathText(path: string): string {
  if (lastPath.path !== path) lastPath = { path, text: path.replace(PATH_UNSAFE, encodeURIComponent) };
  return lastPath.text;
}

function httpDate(date: Date): string {
  const seconds = Math.floor(date.getTime() / 1000);
  if (lastDate.seconds !== seconds) lastDate = { seconds, text: date.toUTCString() };
  return lastDate.text;
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
