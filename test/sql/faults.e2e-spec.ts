/**
 * The SQL store under faults, on PostgreSQL and MariaDB: writes held up in a
 * paused server (SIGSTOP) past their budget; then with concurrent requests
 * running throughout, the server paused past the request budget and resumed,
 * then killed and started again on the same port.
 * Asserted: no crash; every response within the budget (plus a tolerance for
 * the HTTP round trip); 503 only on routes that use the session (a route
 * without it keeps answering 200); no write answered 503 is in the table once
 * everything the server held has run (but one the server committed at the
 * very moment of the fault, its reply held or cut); every write answered 200 is; a
 * refused connection fails at once, naming the address; recovery without a
 * restart of the application.
 */
import { Controller, Get, Query, type INestApplication } from '@nestjs/common';
import { createPool, type Pool as MysqlPool } from 'mysql2/promise';
import pg from 'pg';
import { Session, SessionModule, StoreSerializer, type SessionMixin } from '../../lib/index.js';
import { SqlSessionInterface, type SqlClient } from '../../lib/sql/index.js';
import { RecordingLogger, createApp } from '../support/apps.js';
import { sleep, type ManagedServer } from '../support/managed-server.js';
import { MariaDBServer } from '../support/mariadb-server.js';
import { PostgresServer } from '../support/postgres-server.js';
import { numbered, primitives, type Row } from './sql-backend.js';

/** Lets a test hold handlers between their session's read and its write. */
class Gate {
  arrived = 0;
  private opened!: () => void;
  readonly open = new Promise<void>((resolve) => (this.opened = resolve));
  release() {
    this.opened();
  }
}
let gate = new Gate();

@Controller()
class LoadController {
  @Get('gated-put')
  async gatedPut(@Session() session: SessionMixin, @Query('key') key: string) {
    gate.arrived++;
    await gate.open;
    session.set(key, 1);
    return '';
  }

  @Get('login')
  login(@Session() session: SessionMixin) {
    session.set('user', 'someone');
    return { sid: (session as unknown as { sid: string }).sid };
  }

  @Get('put')
  put(@Session() session: SessionMixin, @Query('key') key: string) {
    session.set(key, 1);
    return '';
  }

  @Get('none')
  none() {
    return 'none';
  }
}

interface Backend {
  server: ManagedServer;
  client: SqlClient;
  query(sql: string, params?: unknown[]): Promise<Row[]>;
  end(): Promise<void>;
}

async function postgres(): Promise<Backend> {
  const server = await PostgresServer.start();
  const pool = new pg.Pool(server.poolConfig);
  pool.on('error', () => undefined); // idle connections break when the server is killed: expected
  const raw = new pg.Pool(server.poolConfig);
  raw.on('error', () => undefined);
  return {
    server,
    client: pool,
    query: async (sql, params = []) => (await raw.query(numbered(sql), params)).rows,
    end: async () => {
      await Promise.all([pool.end(), raw.end()]);
      await server.close();
    },
  };
}

async function mariadb(): Promise<Backend> {
  const server = await MariaDBServer.start();
  const pool: MysqlPool = createPool(server.connectionOptions);
  const raw: MysqlPool = createPool(server.connectionOptions);
  return {
    server,
    client: pool,
    query: async (sql, params = []) => {
      const [rows] = await raw.query(sql, params);
      return rows as Row[];
    },
    end: async () => {
      await Promise.all([pool.end(), raw.end()]);
      await server.close();
    },
  };
}

/** What the budget is allowed to overrun by, for the HTTP round trip on a loaded two-core machine. */
const TOLERANCE = 600;
const SESSIONS = 6;
const WRITERS = 12;

interface Outcome {
  route: string;
  sid?: string;
  key?: string;
  status: number;
  elapsed: number;
  at: number;
}

