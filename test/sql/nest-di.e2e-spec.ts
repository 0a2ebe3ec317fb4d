/**
 * SqlSessionInterface as a NestJS provider: an @Injectable() subclass that Nest
 * builds with the application's TypeORM DataSource, provided the way
 * @nestjs/typeorm provides it (the DataSource class is the injection token of
 * the default connection). Its table is ready at bootstrap, before the first
 * request.
 */
import { Controller, Get, Global, Injectable, Module, Query, type INestApplication } from '@nestjs/common';
import pg from 'pg';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { Session, SessionInterface, SessionModule, type SessionMixin } from '../../lib/index.js';
import { SqlSessionInterface } from '../../lib/sql/index.js';
import { RecordingLogger, cookiePair, createApp } from '../support/apps.js';
import { PostgresServer } from '../support/postgres-server.js';

let server: PostgresServer;
let raw: pg.Pool;

beforeAll(async () => {
  server = await PostgresServer.start();
  raw = new pg.Pool(server.poolConfig);
  raw.on('error', () => undefined); // the last test stops the server
}, 120_000);
afterAll(async () => {
  await raw?.end();
  await server?.close();
});

/** What TypeOrmModule.forRoot() registers: an initialized DataSource under the DataSource token, exported globally. */
@Global()
@Module({
  providers: [
    {
      provide: DataSource,
      useFactory: () =>
        new DataSource({ type: 'postgres', host: server.host, port: server.port, username: server.user, password: server.password, database: server.database }).initialize(),
    },
  ],
  exports: [DataSource],
})
class DatabaseModule {}

@Injectable()
class AppSessions extends SqlSessionInterface {
  constructor(readonly dataSource: DataSource) {
    super({ client: dataSource, table: 'app_sessions', cleanupNRequests: 1000 });
  }
}

@Controller()
class CartController {
  constructor(readonly sessions: SessionInterface) {}

  @Get('add')
  add(@Session() session: SessionMixin, @Query('item') item: string) {
    const cart = session.setDefault('cart', [] as string[]) as string[];
    cart.push(item);
    session.modified = true;
    return cart;
  }
}

let app: INestApplication | undefined;
afterEach(async () => {
  const dataSource = app?.get(DataSource, { strict: false });
  await app?.close();
  await dataSource?.destroy();
  app = undefined;
});

test('an @Injectable() subclass is built by Nest with the DataSource, creates its table at bootstrap, and serves sessions', async () => {
  app = await createApp({
    imports: [SessionModule.forRoot({ interface: AppSessions, imports: [DatabaseModule], secretKey: 'k' })],
    controllers: [CartController],
  });
  // onModuleInit ran: the table is there before any request.
  expect((await raw.query("SELECT to_regclass('app_sessions')::text AS t")).rows).toEqual([{ t: 'app_sessions' }]);
  const sessions = app.get(SessionInterface);
  expect(sessions).toBeInstanceOf(AppSessions);
  expect((sessions as AppSessions).dataSource).toBe(app.get(DataSource));
  expect((sessions as AppSessions).cleanupNRequests).toBe(1000);

  const first = await request(app.getHttpServer()).get('/add?item=apple').expect(200, ['apple']);
  await request(app.getHttpServer()).get('/add?item=pear').set('Cookie', cookiePair(first)).expect(200, ['apple', 'pear']);
  const { rows } = await raw.query('SELECT count(*)::int AS n FROM app_sessions');
  expect(rows).toEqual([{ n: 1 }]);
});

test('an instance given to forRoot() is prepared at bootstrap too: a missing table with createTable: false fails the bootstrap', async () => {
  const pool = new pg.Pool(server.poolConfig);
  try {
    await expect(
      createApp({
        imports: [SessionModule.forRoot({ interface: new SqlSessionInterface({ client: pool, table: 'not_there', createTable: false }), secretKey: 'k' })],
        controllers: [CartController],
      }),
    ).rejects.toThrow(/has no table not_there, and createTable is false/);
  } finally {
    await pool.end();
  }
});

test('a database that cannot be reached at bootstrap is logged, not fatal; sessions work once it can be', async () => {
  const pool = new pg.Pool(server.poolConfig);
  pool.on('error', () => undefined);
  await server.stop();
  try {
    app = await createApp({
      imports: [SessionModule.forRoot({ interface: new SqlSessionInterface({ client: pool, table: 'late_start' }), secretKey: 'k' })],
      controllers: [CartController],
    });
    await request(app.getHttpServer()).get('/add?item=apple').expect(503);
    await server.start();
    await request(app.getHttpServer()).get('/add?item=apple').expect(200, ['apple']);
  } finally {
    if (!server.running) await server.start();
    await app?.close();
    app = undefined;
    await pool.end();
  }
});

test('a database that does not answer at bootstrap (paused) holds it up no longer than 5 × storeTimeout; sessions work once it answers', async () => {
  const pool = new pg.Pool(server.poolConfig);
  pool.on('error', () => undefined);
  const logger = new RecordingLogger();
  server.pause();
  try {
    const started = Date.now();
    app = await createApp(
      {
        imports: [SessionModule.forRoot({ interface: new SqlSessionInterface({ client: pool, table: 'paused_start', storeTimeout: 200 }), secretKey: 'k' })],
        controllers: [CartController],
      },
      logger,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(logger.messages('warn')).toEqual([expect.stringMatching(/did not answer within 1000 ms at bootstrap/)]);
    await request(app.getHttpServer()).get('/add?item=apple').expect(503);
  } finally {
    server.resume();
  }
  const deadline = Date.now() + 10_000;
  let status = 0;
  while (status !== 200 && Date.now() < deadline) status = (await request(app.getHttpServer()).get('/add?item=apple')).status;
  expect(status).toBe(200);
  await app.close();
  app = undefined;
  await pool.end();
});
