import { SessionSerializationError } from '../session.errors.js';
import { Markup } from './markup.js';
import type { TextSerializer } from './text-serializer.interface.js';

const TAG_DICT = ' di';
const TAG_TUPLE = ' t';
const TAG_BYTES = ' b';
const TAG_MARKUP = ' m';
const TAG_UUID = ' u';
const TAG_DATE = ' d';
const TAG_KEYS = new Set([TAG_DICT, TAG_TUPLE, TAG_BYTES, TAG_MARKUP, TAG_UUID, TAG_DATE]);

const NON_ASCII = /[\u0080-\uffff]/g;

/**
 * Flask's `TaggedJSONSerializer` (flask/json/tag.py): compact JSON with sorted
 * keys and ASCII-only escapes, where values JSON has no type for are written
 * as one-key objects whose key starts with a space.
 *
 * | JavaScript | tag | JSON form |
 * |---|---|---|
 * | `Date` | `" d"` | HTTP date, whole seconds, UTC |
 * | `Buffer` / `Uint8Array` | `" b"` | padded base64; read back as `Buffer` |
 * | object with `__html__()` ({@link Markup}) | `" m"` | its HTML; read back as `Markup` |
 * | a one-key object whose key is a tag | `" di"` | the escape, so user data is never read as a tag |
 *
 * Read only: Python tuples (`" t"`) become arrays, UUIDs (`" u"`) become
 * canonical UUID strings. Anything else JSON cannot represent exactly (a
 * function, a symbol, a `Map`, `NaN`, a `BigInt`, a cycle) raises a
 * {@link SessionSerializationError} naming its key instead of being dropped.
 *
 * @publicApi
 */
export class TaggedJsonSerializer implements TextSerializer {
  dumps(value: unknown): string {
    return write(value, '', []);
  }

  loads(text: string): unknown {
    const value: unknown = JSON.parse(text);
    // Every tag key starts with a space, so a document without `" ` has none.
    return text.includes('" ') ? untag(value) : value;
  }
}

function write(value: unknown, path: string, parents: object[]): string {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      if (!Number.isFinite(value)) {
        throw new SessionSerializationError(path || '(root)', `${value} has no JSON form.`);
      }
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      return writeObject(value, path, parents);
    default:
      throw new SessionSerializationError(path || '(root)', `a ${typeof value} has no JSON form.`);
  }
}

function writeObject(value: object, path: string, parents: object[]): string {
  if (parents.includes(value)) {
    throw new SessionSerializationError(path, 'the value refers to itself (a cycle).');
  }
  parents.push(value);
  try {
    if (Array.isArray(value)) {
      const items = value.map((item, i) =>
        item === undefined || typeof item === 'function' ? 'null' : write(item, `${path}[${i}]`, parents),
      );
      return `[${items.join(',')}]`;
    }
    if (value instanceof Date) {
      if (Number.isNaN(value.getTime())) {
        throw new SessionSerializationError(path, 'an invalid Date has no JSON form.');
      }
      return `{"${TAG_DATE}":"${value.toUTCString()}"}`;
    }
    if (value instanceof Uint8Array) {
      const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      return `{"${TAG_BYTES}":"${bytes.toString('base64')}"}`;
    }
    if (typeof (value as { __html__?: unknown }).__html__ === 'function') {
      return `{"${TAG_MARKUP}":${quote(String((value as Markup).__html__()))}}`;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) {
      return writeDict(value as Record<string, unknown>, path, parents);
    }
    if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
      return write((value as { toJSON(): unknown }).toJSON(), path, parents);
    }
    const kind = proto?.constructor?.name ?? 'object';
    throw new SessionSerializationError(
      path,
      `a ${kind} has no JSON form; store plain objects, arrays, strings, numbers, booleans, null, Date or Buffer.`,
    );
  } finally {
    parents.pop();
  }
}

function writeDict(dict: Record<string, unknown>, path: string, parents: object[]): string {
  const keys = Object.keys(dict).filter((key) => dict[key] !== undefined);
  if (keys.length === 1 && TAG_KEYS.has(keys[0])) {
    const key = keys[0];
    return `{"${TAG_DICT}":{${quote(key + '__')}:${write(dict[key], join(path, key), parents)}}}`;
  }
  keys.sort(byCodePoint);
  const members = keys.map((key) => `${quote(key)}:${write(dict[key], join(path, key), parents)}`);
  return `{${members.join(',')}}`;
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** Python's `sort_keys` orders by code point; JavaScript's default sort by UTF-16 unit. */
function byCodePoint(a: string, b: string): number {
  if (a === b) return 0;
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
  }
  return a.length - b.length;
}

/** JSON string with `ensure_ascii`: every non-ASCII character as a `\uXXXX` escape. */
function quote(text: string): string {
  const json = JSON.stringify(text);
  return json.replace(NON_ASCII, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

/** Bottom-up, as Flask's `_untag_scan`: children first, then the object itself. */
function untag(value: unknown): unknown {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = untag(value[i]);
    return value;
  }
  if (value === null || typeof value !== 'object') return value;
  const dict = value as Record<string, unknown>;
  let onlyKey: string | undefined;
  let count = 0;
  for (const key of Object.keys(dict)) {
    const untagged = untag(dict[key]);
    // Plain assignment to "__proto__" would replace the prototype instead.
    if (untagged !== dict[key]) Object.defineProperty(dict, key, { value: untagged, enumerable: true, writable: true, configurable: true });
    onlyKey = key;
    count++;
  }
  if (count !== 1 || !TAG_KEYS.has(onlyKey!)) return dict;
  return fromTag(onlyKey!, dict[onlyKey!]);
}

function fromTag(tag: string, value: unknown): unknown {
  switch (tag) {
    case TAG_DICT: {
      const [key] = Object.keys(value as object);
      return { [key.slice(0, -2)]: (value as Record<string, unknown>)[key] };
    }
    case TAG_TUPLE:
      return value;
    case TAG_BYTES:
      return Buffer.from(String(value), 'base64');
    case TAG_MARKUP:
      return new Markup(String(value));
    case TAG_UUID: {
      const hex = String(value).replace(/[{}-]|^urn:uuid:/gi, '').toLowerCase();
      if (!/^[0-9a-f]{32}$/.test(hex)) throw new TypeError('badly formed hexadecimal UUID string');
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    }
    default: {
      // TAG_DATE: Werkzeug's parse_date gives None for text it cannot read.
      const date = new Date(String(value));
      return Number.isNaN(date.getTime()) ? null : date;
    }
  }
}
