/**
 * Compiles lib/ and the child app (session-app.ts) to JavaScript in a temporary
 * folder, with the same SWC settings as Jest, so that tests can run the store
 * in real separate Node processes (several processes sharing one folder, a
 * process with a low `ulimit -n`). The folder gets a `node_modules` link to
 * the project's, and `"type": "module"`.
 */
import { transformFile } from '@swc/core';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));

function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

export interface ChildBuild {
  /** The compiled child app: `node <app> '<json options>'`. */
  readonly app: string;
  remove(): void;
}

export async function buildChildApp(): Promise<ChildBuild> {
  const out = mkdtempSync(join(tmpdir(), 'nest-session-fs-child-'));
  const files = [...sources(join(root, 'lib')), join(root, 'test', 'filesystem', 'support', 'session-app.ts')];
  await Promise.all(
    files.map(async (file) => {
      const { code } = await transformFile(file, {
        jsc: {
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
          target: 'es2022',
        },
        module: { type: 'es6' },
        swcrc: false,
        configFile: false,
      });
      const target = join(out, relative(root, file)).replace(/\.ts$/, '.js');
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, code);
    }),
  );
  writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n');
  symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'), 'dir');
  return {
    app: join(out, 'test', 'filesystem', 'support', 'session-app.js'),
    remove: () => rmSync(out, { recursive: true, force: true }),
  };
}
