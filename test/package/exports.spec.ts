/**
 * The package's entries: every lib/<name>/index.ts (and lib/index.ts) is an
 * entry of package.json's "exports", of "typesVersions" (for projects on
 * `moduleResolution` node10) and of the published "files", and nothing else is.
 * The built package (dist/, made by `npm run build`) loads through its exports
 * map both with require() and with import, as one module instance.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8'));

/** The store and helper entries: the folders of lib/ with an index.ts. */
const subEntries = readdirSync(`${root}/lib`, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(`${root}/lib/${entry.name}/index.ts`))
  .map((entry) => entry.name)
  .sort();

function node(type: 'commonjs' | 'module', code: string): string {
  return execFileSync(process.execPath, [`--input-type=${type}`, '-e', code], { cwd: root, encoding: 'utf8' }).trim();
}

test('lib/ has sub-entries (the lists below are not vacuous)', () => {
  expect(subEntries).toEqual(expect.arrayContaining(['redis', 'filesystem']));
});

test('package.json "exports" has exactly one entry per lib/<name>/index.ts, built into dist/', () => {
  const { './package.json': manifest, ...entries } = pkg.exports;
  expect(manifest).toBe('./package.json');
  expect(Object.keys(entries).sort()).toEqual(['.', ...subEntries.map((name) => `./${name}`)].sort());
  for (const [key, conditions] of Object.entries(entries)) {
    const dir = key === '.' ? './dist' : `./dist/${key.slice(2)}`;
    const js = `${dir}/index.js`;
    expect([key, conditions]).toEqual([key, { types: `${dir}/index.d.ts`, import: js, require: js, default: js }]);
  }
  expect([pkg.main, pkg.types]).toEqual(['./dist/index.js', './dist/index.d.ts']);
});

test('package.json "typesVersions" maps every sub-entry to its types, for moduleResolution node10', () => {
  expect(pkg.typesVersions).toEqual({
    '*': Object.fromEntries(subEntries.map((name) => [name, [`./dist/${name}/index.d.ts`]])),
  });
});

test('package.json "files" publishes dist/ and the lib/ sources its maps point to', () => {
  expect([...pkg.files].sort()).toEqual(['dist', 'lib']);
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

test.each(subEntries)("require() and import of 'nest-session/%s' both work and share the core", (name) => {
  const check = "Object.entries(s).filter(([n]) => n.endsWith('SessionInterface')).every(([, c]) => c.prototype instanceof core.ServerSideSessionInterface)";
  const cjs = node('commonjs', `const s = require('nest-session/${name}'); const core = require('nest-session'); console.log(Object.keys(s).length > 0, ${check})`);
  const esm = node('module', `import * as s from 'nest-session/${name}'; import * as core from 'nest-session'; console.log(Object.keys(s).length > 0, ${check})`);
  expect([cjs, esm]).toEqual(['true true', 'true true']);
});

test('the core entry never loads a store driver (an optional peer dependency)', () => {
  const drivers: string[] = Object.keys(pkg.peerDependenciesMeta);
  expect(drivers).toContain('ioredis');
  const out = node(
    'commonjs',
    `require('nest-session'); const drivers = ${JSON.stringify(drivers)};` +
      "console.log(JSON.stringify(Object.keys(require.cache).filter((f) => drivers.some((d) => f.includes(`/node_modules/${d}/`)))))",
  );
  expect(out).toBe('[]');
});

test('the type declarations keep their documentation', () => {
  const dts = readFileSync(`${root}/dist/interfaces/session-module-options.interface.d.ts`, 'utf8');
  expect(dts).toContain("Default `'session'`");
});