describe.each([
  ['PostgreSQL', postgres],
  ['MariaDB', mariadb],
] as const)('%s under faults', (name, start) => {
  let backend: Backend;
  let app: INestApplication;
  let base: string;
  const logger = new RecordingLogger();
  const serializer = new StoreSerializer('msgpack');
  let counter = 0;

  /** What the compare-and-sets sent to the database came back with: written, refused as late, or found changed. */
  let replies: Array<{ written: boolean; late: boolean }> = [];

  async function boot(storeTimeout: number) {
    await app?.close();
    const sessions = new SqlSessionInterface({ client: backend.client, storeTimeout });
    const statements = primitives(sessions).statements;
    const swap = statements.swap.bind(statements);
    statements.swap = async (...args) => {
      const reply = await swap(...args);
      replies.push(reply);
      return reply;
    };
    app = await createApp(
      {
        imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })],
        controllers: [LoadController],
      },
      logger,
    );
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
  }

  async function get(route: string, sid?: string): Promise<Outcome> {
    const started = Date.now();
    const key = route === 'put' ? `k${++counter}` : undefined;
    const response = await fetch(`${base}/${route}${key ? `?key=${key}` : ''}`, { headers: sid ? { cookie: `session=${sid}` } : {} });
    await response.arrayBuffer();
    return { route, sid, key, status: response.status, elapsed: Date.now() - started, at: started };
  }

  /** Writers on SESSIONS sessions and a prober of /none, until `during` resolves. */
  async function underLoad(sids: string[], during: () => Promise<void>): Promise<Outcome[]> {
    const outcomes: Outcome[] = [];
    let running = true;
    const loops = [
      ...Array.from({ length: WRITERS }, async (_, i) => {
        while (running) outcomes.push(await get('put', sids[i % sids.length]));
      }),
      (async () => {
        while (running) {
          outcomes.push(await get('none'));
          await sleep(20);
        }
      })(),
    ];
    try {
      await during();
    } finally {
      running = false;
      await Promise.all(loops);
    }
    return outcomes;
  }

  /** The keys stored in each session's record now. */
  async function storedKeys(sids: string[]): Promise<Map<string, Set<string>>> {
    const stored = new Map<string, Set<string>>();
    for (const sid of sids) {
      const [row] = await backend.query('SELECT data FROM sessions WHERE session_id = ?', [`session:${sid}`]);
      stored.set(sid, new Set(row ? Object.keys(serializer.loads(row.data as Buffer)) : []));
    }
    return stored;
  }

  /**
   * Every write answered 200 is stored, and no write answered 503 lands late. A 503 may still be stored when
   * the server applied the write in time and the fault then held or cut its reply (it hit between the commit
   * and the reply; see the README's "Reliability"): only a request already running when the fault hit can be
   * one. That statements held by a paused server refuse themselves when it wakes is asserted exactly by the
   * gated test above; here, under load, no write sent after the fault may land.
   */
  async function expectHonestWrites(outcomes: Outcome[], sids: string[], faultAt: number) {
    const stored = await storedKeys(sids);
    const puts = outcomes.filter((o) => o.route === 'put');
    const lost = puts.filter((o) => o.status === 200 && !stored.get(o.sid!)!.has(o.key!));
    const storedAfter503 = puts.filter((o) => o.status === 503 && stored.get(o.sid!)!.has(o.key!));
    const startedAfterFault = storedAfter503.filter((o) => o.at >= faultAt);
    expect({ lost: lost.length, storedAfter503StartedAfterFault: startedAfterFault.length }).toEqual({ lost: 0, storedAfter503StartedAfterFault: 0 });
    if (storedAfter503.length > 0) console.log(`${name}: ${storedAfter503.length} write(s) running when the fault hit were answered 503 and stored`);
  }

  /** Sessions to write to, and a pool warmed up (its connections opened) by a round of writes to each. */
  async function login(): Promise<string[]> {
    const sids = await Promise.all(Array.from({ length: SESSIONS }, async () => ((await (await fetch(`${base}/login`)).json()) as { sid: string }).sid));
    for (let round = 0; round < 3; round++) await Promise.all(Array.from({ length: WRITERS }, (_, i) => get('put', sids[i % SESSIONS])));
    return sids;
  }

  beforeAll(async () => {
    backend = await start();
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await backend?.end();
  });

  test('writes held up in a paused server past the budget are answered 503 within it, run when it wakes, and change nothing', async () => {
    const budget = 1000;
    await boot(budget);
    gate = new Gate();
    // One session per writer: each write is its own statement (writes to one session would wait in this process).
    const writers = 8;
    const sids = await Promise.all(Array.from({ length: writers }, async () => ((await (await fetch(`${base}/login`)).json()) as { sid: string }).sid));
    // The pool's connections open now: a write needing a new connection would not even be sent to a paused server.
    await Promise.all(sids.map((sid) => get('put', sid)));
    const pending = sids.map((sid, i) => get(`gated-put?key=held${i}`, sid));
    while (gate.arrived < writers) await sleep(10);
    replies = [];
    backend.server.pause();
    let answers: Outcome[];
    try {
      gate.release();
      const untouched = await get('none');
      answers = await Promise.all(pending);
      expect(untouched.status).toBe(200);
    } finally {
      backend.server.resume();
    }
    expect(answers.map((a) => a.status)).toEqual(Array(writers).fill(503));
    for (const answer of answers) expect(answer.elapsed).toBeLessThan(budget + TOLERANCE);
    // The statements the paused server held run now, after their deadline: each refuses itself.
    const deadline = Date.now() + 10_000;
    while (replies.length < writers && Date.now() < deadline) await sleep(50);
    expect(replies).toEqual(Array(writers).fill({ written: false, late: true }));
    const stored = await storedKeys(sids);
    sids.forEach((sid, i) => expect([...stored.get(sid)!]).not.toContain(`held${i}`));
    // Recovery without a restart.
    expect((await get('put', sids[0])).status).toBe(200);
  }, 60_000);

  test('paused past the budget: session routes answer 503 within it, others 200, and no write answered 503 lands when the server wakes', async () => {
    const budget = 1000;
    await boot(budget);
    const sids = await login();
    let pausedAt = 0;
    let resumedAt = 0;
    const outcomes = await underLoad(sids, async () => {
      await sleep(700);
      pausedAt = Date.now();
      backend.server.pause();
      try {
        await sleep(3 * budget);
      } finally {
        backend.server.resume();
        resumedAt = Date.now();
      }
      await sleep(budget + 1500);
    });
    // What the server held when it stopped has run by now (refused, being late).
    await sleep(1000);

    const statuses = (selected: Outcome[]) => new Set(selected.map((o) => o.status));
    const puts = outcomes.filter((o) => o.route === 'put');
    // Answered before the pause; sent during it with a budget ending before the resume; sent well after it.
    expect(statuses(puts.filter((o) => o.at + o.elapsed < pausedAt))).toEqual(new Set([200]));
    expect(statuses(puts.filter((o) => o.at > pausedAt + 50 && o.at + budget < resumedAt))).toEqual(new Set([503]));
    expect(statuses(puts.filter((o) => o.at > resumedAt + budget))).toEqual(new Set([200]));
    expect(statuses(outcomes.filter((o) => o.route === 'none'))).toEqual(new Set([200]));
    const slowest = Math.max(...outcomes.map((o) => o.elapsed));
    expect(slowest).toBeLessThanOrEqual(budget + TOLERANCE);
    await expectHonestWrites(outcomes, sids, pausedAt);
    expect(outcomes.filter((o) => o.route === 'put' && o.status === 503).length).toBeGreaterThan(WRITERS);
  }, 60_000);

  test('killed and started again on the same port: refused at once, naming the address; back without a restart', async () => {
    const budget = 3000;
    await boot(budget);
    const sids = await login();
    const port = backend.server.port;
    let killedAt = 0;
    let restartingAt = 0;
    let restartedAt = 0;
    logger.lines.length = 0;
    const outcomes = await underLoad(sids, async () => {
      await sleep(500);
      killedAt = Date.now();
      await backend.server.stop();
      await sleep(1500);
      restartingAt = Date.now();
      await backend.server.start();
      restartedAt = Date.now();
      await sleep(1500);
    });
    expect(backend.server.port).toBe(port);

    const down = outcomes.filter((o) => o.route === 'put' && o.at > killedAt + 100 && o.at + o.elapsed < restartingAt);
    expect(down.length).toBeGreaterThan(WRITERS);
    expect(new Set(down.map((o) => o.status))).toEqual(new Set([503]));
    // At once: a refused connection is known at once, far sooner than the 3 s budget.
    expect(Math.max(...down.map((o) => o.elapsed))).toBeLessThan(budget / 2);
    expect(logger.messages('error').some((m) => m.includes(`ECONNREFUSED 127.0.0.1:${port}`))).toBe(true);
    expect(new Set(outcomes.filter((o) => o.route === 'none').map((o) => o.status))).toEqual(new Set([200]));
    const after = outcomes.filter((o) => o.route === 'put' && o.at > restartedAt + 500);
    expect(after.length).toBeGreaterThan(0);
    expect(new Set(after.map((o) => o.status))).toEqual(new Set([200]));
    await expectHonestWrites(outcomes, sids, killedAt);
  }, 60_000);
});
