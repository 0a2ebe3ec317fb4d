/**
 * npm run stress (not in CI): the reliability suite at scale.
 *
 * 1. Forgery: 10^6 mutated tokens and signed sids (stress/forgery.mjs);
 *    none may verify but the originals.
 * 2. Load with faults: 200,000 requests against a NestJS app with sessions in
 *    a real redis-server (storeTimeout 500 ms), 32 at a time, while Redis is
 *    paused (SIGSTOP), put to sleep (DEBUG SLEEP) and killed and restarted
 *    on the same port, with the app's memory sampled. Each write sets a key
 *    of its own, so afterwards every key can be checked: every write answered
 *    200 is stored (no lost update), no write answered 503 is (no write after
 *    a 503), /none never fails, and no answer came later than the budget.
 *
 * STRESS_REQUESTS (200000), STRESS_CONCURRENCY (32), STRESS_FORGERY (1000000)
 * tune it. Prints a table and writes it to stress/results/latest.md.
 */
import { fork, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { unpack } from 'msgpackr';
import { formatFigures, runForgery } from './forgery.mjs';

const REQUESTS = Number(process.env.STRESS_REQUESTS ?? 200_000);
const CONCURRENCY = Number(process.env.STRESS_CONCURRENCY ?? 32);
const FORGERY = Number(process.env.STRESS_FORGERY ?? 1_000_000);
const BUDGET = 500;
/** Answers slower than the budget by more than this are counted as late (HTTP and queueing on a busy machine). */
const TOLERANCE = 500;
/** Keys a session gets before its client starts a new one. */
const KEYS_PER_SESSION = 50;
const SERVER = fileURLToPath(new URL('./dist/server.js', import.meta.url));

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A redis-server of our own; append-only with fsync on every write, so a kill loses no acknowledged write. */
class RedisProcess {
  constructor(port, dir) {
    this.port = port;
    this.dir = dir;
  }
  async start() {
    this.child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--enable-debug-command', 'yes'],
      { stdio: 'ignore' },
    );
    const probe = new Redis({ port: this.port, host: '127.0.0.1', lazyConnect: true, retryStrategy: null });
    probe.on('error', () => undefined);
    for (let i = 0; ; i++) {
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return;
      } catch {
        if (i > 200) throw new Error('redis-server did not start (install it: apt-get install redis-server)');
        probe.disconnect();
        await sleep(25);
      }
    }
  }
  signal(signal) {
    this.child.kill(signal);
  }
  async kill() {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}

