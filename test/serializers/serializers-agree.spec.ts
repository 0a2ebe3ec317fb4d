/**
 * The signed cookie's serializer and the stores' serializer refuse the same
 * values with the same error, and write `undefined` the same way.
 */
import fc from 'fast-check';
import { SessionSerializationError, StoreSerializer, TaggedJsonSerializer } from '../../lib/index.js';

/** Flask's tag keys: a one-key object with one of these as its key is escaped (" di"), so the keys include them often. */
const FLASK_TAGS = [' t', ' u', ' b', ' m', ' d', ' di'];
const tagged = new TaggedJsonSerializer();
const stores = [new StoreSerializer('msgpack'), new StoreSerializer('json')];

/** The error `dumps` throws, or a failure naming the serializer that did not throw. */
function errorOf(dumps: () => unknown, who: string): SessionSerializationError {
  try {
    dumps();
  } catch (error) {
    expect(error).toBeInstanceOf(SessionSerializationError);
    return error as SessionSerializationError;
  }
  throw new Error(`${who} wrote a value it should have refused`);
}

/** Messages of the cookie serializer and of both store formats, for one value. */
function messages(value: Record<string, unknown>): string[] {
  return [errorOf(() => tagged.dumps(value), 'TaggedJsonSerializer').message, ...stores.map((store) => errorOf(() => store.dumps(value), `StoreSerializer(${store.format})`).message)];
}

class Basket {
  items = [];
}

/** Values neither serializer can write, each with the problem the message states. */
const UNSERIALIZABLE: Array<[string, () => unknown, string]> = [
  ['a function', () => () => 1, 'a function has no JSON form.'],
  ['a symbol', () => Symbol('s'), 'a symbol has no JSON form.'],
  ['a BigInt', () => 10n, 'a bigint has no JSON form; store it as a string.'],
  ['NaN', () => NaN, 'NaN has no JSON form.'],
  ['Infinity', () => -Infinity, '-Infinity has no JSON form.'],
  ['an invalid Date', () => new Date('nope'), 'an invalid Date has no JSON form.'],
  ['a Map', () => new Map([[1, 2]]), 'a Map has no JSON form; store plain objects, arrays, strings, numbers, booleans, null, Date or Buffer.'],
  ['a Set', () => new Set(), 'a Set has no JSON form; store'],
  ['a class instance', () => new Basket(), 'a Basket has no JSON form; store'],
  ['a boxed string', () => new String('s'), 'a String has no JSON form; store'],
  ['a RegExp', () => /x/, 'a RegExp has no JSON form; store'],
  ['a Float32Array', () => new Float32Array(2), 'a Float32Array has no JSON form; store'],
];

describe('both serializers refuse the same values with the same error', () => {
  it.each(UNSERIALIZABLE)('%s inside a list', (_kind, make, problem) => {
    const [cookie, ...rest] = messages({ a: [1, make(), 3] });
    expect(cookie).toContain(`Cannot serialize the session value at "a[1]": ${problem}`);
    for (const message of rest) expect(message).toBe(cookie);
  });

  it('the example of the issue: a function in a list', () => {
    expect(() => tagged.dumps({ a: [1, () => 1, 3] })).toThrow(new SessionSerializationError('a[1]', 'a function has no JSON form.'));
    for (const store of stores) {
      expect(() => store.dumps({ a: [1, () => 1, 3] })).toThrow(new SessionSerializationError('a[1]', 'a function has no JSON form.'));
    }
  });

  it('a cycle through a list or a dictionary', () => {
    const cart: Record<string, unknown> = { items: [] };
    (cart.items as unknown[]).push(cart);
    const list: unknown[] = [1];
    list.push({ back: list });
    for (const [value, key] of [[{ cart }, 'cart.items[0]'], [{ list }, 'list[1].back']] as const) {
      const [cookie, ...rest] = messages(value);
      expect(cookie).toBe(`Cannot serialize the session value at "${key}": the value refers to itself (a cycle).`);
      for (const message of rest) expect(message).toBe(cookie);
    }
  });

  /** A JSON-like tree (no Markup, no toJSON: the cookie serializer alone takes those). */
  const leaf = fc.oneof(fc.string(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null));
  const key = fc.oneof(fc.string({ maxLength: 6 }).filter((text) => text !== '__proto__'), fc.constantFrom(...FLASK_TAGS));
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.array(tie('tree'), { maxLength: 4 }), fc.dictionary(key, tie('tree'), { maxKeys: 4 })),
  }));
  /** Where to put the bad value: a step into a new list or dictionary, each with siblings of its own. */
  const step = fc.record({ key, index: fc.nat(4), intoList: fc.boolean(), siblings: fc.array(tree, { maxLength: 3 }) });

  it('anywhere in a value: the same class, message and key', () => {
    fc.assert(
      fc.property(fc.dictionary(key, tree, { maxKeys: 5 }), fc.array(step, { maxLength: 4 }), fc.nat(UNSERIALIZABLE.length), (root, steps, which) => {
        // Build the path of new containers, then put the bad value (or a reference back to the root: a cycle) at its end.
        const path: Array<string | number> = [];
        let container: Record<string, unknown> | unknown[] = root;
        const place = (value: unknown, at: { key: string; index: number }) => {
          if (Array.isArray(container)) {
            const index = Math.min(at.index, container.length);
            container.splice(index, 0, value);
            path.push(index);
          } else {
            Object.defineProperty(container, at.key, { value, enumerable: true, writable: true, configurable: true });
            path.push(at.key);
          }
        };
        for (const { key: at, index, intoList, siblings } of steps) {
          const next: Record<string, unknown> | unknown[] = intoList ? [...siblings] : Object.fromEntries(siblings.map((sibling, i) => [`s${i}`, sibling]));
          place(next, { key: at, index });
          container = next;
        }
        const isCycle = which === UNSERIALIZABLE.length;
        place(isCycle ? root : UNSERIALIZABLE[which][1](), { key: 'bad', index: 0 });
        const [cookie, ...rest] = messages(root);
        const where = SessionSerializationError.at(path, '').key;
        const problem = isCycle ? 'the value refers to itself (a cycle).' : UNSERIALIZABLE[which][2];
        expect(cookie.startsWith(`Cannot serialize the session value at "${where}": ${problem}`)).toBe(true);
        for (const message of rest) expect(message).toBe(cookie);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('both serializers write undefined as JSON does', () => {
  it('leaves out an undefined member and writes an undefined list item as null, at any depth', () => {
    const leaf = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined));
    const key = fc.oneof(fc.string({ maxLength: 6 }).filter((text) => text !== '__proto__'), fc.constantFrom(...FLASK_TAGS));
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('tree'), { maxLength: 4 }), fc.dictionary(key, tie('tree'), { maxKeys: 4 })),
    }));
    fc.assert(
      fc.property(fc.dictionary(key, tree, { maxKeys: 5 }), (value) => {
        const expected = JSON.parse(JSON.stringify(value));
        // Read back, not compared as JSON: a one-key object whose key is a tag (" b") is escaped as Flask does.
        expect(tagged.loads(tagged.dumps(value))).toEqual(expected);
        for (const store of stores) expect(store.loads(store.dumps(value))).toEqual(expected);
      }),
      { numRuns: 500 },
    );
    expect(tagged.dumps({ a: [undefined, 1], b: undefined })).toBe('{"a":[null,1]}');
    expect(tagged.dumps({ ' b': { x: undefined } })).toBe('{" di":{" b__":{}}}');
    expect(stores[1].dumps({ a: [undefined, 1], b: undefined }).toString()).toBe('{"a":[null,1]}');
  });
});
