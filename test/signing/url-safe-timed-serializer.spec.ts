import { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import {
  BadData,
  BadPayload,
  BadSignature,
  BadTimeSignature,
  SignatureExpired,
  Signer,
  TaggedJsonSerializer,
  UrlSafeTimedSerializer,
} from '../../lib/index.js';

// flask-behaviour.md §3, verified against itsdangerous.
const VECTOR = {
  secret: 'secret',
  salt: 'cookie-session',
  time: 1795317842,
  derivedKey: '76bf4b286c860f1c747b43f516ab8a80afc83484',
  token: 'eyJhIjoxfQ.awJgUg.zbOhon0GuC2Ip8bkb2y66kEaRSw',
  djangoConcatSignature: 'gq_ecOz8Tqi2WlYWy2fvbIOcRIg',
};

function flaskSerializer(keys: string | string[], now = () => VECTOR.time) {
  return new UrlSafeTimedSerializer(keys, { salt: 'cookie-session', serializer: new TaggedJsonSerializer(), now });
}

describe('itsdangerous test vector', () => {
  it('derives the key with hmac(secret, salt)', () => {
    const signer = new Signer(VECTOR.secret, { salt: VECTOR.salt });
    expect(signer.deriveKey(Buffer.from(VECTOR.secret)).toString('hex')).toBe(VECTOR.derivedKey);
  });

  it('signs {"a":1} at the vector time into the exact token', () => {
    expect(flaskSerializer(VECTOR.secret).dumps({ a: 1 })).toBe(VECTOR.token);
  });

  it('loads the token back', () => {
    expect(flaskSerializer(VECTOR.secret).loads(VECTOR.token, 60)).toEqual({ a: 1 });
  });

  it('gives the django-concat signature with that derivation', () => {
    const signer = new Signer(VECTOR.secret, { salt: VECTOR.salt, keyDerivation: 'django-concat' });
    expect(signer.getSignature('eyJhIjoxfQ.awJgUg')).toBe(VECTOR.djangoConcatSignature);
  });

  it('supports concat and none derivations as itsdangerous defines them', () => {
    const concat = new Signer('k', { salt: 's', keyDerivation: 'concat' });
    const none = new Signer('k', { salt: 's', keyDerivation: 'none' });
    const expected = (key: Buffer) => createHmac('sha1', key).update('v').digest('base64url');
    expect(concat.getSignature('v')).toBe(expected(createHash('sha1').update('sk').digest()));
    expect(none.getSignature('v')).toBe(expected(Buffer.from('k')));
  });

  it('rejects an unknown key derivation', () => {
    expect(() => new Signer('k', { salt: 's', keyDerivation: 'rot13' as never })).toThrow('Unknown key derivation method');
  });

  it('rejects a separator from the base64url alphabet', () => {
    expect(() => new Signer('k', { salt: 's', separator: 'a' })).toThrow(TypeError);
  });
});


describe('UrlSafeTimedSerializer', () => {
  it('compresses a payload when that is shorter, with a leading "."', () => {
    const token = flaskSerializer('k').dumps({ text: 'x'.repeat(200) });
    expect(token.startsWith('.eJ')).toBe(true);
    expect(flaskSerializer('k').loads(token)).toEqual({ text: 'x'.repeat(200) });
  });

  it('hands out a new object on every load of a remembered token, nested values included', () => {
    const serializer = flaskSerializer(VECTOR.secret);
    for (const value of [{ user: 'alice', count: 1 }, { cart: { apple: 2 } }]) {
      const token = serializer.dumps(value);
      const first = serializer.loads(token) as Record<string, unknown>;
      first.user = 'mallory';
      first.added = true;
      if (first.cart) (first.cart as Record<string, number>).apple = 99;
      const second = serializer.loads(token);
      expect(second).toEqual(value);
      expect(second).not.toBe(first);
    }
  });

  it('signs with the last key and verifies with every key', () => {
    const old = flaskSerializer('old');
    const rotated = flaskSerializer(['old', 'new']);
    const onlyNew = flaskSerializer('new');
    expect(rotated.loads(old.dumps({ a: 1 }))).toEqual({ a: 1 });
    expect(onlyNew.loads(rotated.dumps({ b: 2 }))).toEqual({ b: 2 });
    expect(() => old.loads(rotated.dumps({ b: 2 }))).toThrow(BadSignature);
  });

  it('raises SignatureExpired past max age and for a future timestamp', () => {
    const token = flaskSerializer('k', () => 1000).dumps({ a: 1 });
    expect(flaskSerializer('k', () => 1010).loads(token, 10)).toEqual({ a: 1 });
    expect(() => flaskSerializer('k', () => 1011).loads(token, 10)).toThrow('Signature age 11 > 10 seconds');
    expect(() => flaskSerializer('k', () => 999).loads(token, 10)).toThrow(SignatureExpired);
    expect(() => flaskSerializer('k', () => 999).loads(token, 10)).toThrow('Signature age -1 < 0 seconds');
  });

  it('tells the kinds of bad tokens apart', () => {
    const s = flaskSerializer('k');
    expect(() => s.loads('nodots')).toThrow(BadTimeSignature);
    expect(() => s.loads(VECTOR.token)).toThrow(BadSignature);
    const signer = new Signer('k', { salt: 'cookie-session' });
    expect(() => s.loads(signer.sign('eyJhIjoxfQ'))).toThrow('timestamp missing');
    expect(() => s.loads(signer.sign('eyJhIjoxfQ.!!'))).toThrow('Malformed timestamp');
    expect(() => s.loads(signer.sign('bm90IGpzb24.awJgUg'))).toThrow(BadPayload);
    expect(() => s.loads(signer.sign('.bm90IHpsaWI.awJgUg'))).toThrow(BadPayload);
  });

  it('never accepts a token that differs from a valid one in any character', () => {
    const s = flaskSerializer('k');
    const token = s.dumps({ user: 'alice', roles: ['admin'] });
    fc.assert(
      fc.property(fc.nat(token.length - 1), fc.integer({ min: 32, max: 126 }), (at, code) => {
        const changed = token.slice(0, at) + String.fromCharCode(code) + token.slice(at + 1);
        fc.pre(changed !== token);
        expect(() => s.loads(changed)).toThrow(BadData);
      }),
      { numRuns: 2000 },
    );
  });

  it('never accepts a truncated, extended or spliced token', () => {
    const s = flaskSerializer('k');
    const token = s.dumps({ user: 'alice' });
    fc.assert(
      fc.property(fc.nat(token.length), fc.nat(token.length), fc.string({ maxLength: 4 }), (from, to, insert) => {
        const [a, b] = from <= to ? [from, to] : [to, from];
        const changed = token.slice(0, a) + insert + token.slice(b);
        fc.pre(changed !== token);
        expect(() => s.loads(changed)).toThrow(BadData);
      }),
      { numRuns: 2000 },
    );
  });
});
