/**
 * Concurrent changes to one session from one process are written together
 * (lib/server-side/session-write-queue.ts), on PostgreSQL and MariaDB: no change is
 * lost, fewer UPDATEs run than requests, and a request whose deadline passes
 * while it waits is never written, not even inside a later request's value.
 */
import { Controller, Get, Query, type INestApplication } from '@nestjs/common';
import { createPool, type Pool as MysqlPool } from 'mysql2/promise';
import pg from 'pg';
import request from 'supertest';
import { Session, SessionModule, StoreSerializer, type SessionMixin } from '../../lib/index.js';
import { SqlSessionInterface, type SqlClient } from '../../lib/sql/index.js';
import { cookiePair, createApp } from '../support/apps.js';
import { sleep, type ManagedServer } from '../support/managed-server.js';
import { MariaDBServer } from '../support/mariadb-server.js';
import { PostgresServer } from '../support/postgres-server.js';
import { numbered, primitives, type Row } from './sql-backend.js';

@Controller()
class CounterController {
  @Get('put')
  put(@Session() session: SessionMixin, @Query('key') key: string) {
    session.set(key, true);
    return '';
  }

  @Get('all')
  all(@Session() session: SessionMixin) {
    return session.toJSON();
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
  return {
    server,
    client: pool,
    query: async (sql, params = []) => (await pool.query(numbered(sql), params)).rows,
    end: async () => {
      await pool.end();
      await server.close();
    },
  };
}

async function mariadb(): Promise<Backend> {
  const server = await MariaDBServer.start();
  const pool: MysqlPool = createPool(server.connectionOptions);
  return {
    server,
    client: pool,
    query: async (sql, params = []) => (await pool.query(sql, params))[0] as Row[],
    end: async () => {
      await pool.end();
      await server.close();
    },
  };
}

const serializer = new StoreSerializer('msgpack');

describe.each([
  ['PostgreSQL', postgres],
  ['MariaDB', mariadb],
] as const)('%s: changes to one session, written together', (_name, start) => {
  let backend: Backend;
  let app: INestApplication | undefined;
  beforeAll(async () => {
    backend = await start();
  }, 120_000);
  afterAll(async () => {
    await backend?.end();
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  test('48 concurrent requests changing one session keep every change, with fewer UPDATEs than requests', async () => {
    const sessions = new SqlSessionInterface({ client: backend.client, table: 'together', storeTimeout: 10_000 });
    const statements = primitives(sessions).statements;
    let updates = 0;
    const swap = statements.swap.bind(statements);
    statements.swap = (...args) => {
      updates++;
      return swap(...args);
    };
    app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [CounterController] });
    const first = await request(app.getHttpServer()).get('/put?key=first').expect(200);
    const cookie = cookiePair(first);
    const requests = 48;
    await Promise.all(Array.from({ length: requests }, (_, i) => request(app!.getHttpServer()).get(`/put?key=k${i}`).set('Cookie', cookie).expect(200)));
    const all = (await request(app.getHttpServer()).get('/all').set('Cookie', cookie)).body;
    expect(Object.keys(all).filter((key) => key.startsWith('k'))).toHaveLength(requests);
    expect(all.first).toBe(true);
    expect(updates).toBeLessThan(requests);
  });

  test("a request whose deadline passes while it waits is not written, nor is its change inside the next one's value", async () => {
    const sessions = new SqlSessionInterface({ client: backend.client, table: 'late_in_queue' });
    const store = primitives(sessions);
    const storeId = 'session:queued';
    const v0 = serializer.dumps({ start: true });
    await store.replaceRecord(storeId, v0, 3600, { deadline: Date.now() + 5000 });
    const v1 = serializer.dumps({ start: true, a: 1 });
    const v2 = serializer.dumps({ start: true, a: 1, b: 2 });
    const v3 = serializer.dumps({ start: true, a: 1, b: 2, c: 3 });
    backend.server.pause();
    let a: Promise<unknown>, b: Promise<unknown>, c: Promise<unknown>;
    try {
      // A is sent and held by the paused server; B and C queue behind it, each made on the value before.
      a = store.swapRecord(storeId, { value: v0 }, v1, 3600, { deadline: Date.now() + 8000 });
      await sleep(50);
      b = store.swapRecord(storeId, { value: v1 }, v2, 3600, { deadline: Date.now() + 300 });
      c = store.swapRecord(storeId, { value: v2 }, v3, 3600, { deadline: Date.now() + 8000 });
      // A request that read the record before A is told it changed, and given what A writes, without a statement.
      expect(await store.swapRecord(storeId, { value: v0 }, serializer.dumps({ stale: true }), 3600, { deadline: Date.now() + 8000 })).toEqual({
        swapped: false,
        current: { value: v3 },
      });
      await sleep(600); // B's deadline passes while it waits
    } finally {
      backend.server.resume();
    }
    expect(await a!).toEqual({ swapped: true });
    await expect(b!).rejects.toThrow(/after the request's deadline/);
    // C's value holds B's change: it is not written; C merges again into what A stored.
    expect(await c!).toEqual({ swapped: false, current: { value: v1 } });
    const [row] = await backend.query('SELECT data FROM late_in_queue WHERE session_id = ?', [storeId]);
    expect(serializer.loads(row!.data as Buffer)).toEqual({ start: true, a: 1 });
  }, 30_000);

  test('a logout while changes are queued wins: none of them brings the session back', async () => {
    const sessions = new SqlSessionInterface({ client: backend.client, table: 'logout_in_queue' });
    const store = primitives(sessions);
    const storeId = 'session:logout';
    const v0 = serializer.dumps({ user: 'u' });
    await store.replaceRecord(storeId, v0, 3600, { deadline: Date.now() + 5000 });
    const v1 = serializer.dumps({ user: 'u', a: 1 });
    const v2 = serializer.dumps({ user: 'u', a: 1, b: 2 });
    backend.server.pause();
    let a: Promise<unknown>, b: Promise<unknown>, logout: Promise<unknown>;
    try {
      a = store.swapRecord(storeId, { value: v0 }, v1, 3600, { deadline: Date.now() + 8000 });
      await sleep(50);
      b = store.swapRecord(storeId, { value: v1 }, v2, 3600, { deadline: Date.now() + 8000 });
      logout = store.deleteRecord(storeId, { deadline: Date.now() + 8000 });
      await sleep(100);
    } finally {
      backend.server.resume();
    }
    await Promise.all([a!, b!, logout!]);
    expect(await backend.query('SELECT data FROM logout_in_queue WHERE session_id = ?', [storeId])).toEqual([]);
  }, 30_000);
});
