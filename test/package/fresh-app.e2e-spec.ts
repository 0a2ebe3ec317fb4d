/**
 * The package as a user gets it: `npm pack` on a copy of this work tree (its
 * prepack builds dist/ there), the tarball installed from the npm registry's
 * dependencies into fresh NestJS apps made from `nest new`'s own tsconfig files
 * (test/package/nest-new/), and each app compiled with tsc and booted with node.
 * The apps import every entry listed in package.json "exports", and each
 * compilation must read every entry's own declaration file.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'nest-session-fresh-app-'));

/** The import specifiers of the package's entries, from its "exports". */
const specifiers = Object.keys(pkg.exports)
  .filter((key) => !key.endsWith('.json'))
  .map((key) => (key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`));

async function run(command: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(command, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}:\n${stdout ?? ''}${stderr ?? ''}`);
  }
}

/** The entries' declaration files, as installed in an app. */
const declarationFiles = (app: string) =>
  Object.values<{ types?: string }>(pkg.exports)
    .flatMap((conditions) => conditions.types ?? [])
    .map((types) => join(app, 'node_modules', pkg.name, types));

/**
 * Compiles with the app's own TypeScript; returns the files the program read.
 * (An entry without types would not fail a starter's build, which allows
 * implicit any: the file list shows it.)
 */
async function tsc(app: string, args: string[]): Promise<string[]> {
  const out = await run(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), ...args, '--listFiles'], app);
  return out.split('\n').filter(Boolean);
}

function appSources(): Record<string, string> {
  const imports = specifiers.map((specifier, i) => `import * as entry${i} from '${specifier}';`);
  const fields = specifiers.map((specifier, i) => `  '${specifier}': entry${i},`);
  return {
    'src/entries.ts': [
      '// Every entry of nest-session\'s package.json "exports".',
      ...imports,
      '',
      'export const entries: Record<string, object> = {',
      ...fields,
      '};',
      '',
    ].join('\n'),
    'src/main.ts': `import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Session, SessionMixin, SessionModule } from 'nest-session';
import { entries } from './entries.js';

@Controller()
class CounterController {
  @Get()
  count(@Session() session: SessionMixin<{ count: number }>) {
    const count = (session.get('count') ?? 0) + 1;
    session.set('count', count);
    return { count };
  }
}

@Module({ imports: [SessionModule.forRoot({ secretKey: 'fresh-app' })], controllers: [CounterController] })
class AppModule {}

async function bootstrap() {
  const app = await NestFactory.create(AppModule, { logger: ['error'] });
  await app.listen(0, '127.0.0.1');
  const url = await app.getUrl();
  const first = await fetch(url);
  const cookie = (first.headers.get('set-cookie') ?? '').split(';')[0];
  const second = await fetch(url, { headers: { cookie } });
  const exported = Object.fromEntries(
    Object.entries(entries).map(([name, entry]) => [name, Object.keys(entry).filter((key) => key !== 'default').sort()]),
  );
  console.log(JSON.stringify({ exported, counts: [await first.json(), await second.json()] }));
  await app.close();
}
bootstrap().catch((error) => {
  console.error(error);
  process.exit(1);
});
`,
  };
}

/** A copy of a fixture folder with the app's sources and the tarball installed. */
async function createApp(fixture: string, tarball: string): Promise<string> {
  const app = join(work, fixture);
  cpSync(join(root, 'test/package/nest-new', fixture), app, { recursive: true });
  for (const [file, text] of Object.entries(appSources())) {
    mkdirSync(dirname(join(app, file)), { recursive: true });
    writeFileSync(join(app, file), text);
  }
  await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball], app);
  return app;
}

interface Boot {
  exported: Record<string, string[]>;
  counts: unknown[];
}
const boot = async (app: string, main: string): Promise<Boot> => JSON.parse(await run(process.execPath, [main], app));

/** What each entry exports, read from the sources (jest maps the package's name to lib/). */
async function sourceExports(): Promise<Record<string, string[]>> {
  const exported: Record<string, string[]> = {};
  // One at a time: jest's module registry races on concurrent imports of a shared module.
  for (const specifier of specifiers) exported[specifier] = Object.keys(await import(specifier)).sort();
  return exported;
}

