/**
 * npm run bench (after its build): every benchmark, one after the other in the
 * order below, each in a process of its own, printing its table and writing
 * it under bench/results/:
 *   run         signed cookies, Fastify and Redis (bench/run.mjs)      -> latest.md
 *   sql         PostgreSQL against connect-pg-simple (bench/sql.mjs)   -> sql.md
 *   filesystem  the filesystem store's growth and threshold
 *               (bench/filesystem.mjs)                                 -> filesystem.md
 * They need redis-server (run) and Debian's postgresql package (sql).
 *
 * Environment:
 *   BENCH_ONLY         which of them, a comma list (default run,sql,filesystem)
 * passed on to each, whose own comments tell its defaults:
 *   BENCH_DURATION     seconds per measured run
 *   BENCH_ROUNDS       rounds per pair
 *   BENCH_WARMUP       seconds of warm-up per server (and route)
 *   BENCH_CONNECTIONS  connections per server
 *   BENCH_PIN=0        leaves every process unpinned
 *   BENCH_SUITES       run only: cookie,fastify,redis
 *   BENCH_ROUTES       run (none,read,write) and sql (those and write-many, which
 *                      only sql serves)
 *   BENCH_SESSIONS     sql only: sessions of write-many (64)
 *   BENCH_FS_COMPARE   filesystem only: a git revision to compare the store with
 *
 * A benchmark that fails does not stop the others; the exit code is then 1.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCHMARKS = { run: 'run.mjs', sql: 'sql.mjs', filesystem: 'filesystem.mjs' };
const only = (process.env.BENCH_ONLY ?? Object.keys(BENCHMARKS).join(','))
  .split(',')
  .map((name) => name.trim())
  .filter(Boolean);
const unknown = only.filter((name) => !(name in BENCHMARKS));
if (unknown.length > 0 || only.length === 0) {
  console.error(`BENCH_ONLY: ${unknown.join(', ') || 'empty'}; a comma list of ${Object.keys(BENCHMARKS).join(', ')}.`);
  process.exit(2);
}

const failed = [];
for (const name of Object.keys(BENCHMARKS).filter((name) => only.includes(name))) {
  console.log(`\n=== bench/${BENCHMARKS[name]} ===\n`);
  const child = spawn(process.execPath, [fileURLToPath(new URL(BENCHMARKS[name], import.meta.url))], { stdio: 'inherit' });
  const { code, signal } = await new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  if (signal) {
    // Interrupted (Ctrl-C reaches the whole process group): the rest is not wanted either.
    console.error(`bench/${BENCHMARKS[name]} ended by ${signal}`);
    process.exit(1);
  }
  if (code !== 0) failed.push(`${BENCHMARKS[name]} (exit code ${code})`);
}
if (failed.length > 0) {
  console.error(`\nFailed: ${failed.join(', ')}`);
  process.exit(1);
}
