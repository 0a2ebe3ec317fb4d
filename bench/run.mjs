/**
 * npm run bench: nest-session side by side with each other library, behind the
 * same NestJS routes, each server in its own process, driven by autocannon
 * from this one.
 *
 * Side by side means at the same time: nest-session and the library it is
 * compared with serve the same route together, both pinned to the same CPU
 * (the load generator runs on the other), so whatever else the shared machine
 * does slows both alike. Measured here, two runs of the same server one after
 * the other differed by up to 40 %; run together, by 1-5 %. Each pair runs
 * BENCH_ROUNDS times; a ratio is the median over rounds of our req/s over
 * theirs, and in brackets the same from CPU time per request (theirs ÷ ours),
 * read from /proc. Each server gets half a CPU, so absolute req/s are about half
 * of what one server alone would serve; p99 includes waiting for the other.
 *
 * Bare NestJS is sent nest-session's cookie, so both parse the same requests
 * (the header alone costs about 1-2 % of a bare request).
 *
 * Redis commands per request are counted apart, each server alone for 2000
 * requests (INFO commandstats counts for the whole redis-server).
 *
 * BENCH_DURATION (seconds per run, default 2), BENCH_ROUNDS (default 8),
 * BENCH_WARMUP (seconds per server and route before measuring, default 4),
 * BENCH_CONNECTIONS (per server, default 16), BENCH_SUITES (default
 * cookie,fastify,redis), BENCH_ROUTES (default none,read,write) tune it;
 * BENCH_PIN=0 leaves the processes unpinned.
 */
