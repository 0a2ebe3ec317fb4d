/**
 * Redis under faults, with a real redis-server: paused (SIGSTOP), put to sleep
 * (DEBUG SLEEP), killed and restarted on the same port, or never there. What
 * must hold: no crash; every answer within the request's store budget; a 503
 * only where the session is used; no write lands after its request was
 * answered 503; recovery without restarting the application.
 */
import { Controller, Get, Query, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import request from 'supertest';
import { Session, SessionModule, type SessionMixin } from '../../lib/index.js';
import { RedisSessionInterface } from '../../lib/redis/index.js';
import { RecordingLogger, cookiePair, createApp } from '../support/apps.js';
import { RedisServer, freePort } from '../support/loopback-servers.js';

const BUDGET = 600;
/** Room for the HTTP round trip on a busy machine, on top of the budget. */
const TOLERANCE = 1500;

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
class FaultController {
  @Get('put')
  put(@Session() session: SessionMixin, @Query('key') key: string) {
    session.set(key, 'written');
    return { sid: (session as unknown as { sid: string }).sid };
  }

  @Get('gated-put')
  async gatedPut(@Session() session: SessionMixin, @Query('key') key: string) {
    gate.arrived++;
    await gate.open;
    session.set(key, 'written');
    return '';
  }

  @Get('none')
  none() {
    return 'none';
  }
}

let server: RedisServer;
let app: INestApplication;
let logger: RecordingLogger;
const clients: Redis[] = [];

function redis(port: number): Redis {
  const client = new Redis({ host: '127.0.0.1', port, retryStrategy: () => 50 });
  client.on('error', () => undefined); // the interface reports what matters
  clients.push(client);
  return client;
}

async function startApp(port: number, storeTimeout = BUDGET) {
  logger = new RecordingLogger();
  const sessions = new RedisSessionInterface({ client: redis(port), storeTimeout });
  app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [FaultController] }, logger);
  return app.getHttpServer();
}

/** Sends a request and measures how long its answer took. */
async function timed(run: () => request.Test) {
  const started = Date.now();
  const response = await run();
  return { status: response.status, ms: Date.now() - started };
}

async function record(port: number, sid: string): Promise<Record<string, unknown> | null> {
  const probe = redis(port);
  const raw = await probe.getBuffer(`session:${sid}`);
  if (!raw) return null;
  const { unpack } = await import('msgpackr');
  return unpack(raw) as Record<string, unknown>;
}

async function until(condition: () => Promise<boolean> | boolean, what: string, ms = 10_000) {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

beforeEach(async () => {
  gate = new Gate();
  server = await RedisServer.start(['--enable-debug-command', 'yes']);
});
afterEach(async () => {
  await app?.close();
  clients.splice(0).forEach((client) => client.disconnect());
  try {
    await server.signal('SIGCONT');
  } catch {
    // not running
  }
  await server.close();
});

test('writes held up in a paused Redis past the budget are answered 503 in time and never land', async () => {
  const http = await startApp(server.port);
  const set = await request(http).get('/put?key=before');
  const cookie = cookiePair(set);
  const { sid } = set.body;
  const writers = 12;
  const pending = Array.from({ length: writers }, (_, i) => timed(() => request(http).get(`/gated-put?key=held${i}`).set('Cookie', cookie)));
  await until(() => gate.arrived === writers, 'every handler to hold its opened session');
  const scriptsBefore = await evalCalls(server.port);
  await server.signal('SIGSTOP');
  gate.release();
  const untouched = await timed(() => request(http).get('/none').expect(200, 'none'));
  const answers = await Promise.all(pending);
  expect(answers.map((a) => a.status)).toEqual(Array(writers).fill(503));
  for (const answer of answers) expect(answer.ms).toBeLessThan(BUDGET + TOLERANCE);
  expect(untouched.status).toBe(200);

  await server.signal('SIGCONT');
  // The held script runs now, after its deadline, and must refuse itself. (Concurrent changes of one
  // session are written together, so the 12 writers sent one script, and the rest waited for it.)
  await until(async () => (await evalCalls(server.port)) > scriptsBefore, 'the held script to run');
  await new Promise((resolve) => setTimeout(resolve, 300));
  const stored = await record(server.port, sid);
  expect(stored).toMatchObject({ before: 'written' });
  for (let i = 0; i < writers; i++) expect(stored).not.toHaveProperty(`held${i}`);

  // Recovery without a restart.
  await request(http).get('/put?key=after').set('Cookie', cookie).expect(200);
  expect(await record(server.port, sid)).toMatchObject({ before: 'written', after: 'written' });
});

test('DEBUG SLEEP longer than the budget: 503s in time, nothing applied late, then normal again', async () => {
  const http = await startApp(server.port);
  const set = await request(http).get('/put?key=before');
  const cookie = cookiePair(set);
  const sleeper = redis(server.port);
  const asleep = sleeper.call('DEBUG', 'SLEEP', '2');
  await new Promise((resolve) => setTimeout(resolve, 50));
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => timed(() => request(http).get(`/put?key=slept${i}`).set('Cookie', cookie))));
  expect(answers.map((a) => a.status)).toEqual(Array(10).fill(503));
  for (const answer of answers) expect(answer.ms).toBeLessThan(BUDGET + TOLERANCE);
  await asleep;
  await new Promise((resolve) => setTimeout(resolve, 200));
  const stored = await record(server.port, set.body.sid);
  for (let i = 0; i < 10; i++) expect(stored).not.toHaveProperty(`slept${i}`);
  await request(http).get('/put?key=after').set('Cookie', cookie).expect(200);
});

