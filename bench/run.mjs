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
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const DURATION = Number(process.env.BENCH_DURATION ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const KINDS = ['bare', 'nest-session', 'cookie-session', 'express-session', 'nestjs-session'];
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

async function start(kind) {
  const port = await freePort();
  const child = fork(SERVER, [kind, String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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
try {
  for (const kind of KINDS) servers.push(await start(kind));
  process.stdout.write(`warming up ${servers.length} servers... `);
  for (const server of servers) for (const route of ROUTES) await load(server, route, 1);
  console.log('done');

  const samples = {}; // samples[route][kind] = [{ rps, p99, errors }]
  for (let round = 0; round < ROUNDS; round++) {
    for (const route of ROUTES) {
      const order = servers.map((_, i) => servers[(i + round) % servers.length]);
      for (const server of order) {
        const cpuBefore = cpuMicros(server.child.pid);
        const result = await load(server, route, DURATION);
        const cpu = (cpuMicros(server.child.pid) - cpuBefore) / result.requests.total;
        ((samples[route] ??= {})[server.kind] ??= []).push({
          rps: result.requests.average,
          p99: result.latency.p99,
          cpu,
          errors: result.errors + result.non2xx,
        });
        console.log(
          `round ${round + 1}/${ROUNDS} /${route} ${server.kind}: ${Math.round(result.requests.average)} req/s, p99 ${result.latency.p99} ms, ${Math.round(cpu)} µs CPU/req`,
        );
      }
    }
  }

  const lines = [
    `Medians of ${ROUNDS} interleaved runs of ${DURATION} s, ${CONNECTIONS} connections, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.`,
    '',
    'Ratios are req/s over req/s; in brackets, the same ratio from server CPU per request (other ÷ this), the steadier measure.',
    '',
    '| route | library | req/s | p99 ms | CPU µs/req | × bare NestJS | × cookie-session | × express-session | errors |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const route of ROUTES) {
    const rps = (kind) => median(samples[route][kind].map((s) => s.rps));
    const cpu = (kind) => median(samples[route][kind].map((s) => s.cpu));
    for (const kind of KINDS) {
      const runs = samples[route][kind];
      const ratio = (other) => `${(rps(kind) / rps(other)).toFixed(2)} (${(cpu(other) / cpu(kind)).toFixed(2)})`;
      lines.push(
        `| /${route} | ${kind} | ${Math.round(rps(kind))} | ${median(runs.map((s) => s.p99))} | ${Math.round(cpu(kind))} | ${ratio('bare')} | ${ratio('cookie-session')} | ${ratio('express-session')} | ${runs.reduce((n, s) => n + s.errors, 0)} |`,
      );
    }
  }
  lines.push('', '/none never touches the session; /read reads one value; /write reads and writes a counter. Signed-cookie sessions make no store round trip.');
  const table = lines.join('\n');
  console.log('\n' + table);
  const out = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(out, { recursive: true });
  writeFileSync(`${out}latest.md`, table + '\n');
  console.log(`\nWritten to bench/results/latest.md`);
} finally {
  for (const server of servers) server.child.kill();
}
