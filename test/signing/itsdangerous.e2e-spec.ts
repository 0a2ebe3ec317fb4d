/**
 * Canonical-only verification keeps Flask compatibility: every token the real
 * itsdangerous makes (Debian's python3-itsdangerous, Flask's tagged JSON)
 * verifies, across digests, key rotations, compressed and plain payloads,
 * timestamps of every width, and signed values as Flask-Session signs sids.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Signer, TaggedJsonSerializer, UrlSafeTimedSerializer } from '../../lib/index.js';

type Made =
  | { kind: 'timed'; keys: string[]; digest: string; now: number; token: string; json: string }
  | { kind: 'signer'; keys: string[]; digest: string; salt: string; token: string; value: string };

const SCRIPT = fileURLToPath(new URL('./itsdangerous_tokens.py', import.meta.url));
const PYTHON = process.env.FLASK_PYTHON ?? '/usr/bin/python3';

function itsdangerousTokens(seed: number, count: number): Made[] {
  const run = spawnSync(PYTHON, [SCRIPT], { input: JSON.stringify({ seed, count }), encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  if (run.error || run.status !== 0) {
    const reason = run.error?.message ?? run.stderr;
    if (/No module named '?(flask|itsdangerous)/.test(reason) || (run.error as NodeJS.ErrnoException)?.code === 'ENOENT') {
      throw new Error(`This test needs Debian's Flask: run "sudo apt-get install python3-flask" (or set FLASK_PYTHON to a python3 that has it). ${reason}`);
    }
    throw new Error(`itsdangerous_tokens.py failed: ${reason}`);
  }
  return JSON.parse(run.stdout) as Made[];
}

test('every token itsdangerous makes verifies, with the value it signed', () => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  const tokens = itsdangerousTokens(seed, 1500);
  let compressed = 0;
  const widths = new Set<number>();
  for (const made of tokens) {
    const context = `seed ${seed}: ${JSON.stringify(made)}`;
    if (made.kind === 'timed') {
      const serializer = new UrlSafeTimedSerializer(made.keys, {
        salt: 'cookie-session',
        digestMethod: made.digest,
        serializer: new TaggedJsonSerializer(),
        now: () => made.now,
      });
      expect([context, serializer.loads(made.token, 0)]).toEqual([context, JSON.parse(made.json)]);
      if (made.token.startsWith('.')) compressed++;
      widths.add(made.token.split('.').at(-2)!.length);
    } else {
      const signer = new Signer(made.keys, { salt: made.salt, digestMethod: made.digest });
      expect([context, signer.unsign(made.token)]).toEqual([context, made.value]);
    }
  }
  expect(tokens.length).toBe(3000);
  expect(compressed).toBeGreaterThan(100);
  // Timestamps of 1 to 6 bytes: 2, 3, 4, 6, 7 and 8 characters.
  expect([...widths].sort()).toEqual([2, 3, 4, 6, 7, 8]);
});
