import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { HmacKey } from '../../lib/signing/hmac-key.js';

const reference = (digest: string, key: Buffer, message: string) => createHmac(digest, key).update(message, 'utf8').digest('base64url');

describe('HmacKey', () => {
  it.each(['sha1', 'sha256', 'sha512', 'md5', 'sha384', 'SHA1'])('%s: equals createHmac for any key and message', (digest) => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 200 }), (key, message) => {
        const bytes = Buffer.from(key);
        expect(new HmacKey(digest, bytes).sign(message)).toBe(reference(digest, bytes, message));
      }),
      { numRuns: 300 },
    );
  });

  it('keys at and around the block size (hashed when longer, padded when shorter)', () => {
    for (const length of [0, 1, 63, 64, 65, 127, 128, 129, 1000]) {
      const key = Buffer.alloc(length, 0xab);
      for (const digest of ['sha1', 'sha512']) {
        expect(new HmacKey(digest, key).sign('value.timestamp')).toBe(reference(digest, key, 'value.timestamp'));
      }
    }
  });

  it('messages longer than the shared buffer and hashes it has no block size for', () => {
    const key = Buffer.from('secret');
    const long = 'é'.repeat(20_000);
    expect(new HmacKey('sha1', key).sign(long)).toBe(reference('sha1', key, long));
    expect(new HmacKey('sha3-256', key).sign('value')).toBe(reference('sha3-256', key, 'value'));
  });

  it('encodes a lone surrogate as createHmac does (U+FFFD)', () => {
    const key = Buffer.from('secret');
    expect(new HmacKey('sha1', key).sign('a\ud800b')).toBe(reference('sha1', key, 'a\ud800b'));
  });

  it('one key signing after another does not leak state between them', () => {
    const first = new HmacKey('sha1', Buffer.from('first'));
    const second = new HmacKey('sha512', Buffer.from('second'));
    const long = 'x'.repeat(5000);
    expect(first.sign(long)).toBe(reference('sha1', Buffer.from('first'), long));
    expect(second.sign('short')).toBe(reference('sha512', Buffer.from('second'), 'short'));
    expect(first.sign('short')).toBe(reference('sha1', Buffer.from('first'), 'short'));
  });
});