test('the budget covers the whole request: a slow read leaves less time for the write', async () => {
  const budget = 3000;
  const http = await startApp(server.port, budget);
  const set = await request(http).get('/put?key=before');
  const cookie = cookiePair(set);
  // The read is held about 2 s (less what routing took), then the write 2.5 s: each alone fits the
  // 3 s budget, both together do not. With a budget per call the request would succeed.
  await server.signal('SIGSTOP');
  const answer = timed(() => request(http).get('/gated-put?key=late').set('Cookie', cookie));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  await server.signal('SIGCONT');
  await until(() => gate.arrived === 1, 'the handler to hold its session');
  await server.signal('SIGSTOP');
  gate.release();
  await new Promise((resolve) => setTimeout(resolve, 2500));
  await server.signal('SIGCONT');
  const { status, ms } = await answer;
  expect(status).toBe(503);
  expect(ms).toBeLessThan(budget + 2000 + TOLERANCE); // the budget, plus the handler's wait and the routing
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(await record(server.port, set.body.sid)).not.toHaveProperty('late');
  expect(logger.messages('error').join('\n')).toContain("store budget of 3000 ms (storeTimeout) ran out");
});

test('a refused connection fails at once, naming the address, and the first server to come up is used', async () => {
  const port = await freePort();
  const http = await startApp(port);
  await new Promise((resolve) => setTimeout(resolve, 200)); // the client's first attempt is refused
  const answers = await Promise.all(
    Array.from({ length: 5 }, () => timed(() => request(http).get('/put?key=x').set('Cookie', `session=${'A'.repeat(43)}`))),
  );
  expect(answers.map((a) => a.status)).toEqual(Array(5).fill(503));
  // "At once": far below the budget, not after it.
  for (const answer of answers) expect(answer.ms).toBeLessThan(BUDGET / 2);
  expect(logger.messages('error').join('\n')).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
  await request(http).get('/none').expect(200, 'none');

  const late = new RedisServer(port);
  await late.resume();
  try {
    await until(async () => (await request(http).get('/put?key=x')).status === 200, 'the application to use the new server');
  } finally {
    await late.close();
  }
});

test('killed and restarted on the same port: 503 at once while down, nothing waited in a queue, recovery without restart', async () => {
  const http = await startApp(server.port);
  await request(http).get('/put?key=before').expect(200);
  await server.stop();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => timed(() => request(http).get(`/put?key=new${i}`))));
  expect(answers.map((a) => a.status)).toEqual(Array(10).fill(503));
  for (const answer of answers) expect(answer.ms).toBeLessThan(BUDGET / 2);
  await request(http).get('/none').expect(200, 'none');

  await server.resume();
  const probe = redis(server.port);
  await until(async () => (await request(http).get('/put?key=again')).status === 200, 'recovery');
  // Only the session written after recovery exists: none of the refused new sessions was queued and sent later.
  expect(await probe.dbsize()).toBe(1);
});

/** How many EVALSHA/EVAL the server has run (INFO commandstats). */
async function evalCalls(port: number): Promise<number> {
  const probe = redis(port);
  const info = await probe.info('commandstats');
  let calls = 0;
  for (const match of info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) calls += Number(match[1]);
  return calls;
}
