import { deflateSync } from 'node:zlib';
import fc from 'fast-check';
import { mayCompress } from '../../lib/signing/compression.js';

const compressionWins = (bytes: Buffer) => deflateSync(bytes).length < bytes.length - 1;

const jsonish = fc.oneof(
  fc.string({ maxLength: 400 }),
  fc.string({ unit: fc.constantFrom(...'{}[]":,0123456789abcdef_'.split('')), maxLength: 400 }),
  fc.json({ maxDepth: 3 }),
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a).toString('latin1')),
);

test('never says "cannot win" when zlib would in fact make the payload shorter', () => {
  fc.assert(
    fc.property(jsonish, (text) => {
      const bytes = Buffer.from(text, 'latin1');
      if (!mayCompress(bytes)) expect(compressionWins(bytes)).toBe(false);
    }),
    { numRuns: 5000 },
  );
});

test('skips zlib for the small sessions that dominate traffic', () => {
  expect(mayCompress(Buffer.from('{"count":12,"user":"alice"}'))).toBe(false);
  expect(mayCompress(Buffer.from('{"_permanent":true,"user_id":7}'))).toBe(false);
});

test('lets zlib run when it can win', () => {
  const repetitive = Buffer.from(JSON.stringify({ text: 'x'.repeat(200) }));
  expect(mayCompress(repetitive)).toBe(true);
  expect(compressionWins(repetitive)).toBe(true);
});
