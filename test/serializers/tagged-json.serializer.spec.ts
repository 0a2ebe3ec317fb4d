import fc from 'fast-check';
import { Markup, SessionSerializationError, TaggedJsonSerializer } from '../../lib/index.js';

const serializer = new TaggedJsonSerializer();

describe('TaggedJsonSerializer.dumps', () => {
  it('writes compact JSON with sorted keys and ASCII escapes (verified against Flask)', () => {
    expect(serializer.dumps({ b: 1, a: 'é' })).toBe('{"a":"\\u00e9","b":1}');
  });

  it('escapes a one-key object whose key is a tag (verified against Flask)', () => {
    expect(serializer.dumps({ t: [1, 2], x: { ' t': 'a' } })).toBe('{"t":[1,2],"x":{" di":{" t__":"a"}}}');
  });

  it('sorts by code point as Python does, integer-like keys included', () => {
    expect(serializer.dumps({ b: 1, '10': 2, '9': 3, '\u{1F600}': 4, '\uffff': 5 })).toBe(
      '{"10":2,"9":3,"b":1,"\\uffff":5,"\\ud83d\\ude00":4}',
    );
  });

  it('tags Date as an HTTP date, bytes as padded base64 and Markup as HTML', () => {
    expect(serializer.dumps({ d: new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 678)) })).toBe('{"d":{" d":"Thu, 02 Jan 2020 03:04:05 GMT"}}');
    expect(serializer.dumps({ b: Buffer.from([0xff]) })).toBe('{"b":{" b":"/w=="}}');
    expect(serializer.dumps({ b: new Uint8Array([1, 2, 3]) })).toBe('{"b":{" b":"AQID"}}');
    expect(serializer.dumps({ m: new Markup('<b>x</b>') })).toBe('{"m":{" m":"<b>x</b>"}}');
  });

  it('drops undefined members as JSON does and keeps null', () => {
    expect(serializer.dumps({ a: undefined, b: null, c: [undefined] })).toBe('{"b":null,"c":[null]}');
  });

  it('uses toJSON of objects that define it', () => {
    class Money {
      toJSON() {
        return '1.50 EUR';
      }
    }
    expect(serializer.dumps({ price: new Money() })).toBe('{"price":"1.50 EUR"}');
  });

  it.each([
    ['a function', { f: () => 1 }, 'f'],
    ['a symbol', { s: Symbol('x') }, 's'],
    ['NaN', { n: NaN }, 'n'],
    ['Infinity', { deep: { list: [1, Infinity] } }, 'deep.list[1]'],
    ['a BigInt', { big: 10n }, 'big'],
    ['a Map', { m: new Map() }, 'm'],
    ['an invalid Date', { d: new Date('nope') }, 'd'],
    ['a function in a list', { a: [1, () => 1, 3] }, 'a[1]'],
    ['a symbol in a list', { a: [Symbol('x')] }, 'a[0]'],
    ['a BigInt in a nested list', { a: { b: [[1n]] } }, 'a.b[0][0]'],
  ])('refuses %s, naming its key', (_kind, value, key) => {
    expect(() => serializer.dumps(value)).toThrow(SessionSerializationError);
    expect(() => serializer.dumps(value)).toThrow(`"${key}"`);
  });

  it('writes a flat dictionary (its fast path) exactly as the general writer writes it inside a list', () => {
    const primitive = fc.oneof(fc.string({ unit: 'binary' }), fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined));
    const key = fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom(' di', ' t', '10', '9', '1000000000', '4294967294', '4294967295', '__proto__', 'constructor', '0', '-1'));
    fc.assert(
      fc.property(fc.dictionary(key, primitive, { maxKeys: 8 }), (dict) => {
        let alone: string;
        try {
          alone = serializer.dumps(dict);
        } catch (error) {
          expect(() => serializer.dumps([dict])).toThrow(SessionSerializationError);
          return;
        }
        // Inside a list the dictionary always goes through the general writer.
        expect(`[${alone}]`).toBe(serializer.dumps([dict]));
      }),
      { numRuns: 2000 },
    );
  });

  it('sorts keys that objects keep as array indices (up to 4294967294) as text, as Python does', () => {
    expect(serializer.dumps({ '-a': 1, '1000000000': 2 })).toBe('{"-a":1,"1000000000":2}');
    expect(serializer.dumps({ '4294967294': 1, '10': 2, '-': 3 })).toBe('{"-":3,"10":2,"4294967294":1}');
  });

  it('orders any number of keys as a sort of the keys does', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'grapheme-ascii' }), fc.integer(), { maxKeys: 40 }), (dict) => {
        const sorted = Object.keys(dict).sort();
        fc.pre(!(sorted.length === 1 && sorted[0].startsWith(' '))); // a lone tag-like key is escaped instead
        const expected = '{' + sorted.map((key) => `${JSON.stringify(key)}:${dict[key]}`).join(',') + '}';
        expect(serializer.dumps(dict)).toBe(expected);
        expect(serializer.dumps({ nested: dict })).toBe(`{"nested":${expected}}`);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a cycle, naming its key', () => {
    const cart: Record<string, unknown> = { items: [] };
    (cart.items as unknown[]).push(cart);
    expect(() => serializer.dumps({ cart })).toThrow(/"cart\.items\[0\]".*cycle/);
  });
});

describe('TaggedJsonSerializer.loads', () => {
  it('reads every tag Flask writes', () => {
    const text =
      '{"b":{" b":"AP9oZWxsbw=="},"d":{" d":"Thu, 02 Jan 2020 03:04:05 GMT"},"e":{" di":{" t__":"a"}},' +
      '"m":{" m":"<b>x</b>"},"t":{" t":[1,2]},"u":{" u":"12345678123456781234567812345678"}}';
    const value = serializer.loads(text) as Record<string, unknown>;
    expect(value.b).toEqual(Buffer.from('\x00\xffhello', 'latin1'));
    expect(value.d).toEqual(new Date(Date.UTC(2020, 0, 2, 3, 4, 5)));
    expect(value.e).toEqual({ ' t': 'a' });
    expect(value.m).toEqual(new Markup('<b>x</b>'));
    expect(value.t).toEqual([1, 2]);
    expect(value.u).toBe('12345678-1234-5678-1234-567812345678');
  });

  it('untags bottom-up, so an escaped tag inside a tag stays data', () => {
    expect(serializer.loads('{"x":{" di":{" di__":{" di":{" b__":"y"}}}}}')).toEqual({ x: { ' di': { ' b': 'y' } } });
  });

  it('round-trips values through dumps and loads', () => {
    const value = {
      text: 'héllo ✓ \u2028',
      n: 1.5,
      list: [1, 'a', null, true, { z: 1 }],
      when: new Date(Date.UTC(2024, 5, 1)),
      raw: Buffer.from('bytes'),
      escape: { ' d': 'not a date' },
    };
    expect(serializer.loads(serializer.dumps(value))).toEqual(value);
  });

  it('keeps a "__proto__" key as data without touching prototypes', () => {
    const value = serializer.loads('{"__proto__":{"polluted":true},"a":{" b":"AA=="}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(value)).toEqual(['__proto__', 'a']);
  });

  it('reads an unparseable date as null, like Werkzeug', () => {
    expect(serializer.loads('{"d":{" d":"not a date"}}')).toEqual({ d: null });
  });
});
