/**
 * The built package (dist/, made by `npm run build`) loads through its
 * exports map both with require() and with import, as one module instance.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** The store entries built so far; each issue adds its own. */
const STORES = ['redis', 'filesystem', 'memcached', 'cache-manager'];

function node(type: 'commonjs' | 'module', code: string): string {
  return execFileSync(process.execPath, [`--input-type=${type}`, '-e', code], { cwd: root, encoding: 'utf8' }).trim();
}

test('package.json exports only the entries that exist', () => {
  const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8'));
  expect(Object.keys(pkg.exports)).toEqual(['.', ...STORES.map((store) => `./${store}`), './package.json']);
  expect(pkg.exports['.']).toMatchObject({ types: './dist/index.d.ts', import: './dist/index.js', require: './dist/index.js' });
});

test("require('nest-session') works", () => {
  const out = node('commonjs', "const m = require('nest-session'); console.log(typeof m.SessionModule.forRoot, typeof m.Session, typeof m.getSession)");
  expect(out).toBe('function function function');
});

test("import('nest-session') works and is the same module as require()", () => {
  const out = node(
    'module',
    "import { createRequire } from 'node:module'; import * as m from 'nest-session';" +
      "const r = createRequire(import.meta.url)('nest-session');" +
      'console.log(typeof m.SecureCookieSessionInterface, m.SessionInterface === r.SessionInterface)',
  );
  expect(out).toBe('function true');
});

test.each(STORES)("require() and import of 'nest-session/%s' both work and share the core", (store) => {
  const cjs = node('commonjs', `const s = require('nest-session/${store}'); const core = require('nest-session'); console.log(Object.entries(s).filter(([n]) => n.endsWith('SessionInterface')).every(([, c]) => c.prototype instanceof core.ServerSideSessionInterface))`);
  const esm = node('module', `import * as s from 'nest-session/${store}'; import * as core from 'nest-session'; console.log(Object.entries(s).filter(([n]) => n.endsWith('SessionInterface')).every(([, c]) => c.prototype instanceof core.ServerSideSessionInterface))`);
  expect([cjs, esm]).toEqual(['true', 'true']);
});

test('the core entry never loads a store driver', () => {
  const out = node('commonjs', "require('nest-session'); console.log(Object.keys(require.cache).some((f) => /node_modules[\\/](ioredis|memjs|cache-manager)[\\/]/.test(f)))");
  expect(out).toBe('false');
});

test('the type declarations keep their documentation', () => {
  const dts = readFileSync(`${root}/dist/interfaces/session-module-options.interface.d.ts`, 'utf8');
  expect(dts).toContain("Default `'session'`");
});