import autocannon from 'autocannon';
import { execFileSync, fork, spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { Redis } from 'ioredis';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const DURATION = Number(process.env.BENCH_DURATION ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
/** V8 needs thousands of requests to reach its optimized code: measured, about 8 s of load. */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 4);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
/** Two suites in one run: signed cookies, and sessions in one local redis-server. Each compares `subject` with every other kind. */
const SUITES = {
  cookie: {
    title: 'Signed cookies and in-process stores, on Express',
    subject: 'nest-session',
    others: ['bare', 'cookie-session', 'express-session', 'nestjs-session', 'nest-session (no interceptor)'],
  },
  fastify: {
    title: 'On Fastify: signed cookies, and @fastify/session in process memory',
    subject: 'nest-session+fastify',
    others: ['bare+fastify', '@fastify/secure-session', '@fastify/session'],
  },
  redis: {
    title: 'Sessions in Redis (one local redis-server), on Express',
    subject: 'nest-session+redis',
    others: ['bare', 'express-session+connect-redis', 'nestjs-session+connect-redis'],
  },
};
const SELECTED = (process.env.BENCH_SUITES ?? 'cookie,fastify,redis').split(',');
const KINDS = [...new Set(SELECTED.flatMap((suite) => [SUITES[suite].subject, ...SUITES[suite].others]))];
/** Redis commands counted per request (INFO commandstats). */
const REDIS_COMMANDS = ['get', 'set', 'expire', 'del'];
const ROUTES = (process.env.BENCH_ROUTES ?? 'none,read,write').split(',');
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

/** A redis-server of the benchmark's own, on a free loopback port. */
async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  let client;
  for (let i = 0; ; i++) {
    // A client per attempt: ioredis 5 refuses connect() again on a client whose first attempt failed.
    client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
    client.on('error', () => {}); // refused while redis-server starts: tried again below
    try {
      await client.connect();
      break;
    } catch (error) {
      client.disconnect();
      if (i > 100) throw new Error(`redis-server did not start (install it: sudo apt-get install redis-server): ${error}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  pin(child.pid, OTHER_CPUS);
  return { port, child, client, url: `redis://127.0.0.1:${port}` };
}

async function redisCommandCounts(client) {
  const info = await client.info('commandstats');
  const counts = {};
  for (const name of REDIS_COMMANDS) counts[name] = Number(info.match(new RegExp(`cmdstat_${name}:calls=(\\d+)`))?.[1] ?? 0);
  return counts;
}

async function start(kind, env) {
  const port = await freePort();
  const child = fork(SERVER, [kind, String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...env } });
  await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  pin(child.pid, SERVER_CPU);
  const login = await fetch(`http://127.0.0.1:${port}/login`);
  const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  return { kind, port, child, cookie };
}

/**
 * With two or more CPUs, servers run on the last one and this process (the
 * load generator) and redis-server on the others, so the generator does not
 * steal the measured server's time. `taskset -a` moves every thread.
 */
const CPUS = availableParallelism();
const SERVER_CPU = CPUS > 1 ? String(CPUS - 1) : undefined;
const OTHER_CPUS = CPUS > 1 ? `0-${CPUS - 2}` : undefined;
function pin(pid, cpus) {
  if (cpus === undefined || process.env.BENCH_PIN === '0') return;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
  } catch {
    // taskset missing (util-linux): unpinned runs are only noisier.
  }
}

/** CPU microseconds the process has used (user + system), or NaN off Linux. */
function cpuMicros(pid) {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return NaN;
  const fields = readFileSync(stat, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // clock ticks, USER_HZ = 100
}

/**
 * `length`: `{ duration }` in seconds or `{ amount }` of requests; `cookie`:
 * the Cookie header to send, by default the one the server set at /login.
 */
function load(server, route, length, cookie = server.cookie) {
  return autocannon({
    url: `http://127.0.0.1:${server.port}/${route}`,
    connections: CONNECTIONS,
    ...length,
    headers: cookie ? { cookie } : {},
  });
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

const servers = [];
const byKind = (kind) => servers.find((server) => server.kind === kind);
let redis;
pin(process.pid, OTHER_CPUS);
try {
  if (SELECTED.includes('redis')) redis = await startRedis();
  for (const kind of KINDS) servers.push(await start(kind, redis ? { REDIS_URL: redis.url } : {}));
  process.stdout.write(`warming up ${servers.length} servers (${WARMUP} s a route)... `);
  for (const server of servers) for (const route of ROUTES) await load(server, route, { duration: WARMUP });
  console.log('done');

  /**
   * Both servers at once; each one's req/s, p99 and CPU µs per request.
   * The load that starts first gets about 1 % more (measured with one server
   * twice), so `theirsFirst` alternates it between rounds.
   */
  async function pair(route, ours, theirs, theirsFirst) {
    const servers = theirsFirst ? [theirs, ours] : [ours, theirs];
    const cpuBefore = servers.map((server) => cpuMicros(server.child.pid));
    // Bare NestJS sets no cookie; it gets ours, so that both parse the same requests.
    const cookieOf = (server) => (server.kind.startsWith('bare') ? ours.cookie : server.cookie);
    const results = await Promise.all(servers.map((server) => load(server, route, { duration: DURATION }, cookieOf(server))));
    const measured = results.map((result, i) => ({
      rps: result.requests.average,
      p99: result.latency.p99,
      cpu: (cpuMicros(servers[i].child.pid) - cpuBefore[i]) / result.requests.total,
      errors: result.errors + result.non2xx,
    }));
    return theirsFirst ? measured.reverse() : measured;
  }

  // samples[suite][route][other][round] = { ours, theirs }
  const samples = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const suite of SELECTED) {
      const { subject, others } = SUITES[suite];
      for (const route of ROUTES) {
        const order = others.map((_, i) => others[(i + round) % others.length]);
        for (const other of order) {
          const [ours, theirs] = await pair(route, byKind(subject), byKind(other), round % 2 === 1);
          (((samples[suite] ??= {})[route] ??= {})[other] ??= []).push({ ours, theirs });
          console.log(
            `round ${round + 1}/${ROUNDS} /${route}: ${subject} ${Math.round(ours.rps)} req/s (${Math.round(ours.cpu)} µs CPU/req)` +
              ` | ${other} ${Math.round(theirs.rps)} req/s (${Math.round(theirs.cpu)} µs CPU/req)`,
          );
        }
      }
    }
  }

  // Redis commands per request: each server alone, since INFO counts for the whole redis-server.
  const commands = {}; // commands[route][kind] = { get: n, ... }
  if (redis) {
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the last timed run's requests in flight
    for (const route of ROUTES) {
      for (const kind of [SUITES.redis.subject, ...SUITES.redis.others]) {
        // A fixed number of requests, all answered when autocannon returns: none in flight is counted.
        const before = await redisCommandCounts(redis.client);
        const result = await load(byKind(kind), route, { amount: 2000 });
        const after = await redisCommandCounts(redis.client);
        (commands[route] ??= {})[kind] = Object.fromEntries(REDIS_COMMANDS.map((c) => [c, (after[c] - before[c]) / result.requests.total]));
      }
    }
  }
  const commandText = (route, kind) =>
    REDIS_COMMANDS.map((c) => [c.toUpperCase(), commands[route][kind][c]])
      .filter(([, n]) => n > 0.005)
      .map(([c, n]) => `${c} ${n.toFixed(2)}`)
      .join(' + ') || '0';

  const lines = [
    `${ROUNDS} rounds of ${DURATION} s per pair and route, ${CONNECTIONS} connections per server, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.`,
    'Each row: nest-session and the other library serving the route at the same time on one shared CPU. The ratio is the median over rounds',
    "of nest-session's req/s over theirs; in brackets, from CPU time per request (theirs ÷ ours). req/s and p99 are medians, each server having half a CPU.",
  ];
  for (const suite of SELECTED) {
    const { subject, others } = SUITES[suite];
    const withRedis = suite === 'redis';
    lines.push(
      '',
      `**${SUITES[suite].title}**`,
      '',
      `| route | ${subject} vs | ratio | ${subject} req/s | their req/s | p99 ms (ours / theirs) | CPU µs/req (ours / theirs) |${withRedis ? ' Redis commands / request (ours / theirs) |' : ''} errors |`,
      `|---|---|---:|---:|---:|---:|---:|${withRedis ? '---|' : ''}---:|`,
    );
    for (const route of ROUTES) {
      for (const other of others) {
        const runs = samples[suite][route][other];
        const med = (of) => median(runs.map(of));
        const ratio = `${med((r) => r.ours.rps / r.theirs.rps).toFixed(2)} (${med((r) => r.theirs.cpu / r.ours.cpu).toFixed(2)})`;
        const redisCell = withRedis ? ` ${commandText(route, subject)} / ${commandText(route, other)} |` : '';
        const errors = runs.reduce((n, r) => n + r.ours.errors + r.theirs.errors, 0);
        lines.push(
          `| /${route} | ${other} | ${ratio} | ${Math.round(med((r) => r.ours.rps))} | ${Math.round(med((r) => r.theirs.rps))} | ${med((r) => r.ours.p99)} / ${med((r) => r.theirs.p99)} | ${Math.round(med((r) => r.ours.cpu))} / ${Math.round(med((r) => r.theirs.cpu))} |${redisCell} ${errors} |`,
        );
      }
    }
  }
  lines.push('', '/none never touches the session; /read reads one value; /write reads and writes a counter.');
  const table = lines.join('\n');
  console.log('\n' + table);
  const out = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(out, { recursive: true });
  writeFileSync(`${out}latest.md`, table + '\n');
  console.log(`\nWritten to bench/results/latest.md`);
} finally {
  for (const server of servers) server.child.kill();
  redis?.client.disconnect();
  redis?.child.kill();
}