let packedFiles: string[];
let commonjsApp: string;
let moduleApp: string;

beforeAll(async () => {
  // A fresh clone's files: tracked ones and new ones not ignored.
  const source = join(work, 'clone');
  const listed = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], root);
  for (const file of listed.split('\0')) {
    if (file && file !== 'node_modules' && existsSync(join(root, file))) cpSync(join(root, file), join(source, file));
  }
  symlinkSync(join(root, 'node_modules'), join(source, 'node_modules'), 'dir');
  const [packed] = JSON.parse(await run('npm', ['pack', '--json', '--loglevel=error', '--pack-destination', work], source));
  packedFiles = packed.files.map((file: { path: string }) => file.path);
  const tarball = join(work, packed.filename);
  [commonjsApp, moduleApp] = await Promise.all([createApp('commonjs', tarball), createApp('module', tarball)]);
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

test('npm pack builds dist/ first and ships every file that an export, or a source map, points to', () => {
  for (const conditions of Object.values<Record<string, string> | string>(pkg.exports)) {
    for (const target of typeof conditions === 'string' ? [conditions] : Object.values(conditions)) {
      expect(packedFiles).toContain(posix.normalize(target));
    }
  }
  const maps = packedFiles.filter((file) => file.endsWith('.map'));
  expect(maps).toEqual(expect.arrayContaining(['dist/index.js.map', 'dist/index.d.ts.map']));
  const installed = join(commonjsApp, 'node_modules', pkg.name);
  const missing = maps.flatMap((map) => {
    const { sources } = JSON.parse(readFileSync(join(installed, map), 'utf8')) as { sources: string[] };
    return sources.map((file) => posix.join(posix.dirname(map), file)).filter((file) => !packedFiles.includes(file));
  });
  expect(missing).toEqual([]);
});

describe.each([
  ['CommonJS, nest new of NestJS 11 (moduleResolution nodenext), TypeScript 5.8', 'commonjs', ['-p', 'tsconfig.build.json'], 'dist/main.js'],
  ['CommonJS, the NestJS 10 starter tsconfig (moduleResolution node10), TypeScript 5.8', 'commonjs', ['-p', 'tsconfig.node10.json', '--outDir', 'dist-node10'], 'dist-node10/main.js'],
  ['ES module, nest new of NestJS 12 (moduleResolution nodenext), TypeScript 6', 'module', ['-p', 'tsconfig.build.json', '--types', 'node'], 'dist/main.js'],
] as const)('a fresh app: %s', (_name, fixture, tscArgs, main) => {
  const app = () => (fixture === 'commonjs' ? commonjsApp : moduleApp);

  test('compiles, importing every entry with its types', async () => {
    const read = await tsc(app(), [...tscArgs]);
    expect(read).toEqual(expect.arrayContaining(declarationFiles(app())));
    expect(existsSync(join(app(), main))).toBe(true);
  }, 120_000);

  test('boots, every entry exports what its source does, and the session cookie round-trips', async () => {
    const { exported, counts } = await boot(app(), main);
    expect(exported).toEqual(await sourceExports());
    expect(counts).toEqual([{ count: 1 }, { count: 2 }]);
  }, 60_000);
});

test('a fresh app: CommonJS with moduleResolution bundler, TypeScript 5.8, type-checks every entry', async () => {
  const read = await tsc(commonjsApp, ['-p', 'tsconfig.bundler.json']);
  expect(read).toEqual(expect.arrayContaining(declarationFiles(commonjsApp)));
}, 120_000);

test('the CommonJS app compiles with the lowest TypeScript supported (5.8.2), the ES module app with TypeScript 6', () => {
  const version = (app: string) => JSON.parse(readFileSync(join(app, 'node_modules/typescript/package.json'), 'utf8')).version;
  expect(version(commonjsApp)).toBe('5.8.2');
  expect(version(moduleApp)).toMatch(/^6\./);
});
