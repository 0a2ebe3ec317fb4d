/**
 * The SQL benchmark: nest-session's SqlSessionInterface on PostgreSQL side by
 * side with express-session + connect-pg-simple, with bare NestJS, and with
 * the statements written by hand in the handlers (no session library: the
 * floor any store on node-postgres stands on), and with those handlers behind
 * a NestJS interceptor that does nothing (the floor of a store that works
 * through an interceptor, as @Session() binds nest-session's; measured
 * against connect-pg-simple too), behind the same NestJS routes
 * (bench/sql-server.ts), each server in its own process, driven by
 * autocannon from this one. Part of npm run bench (bench/all.mjs); alone:
 *   BENCH_ONLY=sql npm run bench
 * or, after the build, node bench/sql.mjs.
 *
 * The method is run.mjs's (the helpers of both are in harness.mjs): both servers serve the same route at the same time,
 * pinned to the same CPU (the load generator and PostgreSQL run on the
 * others), BENCH_ROUNDS rounds; a ratio is the median over rounds of our req/s
 * over theirs, and in brackets the same from CPU time per request (theirs ÷
 * ours), read from /proc.
 *
 * PostgreSQL is a cluster of the script's own (Debian's postgresql package,
 * initdb into a temporary folder, fsync off, on a free loopback port) with
 * pg_stat_statements loaded. Each server logs in as a role of its own, so
 * statements per request are counted per server: each alone for 2000 requests
 * per route, from pg_stat_statements' calls for its role.
 *
 * Routes: /none, /read and /write as in run.mjs (every request with the one
 * session cookie the server set at /login, so /write is 16 concurrent writers
 * of one session), and write-many: /write spread over BENCH_SESSIONS sessions
 * (default 64), as many users would.
 *
 * BENCH_DURATION (seconds per run, default 2), BENCH_ROUNDS (default 8),
 * BENCH_WARMUP (seconds per server and route, default 4), BENCH_CONNECTIONS
 * (per server, default 16), BENCH_ROUTES (default none,read,write,write-many)
 * tune it; BENCH_PIN=0 leaves the processes unpinned. The table is printed
 * and written to bench/results/sql.md.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
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

const { DURATION, ROUNDS, WARMUP, CONNECTIONS, SESSIONS } = settings({ DURATION: 2, ROUNDS: 8, WARMUP: 4, CONNECTIONS: 16, SESSIONS: 64 });
const ROUTES = (process.env.BENCH_ROUTES ?? 'none,read,write,write-many').split(',');
const SUBJECT = 'nest-session+pg';
const ANCHOR = 'express-session+connect-pg-simple';
/** The statements by hand behind an interceptor that does nothing: the least any store bound by an interceptor costs. */
const FLOOR = 'pg by hand+interceptor';
const OTHERS = ['bare', ANCHOR, 'pg by hand', FLOOR];
/** The database role each server logs in as: statements are counted per role. */
const ROLES = { 'nest-session+pg': 'nest', [ANCHOR]: 'connect', bare: 'bare', 'pg by hand': 'by_hand', [FLOOR]: 'by_hand_interceptor' };
const SERVER = fileURLToPath(new URL('./dist/sql-server.js', import.meta.url));
const COUNTED_REQUESTS = 2000;

/** `cookies`: one Cookie header for every request, or (write-many) a list the requests take in turn. */
function loadRoute(server, route, length, cookies = route === 'write-many' ? server.cookies : server.cookie) {
  return load(server.port, route === 'write-many' ? 'write' : route, { connections: CONNECTIONS, ...length, cookies });
}

// --- PostgreSQL -------------------------------------------------------------

function postgresBin() {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((name) => existsSync(join(root, name, 'bin', 'postgres'))) : [];
  if (majors.length === 0) throw new Error('The SQL benchmark needs PostgreSQL: run "sudo apt-get install postgresql".');
  return join(root, majors.sort((a, b) => Number(b) - Number(a))[0], 'bin');
}

/** PostgreSQL refuses to run as root: as root, its processes run as the postgres user. */
function account() {
  if (process.getuid?.() !== 0) return {};
  const id = (flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }));
  return { uid: id('-u'), gid: id('-g') };
}