async function startApp(port, redisPort) {
  const child = fork(SERVER, [String(port), String(redisPort)], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const memory = [];
  child.on('message', (message) => message?.memory && memory.push({ at: Date.now(), ...message.memory }));
  await new Promise((resolve, reject) => {
    child.once('message', (message) => (message === 'ready' ? resolve() : reject(new Error(String(message)))));
    child.once('exit', (code) => reject(new Error(`the stress server exited (${code})`)));
  });
  return { child, memory };
}

/** One client: keeps its session's cookie, and starts a new session every KEYS_PER_SESSION keys. */
async function client(base, state) {
  let cookie;
  let sid;
  let keys = 0;
  while (state.sent < REQUESTS) {
    const n = state.sent++;
    if (n % 10 === 9) {
      const started = Date.now();
      const response = await fetch(`${base}/none`).catch(() => undefined);
      state.none[response?.status ?? 'error'] = (state.none[response?.status ?? 'error'] ?? 0) + 1;
      state.noneMax = Math.max(state.noneMax, Date.now() - started);
      continue;
    }
    const key = `k${n}`;
    const started = Date.now();
    const response = await fetch(`${base}/put?key=${key}`, { headers: cookie ? { cookie } : {} }).catch(() => undefined);
    const ms = Date.now() - started;
    state.latencies.push(ms);
    const status = response?.status ?? 'error';
    state.statuses[status] = (state.statuses[status] ?? 0) + 1;
    await response?.arrayBuffer();
    const set = response?.headers.get('set-cookie');
    const fresh = set?.match(/^session=([A-Za-z0-9_-]{43});/)?.[1];
    if (status === 200 && fresh && fresh !== sid) {
      sid = fresh;
      cookie = `session=${sid}`;
    }
    if (sid && (status === 200 || status === 503)) (status === 200 ? state.stored : state.refused).push([sid, key]);
    if (status === 200 && ms > BUDGET + TOLERANCE) state.slowOk++;
    if (status === 503 && ms > BUDGET + TOLERANCE) state.late++;
    if (++keys >= KEYS_PER_SESSION) {
      cookie = sid = undefined;
      keys = 0;
    }
  }
}

/** Pauses, puts to sleep and kills Redis in turn, until told to stop. */
async function faults(redis, state, stop) {
  const steps = [
    async () => {
      redis.signal('SIGSTOP');
      state.faults.pauses++;
      await sleep(1200);
      redis.signal('SIGCONT');
    },
    async () => {
      const sleeper = new Redis({ port: redis.port, host: '127.0.0.1' });
      sleeper.on('error', () => undefined);
      state.faults.sleeps++;
      await sleeper.call('DEBUG', 'SLEEP', '1').catch(() => undefined);
      sleeper.disconnect();
    },
    async () => {
      await redis.kill();
      state.faults.kills++;
      await sleep(800);
      await redis.start();
    },
  ];
  for (let i = 0; !stop.done; i++) {
    await sleep(4000);
    if (stop.done) break;
    await steps[i % steps.length]();
  }
}

async function loadWithFaults() {
  const dir = mkdtempSync(join(tmpdir(), 'nest-session-stress-'));
  const redis = new RedisProcess(await freePort(), dir);
  await redis.start();
  const port = await freePort();
  const { child, memory } = await startApp(port, redis.port);
  const state = {
    sent: 0,
    statuses: {},
    none: {},
    noneMax: 0,
    latencies: [],
    stored: [],
    refused: [],
    late: 0,
    slowOk: 0,
    faults: { pauses: 0, sleeps: 0, kills: 0 },
  };
  const started = Date.now();
  const stop = { done: false };
  const faulting = faults(redis, state, stop);
  await Promise.all(Array.from({ length: CONCURRENCY }, () => client(`http://127.0.0.1:${port}`, state)));
  stop.done = true;
  await faulting;
  const seconds = (Date.now() - started) / 1000;
  try {
    redis.signal('SIGCONT');
  } catch {
    // not running
  }
  await sleep(1500); // anything held in Redis runs now
  child.send('gc');
  await sleep(500);

  // Every key answered 200 must be stored; no key answered 503 may be.
  const probe = new Redis({ port: redis.port, host: '127.0.0.1' });
  const records = new Map();
  for (const [sid] of [...state.stored, ...state.refused]) {
    if (records.has(sid)) continue;
    const raw = await probe.getBuffer(`session:${sid}`);
    records.set(sid, raw ? unpack(raw) : {});
  }
  probe.disconnect();
  const lost = state.stored.filter(([sid, key]) => !(key in records.get(sid))).length;
  const landedAfter503 = state.refused.filter(([sid, key]) => key in records.get(sid)).length;
  child.kill();
  await redis.kill();
  rmSync(dir, { recursive: true, force: true });

  const sorted = state.latencies.sort((a, b) => a - b);
  const heap = memory.map((m) => m.heapUsed);
  const afterWarmup = memory.find((m) => m.at > started + 5000) ?? memory[0];
  return {
    requests: REQUESTS,
    seconds,
    statuses: state.statuses,
    none: state.none,
    noneMax: state.noneMax,
    p50: sorted[Math.floor(sorted.length * 0.5)],
    p99: sorted[Math.floor(sorted.length * 0.99)],
    max: sorted.at(-1),
    late: state.late,
    slowOk: state.slowOk,
    lost,
    landedAfter503,
    checked: { stored: state.stored.length, refused: state.refused.length, sessions: records.size },
    faults: state.faults,
    memory: {
      heapAfterWarmupMiB: afterWarmup.heapUsed / 2 ** 20,
      heapPeakMiB: Math.max(...heap) / 2 ** 20,
      heapEndAfterGcMiB: memory.at(-1).heapUsed / 2 ** 20,
      rssPeakMiB: Math.max(...memory.map((m) => m.rss)) / 2 ** 20,
    },
    crashed: child.exitCode !== null && child.signalCode !== 'SIGTERM',
  };
}

function formatLoad(f) {
  const mib = (n) => n.toFixed(1);
  const rows = [
    ['requests (90 % session writes, 10 % /none)', `${f.requests} in ${f.seconds.toFixed(0)} s, ${CONCURRENCY} at a time`],
    ['faults injected', `${f.faults.pauses} pauses (1.2 s SIGSTOP), ${f.faults.sleeps} DEBUG SLEEP 1, ${f.faults.kills} kill + restart`],
    ['session writes answered', Object.entries(f.statuses).map(([status, n]) => `${status}: ${n}`).join(', ')],
    ['/none answered', Object.entries(f.none).map(([status, n]) => `${status}: ${n}`).join(', ') + ` (slowest ${f.noneMax} ms)`],
    ['session write latency', `p50 ${f.p50} ms, p99 ${f.p99} ms, max ${f.max} ms (budget ${BUDGET} ms)`],
    [`503s later than budget + ${TOLERANCE} ms`, String(f.late)],
    [`200s later than budget + ${TOLERANCE} ms`, String(f.slowOk)],
    ['writes answered 200 and not stored (lost)', `${f.lost} of ${f.checked.stored}`],
    ['writes answered 503 and stored anyway', `${f.landedAfter503} of ${f.checked.refused}`],
    ['app heap: after warm-up / peak / end after GC', `${mib(f.memory.heapAfterWarmupMiB)} / ${mib(f.memory.heapPeakMiB)} / ${mib(f.memory.heapEndAfterGcMiB)} MiB (RSS peak ${mib(f.memory.rssPeakMiB)} MiB)`],
    ['app crashed', f.crashed ? 'yes' : 'no'],
  ];
  return ['| load with faults | figure |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}

const build = spawnSync('npx', ['tsc', '-p', fileURLToPath(new URL('./tsconfig.json', import.meta.url))], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

console.log(`Forgery: ${FORGERY} cases...`);
const forgery = await runForgery({ cases: FORGERY });
console.log(formatFigures(forgery));
console.log(`\nLoad with faults: ${REQUESTS} requests...`);
const load = await loadWithFaults();
const report = [
  `# npm run stress, ${new Date().toISOString().slice(0, 10)}, Node ${process.version}`,
  '',
  formatFigures(forgery),
  '',
  formatLoad(load),
  '',
].join('\n');
console.log(`\n${formatLoad(load)}`);
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/latest.md', import.meta.url), report);
const failed = forgery.acceptedAliases + forgery.rejectedOriginals + forgery.crashes + load.lost + load.landedAfter503 + load.late + (load.crashed ? 1 : 0) + Object.keys(load.none).filter((s) => s !== '200').length;
process.exit(failed ? 1 : 0);
