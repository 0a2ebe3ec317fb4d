/**
 * npm run bench: every session library behind the same NestJS routes, each
 * server in its own process, driven by autocannon from this one. Runs are
 * interleaved (each round visits the servers in a rotated order) and repeated;
 * the table shows medians and ratios.
 *
 * Besides req/s it reads each server's CPU time from /proc (Linux): CPU per
 * request is far steadier than req/s on a small shared machine, where the
 * load generator competes with the server for the same two cores.
 *
 * BENCH_DURATION (seconds per run, default 4), BENCH_ROUNDS (default 5) and
 * BENCH_CONNECTIONS (default 16) tune it.
 */
import autocannon from 'autocannon';
import { fork, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const DURATION = Number(process.env.BENCH_DURATION ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
/** Two suites in one run: signed cookies, and sessions in one local redis-server. */
const SUITES = {
  cookie: { kinds: ['bare', 'nest-session', 'cookie-session', 'express-session', 'nestjs-session'], anchors: ['bare', 'cookie-session', 'express-session'] },
  redis: {
    kinds: ['bare', 'nest-session+redis', 'express-session+connect-redis', 'nestjs-session+connect-redis'],
    anchors: ['bare', 'express-session+connect-redis'],
  },
};
const SELECTED = (process.env.BENCH_SUITES ?? 'cookie,redis').split(',');
const KINDS = [...new Set(SELECTED.flatMap((suite) => SUITES[suite].kinds))];
/** Redis commands counted per request (INFO commandstats). */
const REDIS_COMMANDS = ['get', 'set', 'expire', 'del'];
const ROUTES = ['none', 'read', 'write'];
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
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
  for (let i = 0; ; i++) {
    try {
      await client.connect();
      break;
    } catch (error) {
      if (i > 100) throw new Error(`redis-server did not start (install it: sudo apt-get install redis-server): ${error}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
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
  const login = await fetch(`http://127.0.0.1:${port}/login`);
  const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  return { kind, port, child, cookie };
}

/** CPU microseconds the process has used (user + system), or NaN off Linux. */
function cpuMicros(pid) {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return NaN;
  const fields = readFileSync(stat, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // clock ticks, USER_HZ = 100
}

function load(server, route, duration) {
  return autocannon({
    url: `http://127.0.0.1:${server.port}/${route}`,
    connections: CONNECTIONS,
    duration,
    headers: server.cookie ? { cookie: server.cookie } : {},
  });
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

const servers = [];
let redis;
try {
  if (SELECTED.includes('redis')) redis = await startRedis();
  for (const kind of KINDS) servers.push(await start(kind, redis ? { REDIS_URL: redis.url } : {}));
  process.stdout.write(`warming up ${servers.length} servers... `);
  for (const server of servers) for (const route of ROUTES) await load(server, route, 1);
  console.log('done');

  const samples = {}; // samples[route][kind] = [{ rps, p99, errors }]
  for (let round = 0; round < ROUNDS; round++) {
    for (const route of ROUTES) {
      const order = servers.map((_, i) => servers[(i + round) % servers.length]);
      for (const server of order) {
        const cpuBefore = cpuMicros(server.child.pid);
        const commandsBefore = redis && (await redisCommandCounts(redis.client));
        const result = await load(server, route, DURATION);
        const cpu = (cpuMicros(server.child.pid) - cpuBefore) / result.requests.total;
        const commandsAfter = redis && (await redisCommandCounts(redis.client));
        ((samples[route] ??= {})[server.kind] ??= []).push({
          rps: result.requests.average,
          p99: result.latency.p99,
          cpu,
          errors: result.errors + result.non2xx,
          commands: redis && Object.fromEntries(REDIS_COMMANDS.map((c) => [c, (commandsAfter[c] - commandsBefore[c]) / result.requests.total])),
        });
        console.log(
          `round ${round + 1}/${ROUNDS} /${route} ${server.kind}: ${Math.round(result.requests.average)} req/s, p99 ${result.latency.p99} ms, ${Math.round(cpu)} µs CPU/req`,
        );
      }
    }
  }

  const lines = [
    `Medians of ${ROUNDS} interleaved runs of ${DURATION} s, ${CONNECTIONS} connections, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.`,
    'Ratios are req/s over req/s; in brackets, the same ratio from server CPU per request (other ÷ this), the steadier measure.',
  ];
  for (const suite of SELECTED) {
    const { kinds, anchors } = SUITES[suite];
    const withRedis = suite === 'redis';
    lines.push(
      '',
      `**${withRedis ? 'Sessions in Redis (one local redis-server)' : 'Signed cookies and in-process stores'}**`,
      '',
      `| route | library | req/s | p99 ms | CPU µs/req | ${anchors.map((a) => `× ${a}`).join(' | ')} |${withRedis ? ' Redis commands / request |' : ''} errors |`,
      `|---|---|---:|---:|---:|${anchors.map(() => '---:').join('|')}|${withRedis ? '---|' : ''}---:|`,
    );
    for (const route of ROUTES) {
      const rps = (kind) => median(samples[route][kind].map((s) => s.rps));
      const cpu = (kind) => median(samples[route][kind].map((s) => s.cpu));
      for (const kind of kinds) {
        const runs = samples[route][kind];
        const ratio = (other) => `${(rps(kind) / rps(other)).toFixed(2)} (${(cpu(other) / cpu(kind)).toFixed(2)})`;
        const commands = withRedis
          ? ` ${REDIS_COMMANDS.map((c) => [c.toUpperCase(), median(runs.map((s) => s.commands[c]))])
              .filter(([, n]) => n > 0.005)
              .map(([c, n]) => `${c} ${n.toFixed(2)}`)
              .join(', ') || '0'} |`
          : '';
        lines.push(
          `| /${route} | ${kind} | ${Math.round(rps(kind))} | ${median(runs.map((s) => s.p99))} | ${Math.round(cpu(kind))} | ${anchors.map(ratio).join(' | ')} |${commands} ${runs.reduce((n, s) => n + s.errors, 0)} |`,
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