async function startPostgres() {
  const bin = postgresBin();
  const dir = mkdtempSync(join(tmpdir(), 'nest-session-bench-pg-'));
  const owner = account();
  if (owner.uid !== undefined) chownSync(dir, owner.uid, owner.gid);
  execFileSync(join(bin, 'initdb'), ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'], { stdio: 'ignore', ...owner });
  const port = await freePort();
  const child = spawn(
    join(bin, 'postgres'),
    [
      '-D', join(dir, 'data'), '-p', String(port),
      '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`,
      '-c', 'fsync=off', '-c', 'full_page_writes=off',
      '-c', 'shared_preload_libraries=pg_stat_statements', '-c', 'pg_stat_statements.track=all',
    ],
    { stdio: 'ignore', ...owner },
  );
  const admin = { host: dir, port, user: 'postgres', database: 'postgres' };
  await retry(
    400,
    async () => {
      const client = new pg.Client(admin);
      try {
        await client.connect();
        await client.end();
      } catch (error) {
        await client.end().catch(() => undefined);
        throw error;
      }
    },
    (error) => new Error(`PostgreSQL did not start: ${error.message}`),
  );
  const setup = new pg.Client(admin);
  await setup.connect();
  await setup.query('CREATE DATABASE bench');
  for (const role of new Set(Object.values(ROLES))) await setup.query(`CREATE ROLE ${role} LOGIN`);
  await setup.end();
  const client = new pg.Client({ ...admin, database: 'bench' });
  await client.connect();
  await client.query('CREATE EXTENSION pg_stat_statements');
  await client.query(`GRANT ALL ON SCHEMA public TO ${[...new Set(Object.values(ROLES))].join(', ')}`);
  // PostgreSQL and its backends share the load generator's CPUs, not the measured servers'.
  for (const pid of [child.pid, ...descendants(child.pid)]) pin(pid, OTHER_CPUS);
  return {
    port,
    child,
    client,
    urlFor: (role) => `postgres://${role}@127.0.0.1:${port}/bench`,
    close: () => {
      child.kill('SIGQUIT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function descendants(root) {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === root) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/** Statements run so far by each role: { role: { normalized query: calls } }. */
async function statementCalls(client) {
  const { rows } = await client.query(
    `SELECT r.rolname AS role, s.query, s.calls::int AS calls FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = ANY($1)`,
    [Object.values(ROLES)],
  );
  const calls = {};
  for (const { role, query, calls: n } of rows) (calls[role] ??= {})[query] = (calls[role]?.[query] ?? 0) + n;
  return calls;
}

/** What a statement does: SELECT, UPDATE, INSERT … ON CONFLICT (an upsert), or a CTE's writes. */
function statementKind(query) {
  const text = query.trim().toUpperCase();
  const verbs = ['UPDATE', 'INSERT', 'DELETE'].filter((verb) => new RegExp(`\\b${verb}\\b`).test(text));
  if (text.startsWith('SELECT')) return 'SELECT';
  if (text.startsWith('INSERT') && text.includes('ON CONFLICT')) return 'UPSERT';
  if (text.startsWith('WITH')) return verbs.length ? verbs.join('+') : 'SELECT';
  return text.split(/\s/)[0];
}

// --- servers ----------------------------------------------------------------

async function start(kind, database) {
  const port = await freePort();
  const { child } = await forkServer(SERVER, [kind, String(port)], kind, { PG_URL: database.urlFor(ROLES[kind]) });
  const cookie = await login(port);
  const cookies = await Promise.all(Array.from({ length: SESSIONS }, () => login(port)));
  return { kind, port, child, cookie, cookies };
}

const servers = [];
const byKind = (kind) => servers.find((server) => server.kind === kind);
let database;
pin(process.pid, OTHER_CPUS);
try {
  database = await startPostgres();
  for (const kind of [SUBJECT, ...OTHERS]) servers.push(await start(kind, database));
  await step(`warming up ${servers.length} servers (${WARMUP} s a route)`, async () => {
    for (const server of servers) for (const route of ROUTES) await loadRoute(server, route, { duration: WARMUP });
  });

  // samples[route][other][round] = { ours, theirs }; floor: the same for FLOOR against the anchor.
  const { sql: samples, floor } = await compare({
    rounds: ROUNDS,
    routes: ROUTES,
    groups: [
      { name: 'sql', subject: SUBJECT, others: OTHERS },
      { name: 'floor', subject: FLOOR, others: [ANCHOR], routes: ROUTES.filter((route) => route !== 'none') },
    ],
    serverOf: byKind,
    // Bare NestJS sets no cookie; it gets ours.
    load: (route, server, ours) => {
      const source = server.kind === 'bare' ? ours : server;
      return loadRoute(server, route, { duration: DURATION }, route === 'write-many' ? source.cookies : source.cookie);
    },
  });

  // Statements per request: each server alone for a fixed number of requests, all answered when autocannon returns.
  await sleep(1000);
  const statements = {}; // statements[route][kind] = { SELECT: n, … }
  for (const route of ROUTES) {
    for (const kind of [SUBJECT, ANCHOR, 'pg by hand', FLOOR]) {
      const role = ROLES[kind];
      const before = (await statementCalls(database.client))[role] ?? {};
      const result = await loadRoute(byKind(kind), route, { amount: COUNTED_REQUESTS });
      const after = (await statementCalls(database.client))[role] ?? {};
      const perKind = {};
      for (const [query, calls] of Object.entries(after)) {
        const n = calls - (before[query] ?? 0);
        if (n > 0) perKind[statementKind(query)] = (perKind[statementKind(query)] ?? 0) + n / result.requests.total;
      }
      (statements[route] ??= {})[kind] = perKind;
    }
  }
  const statementText = (route, kind) => perRequest(Object.entries(statements[route][kind] ?? {}));

  const lines = [
    comparisonPreamble({ rounds: ROUNDS, duration: DURATION, connections: CONNECTIONS }),
    'Each row: nest-session and the other serving the route at the same time on one shared CPU (PostgreSQL and the load generator on the other).',
    "The ratio is the median over rounds of nest-session's req/s over theirs; in brackets, from CPU time per request (theirs ÷ ours).",
    '',
    '**Sessions in PostgreSQL (one local server, pg Pool of 10 each)**',
    '',
    ...comparisonHeader(SUBJECT, ['statements / request (ours / theirs)']),
  ];
  for (const route of ROUTES) {
    for (const other of OTHERS) {
      const counted = `${statementText(route, SUBJECT)} / ${other === 'bare' ? '0' : statementText(route, other)}`;
      lines.push(comparisonRow(route === 'write-many' ? `/write, ${SESSIONS} sessions` : `/${route}`, other, samples[route][other], [counted]));
    }
  }
  lines.push(
    '',
    `/none never touches the session; /read reads one value; /write reads and writes a counter, every request with the one session cookie the server set at /login; write-many is /write over ${SESSIONS} sessions in turn.`,
    "nest-session refreshes an unchanged session's expiry at most once a minute (refreshAfter); connect-pg-simple touches it on every request.",
    "pg by hand: no session library; the handlers run a store's statements themselves (/read a SELECT, /write a SELECT and an UPDATE) on the row its cookie names.",
    `${FLOOR}: the same handlers behind a NestJS interceptor that only hands their result on (what Nest charges for binding any interceptor, as @Session() binds nest-session's).`,
    '',
    `**The floor of a store bound by an interceptor, against ${ANCHOR}** (the same rounds)`,
    '',
    `The ratio is the median over rounds of ${FLOOR}'s req/s over ${ANCHOR}'s; in brackets, from CPU time per request.`,
    '',
    ...comparisonHeader(FLOOR, ['statements / request (floor / theirs)']),
  );
  for (const route of Object.keys(floor)) {
    const counted = `${statementText(route, FLOOR)} / ${statementText(route, ANCHOR)}`;
    lines.push(comparisonRow(route === 'write-many' ? `/write, ${SESSIONS} sessions` : `/${route}`, ANCHOR, floor[route][ANCHOR], [counted]));
  }
  publish('sql.md', lines.join('\n'));
} finally {
  for (const server of servers) server.child.kill();
  await database?.client.end().catch(() => undefined);
  database?.close();
}
