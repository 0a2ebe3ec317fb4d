/**
 * The first of npm run bench's benchmarks (bench/all.mjs; alone:
 * BENCH_ONLY=run npm run bench, or node bench/run.mjs after the build):
 * nest-session side by side with each other library, behind the same NestJS
 * routes, each server in its own process, driven by autocannon from this one.
 * Its helpers, shared with sql.mjs and filesystem.mjs, are in harness.mjs.
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
 * cookie,fastify,redis), BENCH_ROUTES (default none,read,write,write-many), BENCH_SESSIONS (write-many's sessions, default 64) tune it;
 * BENCH_PIN=0 leaves the processes unpinned. The table is printed and
 * written to bench/results/latest.md.
 */
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { fileURLToPath } from 'node:url';
import {
  OTHER_CPUS,
  compare,
  comparisonHeader,
  comparisonPreamble,
  comparisonRow,
  forkServer,
  freePort,
  load,
  login,
  perRequest,
  pin,
  publish,
  retry,
  settings,
  sleep,
  step,
} from './harness.mjs';

/** WARMUP: V8 needs thousands of requests to reach its optimized code: measured, about 8 s of load. */
const { DURATION, ROUNDS, WARMUP, CONNECTIONS, SESSIONS } = settings({ DURATION: 2, ROUNDS: 8, WARMUP: 4, CONNECTIONS: 16, SESSIONS: 64 });
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
    others: ['bare+fastify', '@fastify/secure-session', '@fastify/session', 'nest-session+fastify (no interceptor)'],
  },
  redis: {
    title: 'Sessions in Redis (one local redis-server), on Express',
    subject: 'nest-session+redis',
    others: ['bare', 'express-session+connect-redis', 'nestjs-session+connect-redis'],
  },
};
const SELECTED = (process.env.BENCH_SUITES ?? 'cookie,fastify,redis').split(',');
const KINDS = [...new Set(SELECTED.flatMap((suite) => [SUITES[suite].subject, ...SUITES[suite].others]))];
/** Redis commands counted per request (INFO commandstats, which also counts the commands a script runs). */
const REDIS_COMMANDS = ['get', 'set', 'expire', 'del', 'evalsha'];
const ROUTES = (process.env.BENCH_ROUTES ?? 'none,read,write,write-many').split(',');
const SERVER = fileURLToPath(new URL('./dist/server.js', import.meta.url));

/** A redis-server of the benchmark's own, on a free loopback port. */
async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const client = await retry(
    100,
    async () => {
      // A client per attempt: ioredis 5 refuses connect() again on a client whose first attempt failed.
      const attempt = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
      attempt.on('error', () => {}); // refused while redis-server starts: tried again
      try {
        await attempt.connect();
        return attempt;
      } catch (error) {
        attempt.disconnect();
        throw error;
      }
    },
    (error) => new Error(`redis-server did not start (install it: sudo apt-get install redis-server): ${error}`),
  );
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
  const { child } = await forkServer(SERVER, [kind, String(port)], kind, env);
  const cookie = await login(port);
  const cookies = await Promise.all(Array.from({ length: SESSIONS }, () => login(port)));
  return { kind, port, child, cookie, cookies };
}

/**
 * `length`: `{ duration }` in seconds or `{ amount }` of requests; `source`:
 * the server whose cookies to send (its own by default): the one it set at
 * /login, or for write-many its SESSIONS cookies in turn (/write as many users would).
 */
const loadRoute = (server, route, length, source = server) =>
  load(server.port, route === 'write-many' ? 'write' : route, {
    connections: CONNECTIONS,
    ...length,
    cookies: route === 'write-many' ? source.cookies : source.cookie,
  });
const routeLabel = (route) => (route === 'write-many' ? `/write, ${SESSIONS} sessions` : `/${route}`);

const servers = [];
const byKind = (kind) => servers.find((server) => server.kind === kind);
let redis;
pin(process.pid, OTHER_CPUS);
try {
  if (SELECTED.includes('redis')) redis = await startRedis();
  for (const kind of KINDS) servers.push(await start(kind, redis ? { REDIS_URL: redis.url } : {}));
  await step(`warming up ${servers.length} servers (${WARMUP} s a route)`, async () => {
    for (const server of servers) for (const route of ROUTES) await loadRoute(server, route, { duration: WARMUP });
  });

  // samples[suite][route][other][round] = { ours, theirs }
  const samples = await compare({
    rounds: ROUNDS,
    routes: ROUTES,
    groups: SELECTED.map((suite) => ({ name: suite, ...SUITES[suite] })),
    serverOf: byKind,
    // Bare NestJS sets no cookie; it gets ours, so that both parse the same requests.
    load: (route, server, ours) => loadRoute(server, route, { duration: DURATION }, server.kind.startsWith('bare') ? ours : server),
  });

  // Redis commands per request: each server alone, since INFO counts for the whole redis-server.
  const commands = {}; // commands[route][kind] = { get: n, ... }
  if (redis) {
    await sleep(1000); // the last timed run's requests in flight
    for (const route of ROUTES) {
      for (const kind of [SUITES.redis.subject, ...SUITES.redis.others]) {
        // A fixed number of requests, all answered when autocannon returns: none in flight is counted.
        const before = await redisCommandCounts(redis.client);
        const result = await loadRoute(byKind(kind), route, { amount: 2000 });
        const after = await redisCommandCounts(redis.client);
        (commands[route] ??= {})[kind] = Object.fromEntries(REDIS_COMMANDS.map((c) => [c, (after[c] - before[c]) / result.requests.total]));
      }
    }
  }
  const commandText = (route, kind) => perRequest(REDIS_COMMANDS.map((c) => [c.toUpperCase(), commands[route][kind][c]]));

  const lines = [
    comparisonPreamble({ rounds: ROUNDS, duration: DURATION, connections: CONNECTIONS }),
    'Each row: nest-session and the other library serving the route at the same time on one shared CPU. The ratio is the median over rounds',
    "of nest-session's req/s over theirs; in brackets, from CPU time per request (theirs ÷ ours). req/s and p99 are medians, each server having half a CPU.",
  ];
  for (const suite of SELECTED) {
    const { subject, others } = SUITES[suite];
    const withRedis = suite === 'redis';
    lines.push('', `**${SUITES[suite].title}**`, '', ...comparisonHeader(subject, withRedis ? ['Redis commands / request (ours / theirs)'] : []));
    for (const route of ROUTES) {
      for (const other of others) {
        const redisCell = withRedis ? [`${commandText(route, subject)} / ${commandText(route, other)}`] : [];
        lines.push(comparisonRow(routeLabel(route), other, samples[suite][route][other], redisCell));
      }
    }
  }
  lines.push(
    '',
    `/none never touches the session; /read reads one value; /write reads and writes a counter, every request with the one session cookie the server set at /login (so 16 concurrent writers of one session); /write, ${SESSIONS} sessions is /write over ${SESSIONS} sessions in turn, as many users would.`,
  );
  publish('latest.md', lines.join('\n'));
} finally {
  for (const server of servers) server.child.kill();
  redis?.client.disconnect();
  redis?.child.kill();
}
