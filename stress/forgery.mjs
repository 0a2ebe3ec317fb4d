/**
 * The forgery property at stress scale (not run in CI): the generators of
 * test/signing/forgery.spec.ts, 10^6 cases by default, against the built
 * package.
 *
 *   npm run build && node stress/forgery.mjs [cases] [seed]
 *
 * Another script can run it and use the figures:
 *
 *   import { runForgery, formatFigures } from './stress/forgery.mjs';
 *   const figures = await runForgery({ cases: 100_000 });
 *
 * Exits with 1 when a changed token was accepted, the original refused or a
 * verifier threw something other than BadData.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { caseKind, forgeryCase, isCorrect, makeTargets, runCase } from '../test/signing/forgery-cases.mjs';

const DIST = new URL('../dist/index.js', import.meta.url);

/** How many failing cases are kept as examples. */
const EXAMPLES = 5;

/**
 * Runs `cases` forgery cases and returns the figures. `lib` defaults to the
 * built package (../dist/index.js); `seed` to a random one (reported, so a
 * run can be repeated).
 *
 * @returns {Promise<{
 *   cases: number, changed: number, rejected: number, acceptedOriginals: number,
 *   acceptedAliases: number, rejectedOriginals: number, crashes: number,
 *   seconds: number, seed: number, targets: string[],
 *   aliasesByKind: Record<string, number>, examples: object[],
 * }>}
 */
export async function runForgery({ cases = 1_000_000, seed = Math.floor(Math.random() * 2 ** 31), lib } = {}) {
  lib ??= await loadDist();
  const targets = makeTargets(lib);
  const figures = {
    cases: 0,
    changed: 0,
    rejected: 0,
    acceptedOriginals: 0,
    acceptedAliases: 0,
    rejectedOriginals: 0,
    crashes: 0,
    seconds: 0,
    seed,
    targets: targets.map((target) => target.name),
    aliasesByKind: {},
    examples: [],
  };
  const started = performance.now();
  fc.assert(
    fc.property(forgeryCase(targets), (forgery) => {
      const result = runCase(targets, forgery);
      figures.cases++;
      if (!result.identical) figures.changed++;
      if (result.outcome === 'crashed') figures.crashes++;
      else if (result.identical) result.outcome === 'accepted' ? figures.acceptedOriginals++ : figures.rejectedOriginals++;
      else if (result.outcome === 'rejected') figures.rejected++;
      else {
        figures.acceptedAliases++;
        const kind = caseKind(forgery);
        figures.aliasesByKind[kind] = (figures.aliasesByKind[kind] ?? 0) + 1;
      }
      if (!isCorrect(result) && figures.examples.length < EXAMPLES) {
        figures.examples.push({ ...result, error: result.error === undefined ? undefined : String(result.error) });
      }
      return true; // count every case instead of stopping at the first
    }),
    { numRuns: cases, seed },
  );
  figures.seconds = (performance.now() - started) / 1000;
  return figures;
}

/** The figures as a small text table. */
export function formatFigures(figures) {
  const rows = [
    ['cases', figures.cases],
    ['changed tokens', figures.changed],
    ['rejected', figures.rejected],
    ['accepted aliases (must be 0)', figures.acceptedAliases],
    ['originals accepted', figures.acceptedOriginals],
    ['originals rejected (must be 0)', figures.rejectedOriginals],
    ['crashes (must be 0)', figures.crashes],
    ['time', `${figures.seconds.toFixed(1)} s (${Math.round(figures.cases / figures.seconds).toLocaleString('en')} cases/s)`],
    ['seed', figures.seed],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  const lines = rows.map(([label, value]) => `${label.padEnd(width)}  ${typeof value === 'number' ? value.toLocaleString('en') : value}`);
  const kinds = Object.entries(figures.aliasesByKind).sort((a, b) => b[1] - a[1]);
  const kindWidth = Math.max(0, ...kinds.map(([kind]) => kind.length));
  if (kinds.length) lines.push('', 'accepted aliases by mutation:', ...kinds.map(([kind, count]) => `  ${kind.padEnd(kindWidth)}  ${count.toLocaleString('en')}`));
  if (figures.examples.length) lines.push('', 'examples:', ...figures.examples.map((example) => '  ' + JSON.stringify(example)));
  return lines.join('\n');
}

async function loadDist() {
  try {
    return await import(DIST.href);
  } catch (error) {
    if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist')) {
      throw new Error('stress/forgery.mjs runs against the built package: run "npm run build" first.');
    }
    throw error;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [cases, seed] = process.argv.slice(2).map(Number);
  const figures = await runForgery({ cases: cases || undefined, seed: Number.isInteger(seed) ? seed : undefined });
  console.log(`Forgery stress: ${figures.targets.length} targets (${figures.targets.join(', ')})\n`);
  console.log(formatFigures(figures));
  process.exitCode = figures.acceptedAliases || figures.rejectedOriginals || figures.crashes ? 1 : 0;
}
