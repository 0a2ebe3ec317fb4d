import fc from 'fast-check';
import { SessionSerializationError } from '../../lib/index.js';
import { StoreSerializer } from '../../lib/serializers/store-serializer.js';

const msgpack = new StoreSerializer('msgpack');
const json = new StoreSerializer('json');
const primitive = fc.oneof(fc.string(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null));

describe('StoreSerializer', () => {
  it('round-trips flat and nested dictionaries of primitives in both formats', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.oneof(primitive, fc.array(primitive), fc.dictionary(fc.string(), primitive))), (dict) => {
        for (const serializer of [msgpack, json]) {
          const back = serializer.loads(serializer.dumps(dict));
          expect(back).toEqual(JSON.parse(JSON.stringify(dict)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps dates and bytes as such in msgpack, flat or nested', () => {
    const at = new Date(Date.UTC(2026, 10, 22, 7, 0, 0));
    const bytes = Buffer.from([0, 1, 255]);
    for (const dict of [{ at, bytes }, { nested: { at, bytes } }]) {
      expect(msgpack.loads(msgpack.dumps(dict))).toEqual(dict);
    }
    expect(json.loads(json.dumps({ at, bytes }))).toEqual({ at: at.toISOString(), bytes: 'AAH/' });
  });

  it('drops undefined members and keeps a "__proto__" key as data', () => {
    const dict = JSON.parse('{"__proto__": {"admin": true}, "user": "alice"}') as Record<string, unknown>;
    dict.gone = undefined;
    for (const serializer of [msgpack, json]) {
      const back = serializer.loads(serializer.dumps(dict));
      expect(Object.keys(back)).toEqual(['__proto__', 'user']);
      expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
      expect(({} as Record<string, unknown>).admin).toBeUndefined();
    }
  });

  it.each([
    ['a function', { f: () => 1 }, 'f'],
    ['NaN', { n: NaN }, 'n'],
    ['a symbol', { s: Symbol('x') }, 's'],
    ['a Map', { m: new Map() }, 'm'],
    ['an invalid Date', { d: new Date('nope') }, 'd'],
    ['a nested Infinity', { cart: { total: Infinity } }, 'cart.total'],
    ['a function in a list', { a: [1, () => 1, 3] }, 'a[1]'],
    ['a BigInt in a nested list', { a: { b: [[1n]] } }, 'a.b[0][0]'],
  ])('refuses %s at the top level or nested, naming its key', (_kind, dict, key) => {
    for (const serializer of [msgpack, json]) {
      expect(() => serializer.dumps(dict as Record<string, unknown>)).toThrow(SessionSerializationError);
      expect(() => serializer.dumps(dict as Record<string, unknown>)).toThrow(`"${key}"`);
    }
  });
});
