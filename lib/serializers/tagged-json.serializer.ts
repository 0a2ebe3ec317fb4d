import { Markup } from './markup.js';
import type { TextSerializer } from './text-serializer.interface.js';
import { cyclicValue, unserializableValue } from './unserializable.js';

const TAG_DICT = ' di';
const TAG_TUPLE = ' t';
const TAG_BYTES = ' b';
const TAG_MARKUP = ' m';
const TAG_UUID = ' u';
const TAG_DATE = ' d';
const TAG_KEYS = new Set([TAG_DICT, TAG_TUPLE, TAG_BYTES, TAG_MARKUP, TAG_UUID, TAG_DATE]);

const NON_ASCII = /[\u0080-\uffff]/g;
const HAS_NON_ASCII = /[\u0080-\uffff]/;
const SURROGATE = /[\ud800-\udfff]/;

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
 * canonical UUID strings. Other objects are written through their `toJSON()`.
 *
 * Anything else JSON cannot represent exactly (a function, a symbol, a
 * `BigInt`, `NaN` or `Infinity`, an invalid `Date`, a `Map` or another
 * class, a cycle), wherever it is in the value, arrays included, raises a
 * {@link SessionSerializationError} naming its key instead of being dropped:
 * the same error, message included, as {@link StoreSerializer} raises for
 * the same value. As in JSON (and in `StoreSerializer`), an `undefined`
 * member of an object is left out and an `undefined` item of an array is
 * written as `null`.
 *
 * @publicApi
 */
export class TaggedJsonSerializer implements TextSerializer {
  dumps(value: unknown): string {
    ancestors.length = 0; // a previous call that threw may have left some
    return writeFlatDict(value) ?? write(value, []);
  }

  loads(text: string): unknown {
    const value: unknown = JSON.parse(text);
    // Every tag key starts with a space, so a document without `" ` has none.
    return text.includes('" ') ? untag(value) : value;
  }
}

/**
 * `path` holds the keys and indexes from the root to `value`, pushed and
 * popped as the writer descends; it becomes text only for an error message.
 */
function write(value: unknown, path: Array<string | number>): string {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      if (!Number.isFinite(value)) throw unserializableValue(path, value);
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      return writeObject(value, path);
    default:
      throw unserializableValue(path, value);
  }
}

/** The objects being written, from the root down: a value found among them is a cycle. */
const ancestors: object[] = [];

function writeObject(value: object, path: Array<string | number>): string {
  if (ancestors.includes(value)) {
    ancestors.length = 0;
    throw cyclicValue(path);
  }
  ancestors.push(value);
  const text = writeNonCyclic(value, path);
  ancestors.pop();
  return text;
}

function writeNonCyclic(value: object, path: Array<string | number>): string {
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      path.push(i);
      // `undefined` is null in a list, as in JSON; a function or symbol is refused like anywhere else.
      out += (i ? ',' : '') + (item === undefined ? 'null' : write(item, path));
      path.pop();
    }
    return out + ']';
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw unserializableValue(path, value);
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
    return writeDict(value as Record<string, unknown>, path);
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return write((value as { toJSON(): unknown }).toJSON(), path);
  }
  throw unserializableValue(path, value);
}

function writeDict(dict: Record<string, unknown>, path: Array<string | number>): string {
  const keys = Object.keys(dict).filter((key) => dict[key] !== undefined);
  if (keys.length === 1 && TAG_KEYS.has(keys[0])) {
    const key = keys[0];
    path.push(key);
    const inner = write(dict[key], path);
    path.pop();
    return `{"${TAG_DICT}":{${quote(key + '__')}:${inner}}}`;
  }
  // UTF-16 order (the default) is code point order unless a key has a surrogate pair.
  if (keys.some((key) => SURROGATE.test(key))) keys.sort(byCodePoint);
  else sortKeys(keys);
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    path.push(key);
    out += (i ? ',' : '') + quote(key) + ':' + write(dict[key], path);
    path.pop();
  }
  return out + '}';
}


/**
 * Keys that JavaScript objects order before all others, numerically (array indices, up to 2^32 - 2: ten digits);
 * Python sorts them as text. A ten-digit key past that bound takes the general writer too, which is merely slower.
 */
const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/;

/**
 * The usual session, a dictionary of strings, numbers, booleans and nulls,
 * written by `JSON.stringify` over its keys in sorted order: the same text as
 * {@link writeDict}, in a fraction of the time. `undefined` when anything
 * needs the general writer (a nested or undefined value, a tag-like key, a
 * key that objects would reorder, a number JSON cannot hold, a surrogate in a key).
 */
function writeFlatDict(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return undefined;
  const dict = value as Record<string, unknown>;
  const keys = Object.keys(dict);
  if (keys.length === 1 && TAG_KEYS.has(keys[0])) return undefined;
  for (const key of keys) {
    const item = dict[key];
    const type = typeof item;
    const isPrimitive = type === 'string' || type === 'boolean' || item === null || (type === 'number' && Number.isFinite(item));
    if (!isPrimitive || ARRAY_INDEX.test(key) || SURROGATE.test(key) || key === '__proto__') return undefined;
  }
  sortKeys(keys);
  const sorted: Record<string, unknown> = {};
  for (const key of keys) sorted[key] = dict[key];
  return asciiOnly(JSON.stringify(sorted));
}

/**
 * `keys.sort()` (UTF-16 order), by insertion for the few keys of a session:
 * `Array.prototype.sort` sets up about 1 KB of working state on every call.
 */
function sortKeys(keys: string[]): void {
  if (keys.length > 16) {
    keys.sort();
    return;
  }
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i];
    let j = i - 1;
    for (; j >= 0 && keys[j] > key; j--) keys[j + 1] = keys[j];
    keys[j + 1] = key;
  }
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

/** JSON string with `ensure_ascii`. */
function quote(text: string): string {
  return asciiOnly(JSON.stringify(text));
}

/** JSON text with `ensure_ascii`: every non-ASCII character as a `\uXXXX` escape. */
function asciiOnly(json: string): string {
  if (!HAS_NON_ASCII.test(json)) return json;
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
