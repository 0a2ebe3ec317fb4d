/**
 * `npm run typecheck` as part of the suite, so that CI runs it: lib, tests,
 * sample and bench under strict. The sample imports the package by name, which
 * resolves to dist/: `npm test` builds it first.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('the project type-checks: tsc -p tsconfig.json --noEmit', async () => {
  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  const { stdout, stderr, code } = await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.json', '--noEmit'], { cwd: root }).then(
    (result) => ({ ...result, code: 0 }),
    (error: { stdout: string; stderr: string; code: number }) => error,
  );
  expect(`${stdout}${stderr}`).toBe('');
  expect(code).toBe(0);
}, 180_000);
