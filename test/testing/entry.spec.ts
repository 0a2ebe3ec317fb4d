/**
 * The built `nest-session/testing` entry (dist/, made by `npm run build`):
 * it loads no test library at run time (it is handed the agent), and the core
 * entry loads neither it nor any test library.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const TEST_LIBRARIES = ['supertest', 'superagent', 'cookiejar', 'light-my-request', 'jest', '@nestjs/testing'];

/** The files under node_modules of `libraries` that a fresh Node process has loaded after running `code`. */
function loaded(code: string, libraries: string[]): string[] {
  const out = execFileSync(
    process.execPath,
    [
      '--input-type=commonjs',
      '-e',
      `${code}; const libs = ${JSON.stringify(libraries)};` +
        'console.log(JSON.stringify(Object.keys(require.cache).filter((f) => libs.some((l) => f.includes(`/node_modules/${l}/`)))))',
    ],
    { cwd: root, encoding: 'utf8' },
  );
  return JSON.parse(out.trim());
}

test('the testing entry exports sessionTransaction, with require() and import', () => {
  const cjs = execFileSync(process.execPath, ['--input-type=commonjs', '-e', "console.log(typeof require('nest-session/testing').sessionTransaction)"], { cwd: root, encoding: 'utf8' });
  const esm = execFileSync(process.execPath, ['--input-type=module', '-e', "import { sessionTransaction } from 'nest-session/testing'; console.log(typeof sessionTransaction)"], { cwd: root, encoding: 'utf8' });
  expect([cjs.trim(), esm.trim()]).toEqual(['function', 'function']);
});

test('the testing entry loads no test library at run time; a supertest agent is handed to it', () => {
  // The probe is not vacuous: loading supertest itself shows up.
  expect(loaded("require('supertest')", TEST_LIBRARIES)).toEqual(expect.arrayContaining([expect.stringContaining('/node_modules/supertest/')]));
  expect(loaded("require('nest-session/testing')", TEST_LIBRARIES)).toEqual([]);
});

test('the testing entry imports only Node, the cookie package and the core, as its built files show', () => {
  const dir = `${root}/dist/testing`;
  const specifiers = readdirSync(dir)
    .filter((file) => file.endsWith('.js'))
    .flatMap((file) => [...readFileSync(`${dir}/${file}`, 'utf8').matchAll(/^import\s[^'"]*['"]([^'"]+)['"]/gm)].map((match) => match[1]));
  expect(specifiers.length).toBeGreaterThan(0);
  expect(specifiers.filter((specifier) => !specifier.startsWith('node:') && !specifier.startsWith('.') && specifier !== 'cookie')).toEqual([]);
});

test('the core entry loads neither the testing entry nor a test library', () => {
  expect(loaded("require('nest-session')", TEST_LIBRARIES)).toEqual([]);
  const out = execFileSync(
    process.execPath,
    ['--input-type=commonjs', '-e', "require('nest-session'); console.log(Object.keys(require.cache).some((f) => f.includes('/dist/testing/')))"],
    { cwd: root, encoding: 'utf8' },
  );
  expect(out.trim()).toBe('false');
});
