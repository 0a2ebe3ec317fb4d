/**
 * What the benchmarks share (run.mjs, sql.mjs, filesystem.mjs): their servers
 * on free loopback ports, pinned to one CPU, loaded side by side with
 * autocannon, CPU time read from /proc, medians over rounds, and the tables.
 *
 * The method: the two servers of a pair serve at the same time, both pinned to
 * the last CPU (this process, the load generator, and the databases run on
 * the others), so whatever else the shared machine does slows both alike.
 * Each pair runs for a number of rounds, alternating which load starts first;
 * a ratio is the median over rounds.
 *
 * Read here: BENCH_PIN=0 leaves every process unpinned; settings() reads the
 * BENCH_ variables each script names (BENCH_DURATION, BENCH_ROUNDS, …).
 */
import autocannon from 'autocannon';
import { execFileSync, fork } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

/**
 * Each of `defaults` (e.g. `{ DURATION: 2, ROUNDS: 8 }`) as a number, from
 * the environment's BENCH_<name> (BENCH_DURATION, BENCH_ROUNDS) where it is set.
 */
export const settings = (defaults) =>
  Object.fromEntries(Object.entries(defaults).map(([name, value]) => [name, Number(process.env[`BENCH_${name}`] ?? value)]));

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

/**
 * Calls `attempt` until it resolves, 50 ms apart, and returns what it
 * resolved to; once more than `tries` attempts have failed, throws
 * `fail(error)` instead.
 */
export async function retry(tries, attempt, fail) {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i > tries) throw fail(error);
      await sleep(50);
    }
  }
}

/**
 * With two or more CPUs, servers run on the last one and this process (the
 * load generator) and the databases on the others, so the generator does not
 * steal the measured server's time. `taskset -a` moves every thread.
 */
const CPUS = availableParallelism();
export const SERVER_CPU = CPUS > 1 ? String(CPUS - 1) : undefined;
export const OTHER_CPUS = CPUS > 1 ? `0-${CPUS - 2}` : undefined;
export function pin(pid, cpus) {
  if (cpus === undefined || process.env.BENCH_PIN === '0') return;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
  } catch {
    // taskset missing (util-linux): unpinned runs are only noisier.
  }
}

/** CPU microseconds the process has used (user + system), or NaN off Linux. */
export function cpuMicros(pid) {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return NaN;
  const fields = readFileSync(stat, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // clock ticks, USER_HZ = 100
}

export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/**
 * Forks one server (`file` with `args`, `env` on top of this process's) and
 * waits for its first IPC message, which it sends once it listens; the
 * server is then pinned to the servers' CPU. `name` names it if it exits
 * first.
 */
export async function forkServer(file, args, name, env = {}) {
  const child = fork(file, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...env } });
  const message = await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`${name} server exited with ${code}`)));
  });
  pin(child.pid, SERVER_CPU);
  return { child, message };
}

/** The Cookie header of a new session: what the server at `port` sets at /login. */
export async function login(port) {
  const response = await fetch(`http://127.0.0.1:${port}/login`);
  return response.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
}

/**
 * autocannon on GET /`path` of the server at `port`. `cookies`: one Cookie
 * header for every request, or a list the requests take in turn (an empty
 * list: every request without one, a new visitor); `options`: autocannon's,
 * `connections` and `{ duration }` in seconds or `{ amount }` of requests
 * among them.
 */
export function load(port, path, { cookies, ...options }) {
  let next = 0;
  const cookieOptions = Array.isArray(cookies)
    ? {
        requests: [
          {
            setupRequest: (request) =>
              cookies.length ? { ...request, headers: { ...request.headers, cookie: cookies[next++ % cookies.length] } } : request,
          },
        ],
      }
    : { headers: cookies ? { cookie: cookies } : {} };
  return autocannon({ url: `http://127.0.0.1:${port}/${path}`, ...options, ...cookieOptions });
}

/** Prints `text... `, waits for `work`, then `done`. */
export async function step(text, work) {
  process.stdout.write(`${text}... `);
  await work();
  console.log('done');
}

/**
 * Both servers of `pair` loaded at once, `run(server)` starting one's load.
 * The load that starts first gets about 1 % more (measured with one server
 * twice), so `swap` (alternated between rounds) starts the second first. The
 * results come back in the order of `pair`, each with `cpu`: the server's
 * CPU µs per request, from /proc.
 */
