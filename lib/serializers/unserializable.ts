import { SessionSerializationError } from '../session.errors.js';

/**
 * What a session cannot hold, and why, worded once for both serializers (the
 * signed cookie's {@link TaggedJsonSerializer} and the stores'
 * {@link StoreSerializer}): the same value fails with the same
 * {@link SessionSerializationError}, message included, whichever interface
 * saves the session. A session holds JSON's values plus dates and bytes, as
 * Flask's serializers do, so the wording speaks of a JSON form.
 */

/** What to store instead, said after a value of an unsupported class. */
const STORABLE = 'store plain objects, arrays, strings, numbers, booleans, null, Date or Buffer.';

/**
 * The error for `value`, reached through `path` (keys and indexes from the
 * root), which neither serializer can write: a non-finite number, a function,
 * a symbol, a BigInt, `undefined` where a value is required, an invalid Date
 * or an object of another class.
 */
export function unserializableValue(path: ReadonlyArray<string | number>, value: unknown): SessionSerializationError {
  return SessionSerializationError.at(path, problemWith(value));
}

/** The error for an object found inside itself at `path`. */
export function cyclicValue(path: ReadonlyArray<string | number>): SessionSerializationError {
  return SessionSerializationError.at(path, 'the value refers to itself (a cycle).');
}

function problemWith(value: unknown): string {
  switch (typeof value) {
    case 'number':
      return `${value} has no JSON form.`;
    case 'bigint':
      return 'a bigint has no JSON form; store it as a string.';
    case 'undefined':
      return 'undefined has no JSON form.';
    case 'object': {
      if (value instanceof Date) return 'an invalid Date has no JSON form.';
      const kind = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name || 'object';
      return `a ${kind} has no JSON form; ${STORABLE}`;
    }
    default:
      return `a ${typeof value} has no JSON form.`;
  }
}
