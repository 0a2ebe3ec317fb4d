/**
 * Part of npm run bench (bench/all.mjs; alone: BENCH_ONLY=filesystem npm run
 * bench, or node bench/filesystem.mjs after `npm run build`): the filesystem
 * store's writes, through a real NestJS app, as the store grows and past its
 * threshold (issue 8, item 5). Two pairs of servers, each pair serving at the
 * same time on one shared CPU (this process, the load generator, runs on the
 * others), so whatever else the machine does slows both alike:
 *
 * - "stored": GET /write (reads and writes a counter) on 10 sessions, in a
 *   folder of 10 sessions against one of 10,000 (the same 10 plus 9,990
 *   others), both with a threshold of 20,000, above the count. The ratio is
 *   10,000's req/s over 10's: 1.00 means a write at 10,000 is as fast.
 * - "threshold": GET /visit creates a new session (a new file) on every
 *   request, from 500 files, with a threshold far above the count against
 *   one of 500, so that every write goes past it and something is evicted.
 *   The ratio is past's req/s over above's.
 *
 * Every server runs with `ulimit -n 1024` (the usual default), 40
 * connections each (BENCH_CONNECTIONS). Errors count every answer that is
 * not a 2xx, and every socket error or timeout; 503s are counted apart.
 *
 * BENCH_FS_COMPARE=<git revision> runs the same with the implementation of
 * lib/filesystem/filesystem.session-interface.ts at that revision too
 * (transpiled on the fly, on today's base class), e.g. the one before the
 * rewrite. BENCH_DURATION (seconds per run, default 3), BENCH_ROUNDS (default
 * 5), BENCH_WARMUP (seconds per server, default 2), BENCH_PIN=0 (no pinning)
 * tune it. The table is printed and written to bench/results/filesystem.md.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { OTHER_CPUS, forkServer, load, median, pin, publish, settings, sleep, step, today, together } from './harness.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const SESSION_FILE = /^[0-9a-f]{64}$/;

if (process.argv[2] === 'serve') await serve(JSON.parse(process.argv[3]));
else await main();

/** One server: a NestJS app whose sessions are files, told its port to the parent. */
async function serve({ module, cacheDir, threshold }) {
  await import('reflect-metadata');
  const { Controller, Get, Module } = await import('@nestjs/common');
  const { NestFactory } = await import('@nestjs/core');
  const { Session, SessionModule } = await import(pathToFileURL(join(DIST, 'index.js')).href);
  const { FileSystemSessionInterface } = await import(module);

  // Decorators applied by hand: this file is plain JavaScript.
  class BenchController {
    write(session) {
      const count = (session.get('count') ?? 0) + 1;
      session.set('count', count);
      return { count };
    }
    visit(session) {
      session.set('visitor', true);
      return { ok: true };
    }
  }
  for (const route of ['write', 'visit']) {
    Get(route)(BenchController.prototype, route, Object.getOwnPropertyDescriptor(BenchController.prototype, route));
    Session()(BenchController.prototype, route, 0);
  }
  Controller()(BenchController);
  class BenchModule {}
  Module({
    imports: [SessionModule.forRoot({ interface: new FileSystemSessionInterface({ cacheDir, threshold }), secretKey: 'benchmark secret' })],
    controllers: [BenchController],
  })(BenchModule);
  const app = await NestFactory.create(BenchModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  process.send({ port: app.getHttpServer().address().port });
}

async function main() {
  const { DURATION, ROUNDS, WARMUP, CONNECTIONS } = settings({ DURATION: 3, ROUNDS: 5, WARMUP: 2, CONNECTIONS: 40 });
  const OPEN_FILES = 1024;

  if (!existsSync(join(DIST, 'filesystem', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` first.');
  const { StoreSerializer } = await import(pathToFileURL(join(DIST, 'index.js')).href);
  const serializer = new StoreSerializer('msgpack');
  const scratch = mkdtempSync(join(tmpdir(), 'nest-session-bench-fs-'));

  const implementations = [{ name: 'this tree', module: pathToFileURL(join(DIST, 'filesystem', 'index.js')).href }];
  if (process.env.BENCH_FS_COMPARE) {
    implementations.push({ name: `at ${process.env.BENCH_FS_COMPARE}`, module: await transpileAt(process.env.BENCH_FS_COMPARE, scratch) });
  }

  /** A session file as the store writes it: SHA-256 of the key, 4 bytes of expiry, the msgpack record. */
  const plant = (dir, sid, data) => {
    const header = Buffer.alloc(4);
    header.writeUInt32LE(Math.floor(Date.now() / 1000) + 31 * 24 * 3600);
    writeFileSync(join(dir, createHash('sha256').update(`session:${sid}`).digest('hex')), Buffer.concat([header, serializer.dumps(data)]));
  };
  const newSid = () => randomBytes(32).toString('base64url');
  const folder = (name, clientSids, others) => {
    const dir = join(scratch, name);
    mkdirSync(dir, { recursive: true });
    for (const sid of clientSids) plant(dir, sid, { _permanent: true, count: 0 });
    for (let i = 0; i < others; i++) plant(dir, newSid(), { _permanent: true, n: i });
    return dir;
  };
  const countFiles = (dir) => readdirSync(dir).filter((name) => SESSION_FILE.test(name)).length;

  const servers = [];
  const start = async (impl, scenario, cacheDir, threshold, route, cookies) => {
    const {
      child,
      message: { port },
    } = await forkServer(fileURLToPath(import.meta.url), ['serve', JSON.stringify({ module: impl.module, cacheDir, threshold })], `the ${scenario}`);
    try {
      execFileSync('prlimit', ['--pid', String(child.pid), `--nofile=${OPEN_FILES}:${OPEN_FILES}`], { stdio: 'ignore' });
    } catch {
      console.warn('prlimit (util-linux) is missing: servers keep this shell\'s open-files limit.');
    }
    const server = { impl: impl.name, scenario, cacheDir, threshold, route, cookies: cookies.map((sid) => `session=${sid}`), port, child };
    servers.push(server);
    return server;
  };

  /** The server's cookies sent round robin, one per request; none: every request is a new visitor. */
  const loadServer = (server, duration) => load(server.port, server.route, { connections: CONNECTIONS, duration, timeout: 10, cookies: server.cookies });
  const measure = ({ result }) => ({
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.non2xx + result.errors + result.timeouts,
    status503: result.statusCodeStats?.['503']?.count ?? 0,
  });

  pin(process.pid, OTHER_CPUS);
  try {
    const pairs = [];
    for (const impl of implementations) {
      await step(`${impl.name}: writing the folders`, async () => {
        const clients = Array.from({ length: 10 }, newSid);
        const tag = impl.name.replace(/\W+/g, '-');
        const small = await start(impl, '10 stored', folder(`${tag}-10`, clients, 0), 20_000, 'write', clients);
        const large = await start(impl, '10,000 stored', folder(`${tag}-10000`, clients, 9_990), 20_000, 'write', clients);
        const above = await start(impl, 'new sessions, threshold above the count', folder(`${tag}-above`, [], 500), 1_000_000, 'visit', []);
        const past = await start(impl, 'new sessions, past the threshold (500)', folder(`${tag}-past`, [], 500), 500, 'visit', []);
        pairs.push({ impl: impl.name, kind: 'stored', base: small, subject: large, samples: [] });
        pairs.push({ impl: impl.name, kind: 'threshold', base: above, subject: past, samples: [] });
      });
    }
    await step(`warming up ${servers.length} servers (${WARMUP} s each)`, async () => {
      for (const server of servers) await loadServer(server, WARMUP);
    });

    for (let round = 0; round < ROUNDS; round++) {
      for (const pair of pairs) {
        // The load that starts first gets a little more: alternated between rounds.
        const [base, subject] = (await together([pair.base, pair.subject], round % 2 === 1, (server) => loadServer(server, DURATION))).map(measure);
        pair.samples.push({ base, subject });
        console.log(
          `round ${round + 1}/${ROUNDS} ${pair.impl}: ${pair.base.scenario} ${Math.round(base.rps)} req/s, ${base.errors} errors` +
            ` | ${pair.subject.scenario} ${Math.round(subject.rps)} req/s, ${subject.errors} errors`,
        );
      }
    }
    await sleep(1000); // eviction catches up with the last writes

    const lines = [
      `${ROUNDS} rounds of ${DURATION} s, ${CONNECTIONS} connections per server, the two servers of a pair at the same time on one CPU,`,
      `\`ulimit -n ${OPEN_FILES}\`, Node ${process.version}, ${today()}. req/s, p50 and p99 are medians over rounds;`,
      'the ratio is the median of the second server\'s req/s over the first\'s; errors and 503s are totals over all rounds.',
      '',
      '| implementation | first server | second server | ratio | req/s (first / second) | p50 ms | p99 ms | errors (503s) | files at the end |',
      '|---|---|---|---:|---:|---:|---:|---:|---:|',
    ];
    for (const pair of pairs) {
      const med = (of) => median(pair.samples.map(of));
      const total = (of) => pair.samples.reduce((n, sample) => n + of(sample), 0);
      lines.push(
        `| ${pair.impl} | ${pair.base.scenario} | ${pair.subject.scenario} | ${med((s) => s.subject.rps / s.base.rps).toFixed(2)} |` +
          ` ${Math.round(med((s) => s.base.rps))} / ${Math.round(med((s) => s.subject.rps))} |` +
          ` ${med((s) => s.base.p50)} / ${med((s) => s.subject.p50)} | ${med((s) => s.base.p99)} / ${med((s) => s.subject.p99)} |` +
          ` ${total((s) => s.base.errors)} (${total((s) => s.base.status503)}) / ${total((s) => s.subject.errors)} (${total((s) => s.subject.status503)}) |` +
          ` ${countFiles(pair.base.cacheDir)} / ${countFiles(pair.subject.cacheDir)} |`,
      );
    }
    publish('filesystem.md', lines.join('\n'));
  } finally {
    for (const server of servers) server.child.kill('SIGKILL');
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * The store as it was at `revision`, transpiled to a module that imports
 * today's base class from dist/.
 */
async function transpileAt(revision, scratch) {
  const { default: ts } = await import('typescript');
  const source = execFileSync('git', ['show', `${revision}:lib/filesystem/filesystem.session-interface.ts`], { cwd: ROOT, encoding: 'utf8' });
  const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
  const code = outputText.replace(/from '\.\.\/([^']+)'/g, (_, path) => `from '${pathToFileURL(join(DIST, path)).href}'`);
  if (/from '\.\//.test(code)) throw new Error(`the store at ${revision} imports files beside it; only a single-file store can be compared`);
  const file = join(scratch, 'filesystem-at-revision.mjs');
  writeFileSync(file, code);
  return pathToFileURL(file).href;
}