export async function together(pair, swap, run) {
  const order = swap ? [pair[1], pair[0]] : pair;
  const cpuBefore = order.map((server) => cpuMicros(server.child.pid));
  const results = await Promise.all(order.map(run));
  const measured = results.map((result, i) => ({ result, cpu: (cpuMicros(order[i].child.pid) - cpuBefore[i]) / result.requests.total }));
  return swap ? measured.reverse() : measured;
}

/**
 * The comparison of run.mjs and sql.mjs: every round, every group's subject
 * against each of its others on every route, together(), the others in an
 * order that turns by one each round (a group with `routes` of its own runs
 * only those). `serverOf(kind)` is the server of a
 * kind; `load(route, server, ours)` starts a timed load of `route` on
 * `server` (`ours`: the subject's server, whose cookies a server that sets
 * none may borrow). Returns samples[group name][route][other][round] =
 * { ours, theirs }, each { rps, p99, cpu (µs per request), errors }.
 */
export async function compare({ rounds, routes, groups, serverOf, load }) {
  const samples = {};
  for (let round = 0; round < rounds; round++) {
    for (const { name, subject, others, routes: own } of groups) {
      for (const route of own ?? routes) {
        const order = others.map((_, i) => others[(i + round) % others.length]);
        for (const other of order) {
          const subjectServer = serverOf(subject);
          const measured = await together([subjectServer, serverOf(other)], round % 2 === 1, (server) => load(route, server, subjectServer));
          const [ours, theirs] = measured.map(comparedFigures);
          (((samples[name] ??= {})[route] ??= {})[other] ??= []).push({ ours, theirs });
          console.log(
            `round ${round + 1}/${rounds} /${route}: ${subject} ${Math.round(ours.rps)} req/s (${Math.round(ours.cpu)} µs CPU/req)` +
              ` | ${other} ${Math.round(theirs.rps)} req/s (${Math.round(theirs.cpu)} µs CPU/req)`,
          );
        }
      }
    }
  }
  return samples;
}

/** What compare() keeps of one server's run in a pair. */
const comparedFigures = ({ result, cpu }) => ({
  rps: result.requests.average,
  p99: result.latency.p99,
  cpu,
  errors: result.errors + result.non2xx,
});

/** The first line of run.mjs's and sql.mjs's tables. */
export const comparisonPreamble = ({ rounds, duration, connections }) =>
  `${rounds} rounds of ${duration} s per pair and route, ${connections} connections per server, Node ${process.version}, ${today()}.`;

export const today = () => new Date().toISOString().slice(0, 10);

/** The header and separator of a compare() table; `extra`: columns of text before errors. */
export const comparisonHeader = (subject, extra = []) => [
  `| route | ${subject} vs | ratio | ${subject} req/s | their req/s | p99 ms (ours / theirs) | CPU µs/req (ours / theirs) |${extra.map((column) => ` ${column} |`).join('')} errors |`,
  `|---|---|---:|---:|---:|---:|---:|${extra.map(() => '---|').join('')}---:|`,
];

/**
 * One row of a compare() table from its `runs` ({ ours, theirs } a round): the
 * median ratio of req/s (in brackets, of CPU time per request, theirs ÷
 * ours), median req/s, p99 and CPU µs per request, `extra` cells, and the
 * errors of all rounds.
 */
export function comparisonRow(route, other, runs, extra = []) {
  const med = (of) => median(runs.map(of));
  const ratio = `${med((r) => r.ours.rps / r.theirs.rps).toFixed(2)} (${med((r) => r.theirs.cpu / r.ours.cpu).toFixed(2)})`;
  const errors = runs.reduce((n, r) => n + r.ours.errors + r.theirs.errors, 0);
  return (
    `| ${route} | ${other} | ${ratio} | ${Math.round(med((r) => r.ours.rps))} | ${Math.round(med((r) => r.theirs.rps))} | ${med((r) => r.ours.p99)} / ${med((r) => r.theirs.p99)} | ${Math.round(med((r) => r.ours.cpu))} / ${Math.round(med((r) => r.theirs.cpu))} |` +
    `${extra.map((cell) => ` ${cell} |`).join('')} ${errors} |`
  );
}

/** Counts per request as `GET 1.00 + SET 0.50`, leaving out those under 0.005; `0` for none. */
export const perRequest = (counts) =>
  counts
    .filter(([, n]) => n > 0.005)
    .map(([what, n]) => `${what} ${n.toFixed(2)}`)
    .join(' + ') || '0';

/** Prints the table and writes it to bench/results/`name`. */
export function publish(name, table) {
  console.log('\n' + table);
  const out = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(out, { recursive: true });
  writeFileSync(`${out}${name}`, table + '\n');
  console.log(`\nWritten to bench/results/${name}`);
}
