import { Packr, Unpackr } from 'msgpackr';
import { cyclicValue, unserializableValue } from './unserializable.js';

/** How server-side stores encode a session (Flask-Session's `SESSION_SERIALIZATION_FORMAT`). */
export type SerializationFormat = 'msgpack' | 'json';

/**
 * Flask-Session's serializer: the session dict as MessagePack (msgspec's
 * layout: maps, bins, timestamps) or as JSON, with no type tags. Reading tries
 * the configured format, then the other, so a store can switch formats.
 *
 * Values: strings, numbers, booleans, null, arrays, plain objects, `Date` and
 * `Buffer`/`Uint8Array`. In JSON a `Date` becomes an ISO string and bytes a
 * base64 string, as msgspec writes them; MessagePack keeps both types.
 *
 * Anything else (a function, a symbol, a `BigInt`, `NaN` or `Infinity`, an
 * invalid `Date`, a `Map` or another class, a cycle), wherever it is in the
 * value, arrays included, raises a {@link SessionSerializationError} naming
 * its key: the same error, message included, as {@link TaggedJsonSerializer}
 * raises for the same value. As in JSON (and in `TaggedJsonSerializer`), an
 * `undefined` member of an object is left out and an `undefined` item of an
 * array is stored as `null`. Unlike the cookie's serializer, a store keeps no
 * `Markup` and calls no `toJSON()`: Flask-Session's msgspec has neither.
 */
export class StoreSerializer {
  // No records extension: Python's msgpack must read what we write.
  private readonly packr = new Packr({ useRecords: false, variableMapSize: true });
  // Maps as Map: msgpackr's objects rename a "__proto__" key to "__proto_"; see fromMsgpackValue.
  private readonly unpackr = new Unpackr({ mapsAsObjects: false });

  constructor(readonly format: SerializationFormat = 'msgpack') {}

  dumps(data: Record<string, unknown>): Buffer {
    const storable = isFlatStorable(data) ? data : toStorable(data, [], []);
    if (this.format === 'msgpack') return this.packr.pack(storable);
    return Buffer.from(JSON.stringify(storable, jsonReplacer), 'utf8');
  }

  /** Throws when the bytes are neither format's encoding of a dict. */
  loads(bytes: Buffer): Record<string, unknown> {
    const attempts = this.format === 'msgpack' ? [this.fromMsgpack, this.fromJson] : [this.fromJson, this.fromMsgpack];
    for (const attempt of attempts) {
      try {
        const value = attempt.call(this, bytes);
        if (value !== null && typeof value === 'object' && !Array.isArray(value) && !Buffer.isBuffer(value)) {
          return value as Record<string, unknown>;
        }
      } catch {
        // try the other format
      }
    }
    throw new Error('Failed to deserialize session data');
  }

  private fromMsgpack(bytes: Buffer): unknown {
    return fromMsgpackValue(this.unpackr.unpack(bytes));
  }

  private fromJson(bytes: Buffer): unknown {
    return JSON.parse(bytes.toString('utf8'));
  }
}

/** Decoded maps become plain objects, every key kept as data (a non-string key as its text, as JSON would). */
function fromMsgpackValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromMsgpackValue);
  if (!(value instanceof Map)) return value;
  const record: Record<string, unknown> = {};
  for (const [key, item] of value) {
    setEntry(record, String(key), fromMsgpackValue(item));
  }
  return record;
}

/** `record[key] = value`, where a "__proto__" key becomes data instead of replacing the prototype. */
function setEntry(record: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  else record[key] = value;
}

function jsonReplacer(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  if (raw instanceof Uint8Array) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
  return value;
}

/**
 * True for the usual session, a plain object of strings, finite numbers,
 * booleans, nulls, bytes and valid dates: both formats hold it as it is, so it
 * needs neither the checks nor the copy of {@link toStorable}.
 */
function isFlatStorable(value: Record<string, unknown>): boolean {
  if (Object.getPrototypeOf(value) !== Object.prototype) return false;
  for (const key of Object.keys(value)) {
    const item = value[key];
    switch (typeof item) {
      case 'string':
      case 'boolean':
        continue;
      case 'number':
        if (Number.isFinite(item)) continue;
        return false;
      case 'object':
        if (item === null || item instanceof Uint8Array || (item instanceof Date && !Number.isNaN(item.getTime()))) continue;
        return false;
      default:
        return false;
    }
  }
  return true;
}

/**
 * A copy of `value` that both formats can hold, or a SessionSerializationError
 * naming the key that cannot be stored. Undefined members are dropped (as JSON
 * does; msgpackr would write an extension type Python cannot read).
 */
function toStorable(value: unknown, path: Array<string | number>, ancestors: object[]): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (Number.isFinite(value)) return value;
      throw unserializableValue(path, value);
    case 'object':
      break;
    default:
      throw unserializableValue(path, value);
  }
  if (value === null || value instanceof Uint8Array) return value;
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw unserializableValue(path, value);
    return value;
  }
  if (ancestors.includes(value as object)) throw cyclicValue(path);
  ancestors.push(value as object);
  let copy: unknown;
  if (Array.isArray(value)) {
    copy = value.map((item, i) => {
      path.push(i);
      const stored = item === undefined ? null : toStorable(item, path, ancestors);
      path.pop();
      return stored;
    });
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) throw unserializableValue(path, value);
    const record: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value as object)) {
      if (item === undefined) continue;
      path.push(key);
      setEntry(record, key, toStorable(item, path, ancestors));
      path.pop();
    }
    copy = record;
  }
  ancestors.pop();
  return copy;
}
