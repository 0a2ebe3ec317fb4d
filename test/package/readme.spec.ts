/**
 * The README's TypeScript is code: every ```ts block compiles under the
 * project's strict settings against the built package's types (dist/, as a user
 * gets them), each block as a module of its own. A block that is an excerpt on
 * purpose says so with the line `<!-- fragment -->` (or `<!-- fragment: why -->`)
 * just above it, which GitHub does not show; such a block is not compiled.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../..', import.meta.url));
const FRAGMENT_MARKER = /^<!--\s*fragment\b.*-->$/;

interface CodeBlock {
  /** README line of the block's first line of code (1-based). */
  line: number;
  code: string;
  fragment: boolean;
}

/** The ```ts and ```typescript blocks of a Markdown text. */
function typeScriptBlocks(markdown: string): CodeBlock[] {
  const lines = markdown.split('\n');
  const blocks: CodeBlock[] = [];
  for (let open = 0; open < lines.length; open++) {
    const fence = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[open]);
    if (!fence) continue;
    const [, marks, language] = fence;
    let close = open + 1;
    while (close < lines.length && !lines[close].trim().startsWith(marks)) close++;
    if (['ts', 'typescript'].includes(language.toLowerCase())) {
      blocks.push({
        line: open + 2,
        code: lines.slice(open + 1, close).join('\n'),
        fragment: FRAGMENT_MARKER.test(lines[open - 1]?.trim() ?? ''),
      });
    }
    open = close;
  }
  return blocks;
}

const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = typeScriptBlocks(readme);
const compiled = blocks.filter((block) => !block.fragment);
/** Each block is a file beside README.md, so 'nest-session' resolves as the package's own name. */
const fileOf = (block: CodeBlock) => join(root, `README.md.line-${block.line}.ts`);

/** The diagnostics of every compiled block, keyed by its file, from one program. */
function compileBlocks(): Map<string, string[]> {
  const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
    },
  })!;
  const options: ts.CompilerOptions = {
    ...config.options,
    noEmit: true,
    types: ['node'],
    // A block with no import or export is still a module of its own, not a global script.
    moduleDetection: ts.ModuleDetectionKind.Force,
  };
  const sources = new Map(compiled.map((block) => [fileOf(block), block.code]));
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (file) => sources.has(file) || fileExists.call(host, file);
  host.readFile = (file) => sources.get(file) ?? readFile.call(host, file);
  host.getSourceFile = (file, language, ...rest) => {
    const code = sources.get(file);
    return code === undefined ? getSourceFile.call(host, file, language, ...rest) : ts.createSourceFile(file, code, language);
  };
  const program = ts.createProgram([...sources.keys()], options, host);
  const global = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
  if (global.length > 0) throw new Error(ts.formatDiagnostics(global, host));

  const diagnostics = new Map<string, string[]>();
  for (const block of compiled) {
    const file = program.getSourceFile(fileOf(block))!;
    diagnostics.set(
      fileOf(block),
      [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)].map((diagnostic) => {
        const { line, character } = file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
        const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
        return `README.md:${block.line + line}:${character + 1} TS${diagnostic.code}: ${text}`;
      }),
    );
  }
  return diagnostics;
}

let diagnostics: Map<string, string[]>;
beforeAll(() => {
  diagnostics = compileBlocks();
});

test('the README has TypeScript blocks, and the harness finds them', () => {
  expect(compiled.length).toBeGreaterThan(0);
  expect(blocks.length).toBe(readme.match(/^ {0,3}(```|~~~)\s*(ts|typescript)\b/gim)?.length);
});

test.each(compiled.map((block) => [block.line, block] as const))(
  'README.md line %i: the ts block compiles under strict',
  (_line, block) => {
    expect(diagnostics.get(fileOf(block))).toEqual([]);
  },
);

// ioredis reports a lost connection as an 'error' event; with no listener it
// prints every retry as an unhandled error, so an example shows the listener.
test.each(blocks.filter((block) => /new (Redis|Cluster)\(/.test(block.code)).map((block) => [block.line, block] as const))(
  'README.md line %i: the ioredis client gets an error listener',
  (_line, block) => {
    expect(block.code).toMatch(/\.on\(\s*'error'/);
  },
);
