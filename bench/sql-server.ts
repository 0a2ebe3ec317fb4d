/**
 * One SQL benchmark server: `node bench/dist/sql-server.js KIND PORT`, with
 * PG_URL the PostgreSQL database to keep sessions in. A NestJS app on Express
 * with the routes of controllers.ts (/none, /read, /write and /login):
 *   bare                               no sessions
 *   nest-session+pg                    SqlSessionInterface on a pg Pool
 *   express-session+connect-pg-simple  express-session with connect-pg-simple on a pg Pool
 *   pg by hand                         no session library: each handler runs the statements a
 *                                      session store needs (/read a SELECT, /write a SELECT and an
 *                                      UPDATE) on a row named by the cookie, itself: the cost of
 *                                      node-postgres and NestJS alone, what a store cannot go below
 *   pg by hand+interceptor             the same handlers behind an interceptor that only passes the
 *                                      handler's result on: the floor of a store that, like
 *                                      nest-session (API.md: @Session() binds SessionInterceptor),
 *                                      works through a NestJS interceptor
 * Every pg Pool has the same size (node-postgres's default, 10).
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { Controller, Get, Module, Req, Res, UseInterceptors, type CallHandler, type DynamicModule, type NestInterceptor } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import connectPgSimple from 'connect-pg-simple';
import expressSession from 'express-session';
import { SessionModule } from 'nest-session';
import { SqlSessionInterface } from 'nest-session/sql';
import pg from 'pg';
import { BareController, NestSessionController, ReqSessionController, SECRET } from './controllers.js';

type Kind = 'bare' | 'nest-session+pg' | 'express-session+connect-pg-simple' | 'pg by hand' | 'pg by hand+interceptor';

@Module({})
class BenchModule {}

const [kind, port] = [process.argv[2] as Kind, Number(process.argv[3])];
const pool = kind === 'bare' ? undefined : new pg.Pool({ connectionString: process.env.PG_URL });
pool?.on('error', (error) => console.error(`${kind}: PostgreSQL: ${error.message}`));

let sessions: SqlSessionInterface | undefined;

/**
 * The statements of a session store, in Flask-Session's table, with no session library around them. Each by-hand
 * server has a table of its own: each logs in as a role of its own (bench/sql.mjs), which may use only its own.
 */
const TABLE = kind === 'pg by hand+interceptor' ? 'by_hand_interceptor' : 'by_hand';
const BY_HAND = {
  create: `CREATE TABLE IF NOT EXISTS ${TABLE} (id SERIAL PRIMARY KEY, session_id VARCHAR(255) UNIQUE, data BYTEA, expiry TIMESTAMP)`,
  insert: `INSERT INTO ${TABLE} (session_id, data, expiry) VALUES ($1, $2, (now() AT TIME ZONE 'UTC') + interval '31 days')`,
  read: `SELECT data FROM ${TABLE} WHERE session_id = $1 AND expiry > (now() AT TIME ZONE 'UTC')`,
  write: `UPDATE ${TABLE} SET data = $2, expiry = (now() AT TIME ZONE 'UTC') + interval '31 days' WHERE session_id = $1`,
};
type CookieRequest = { headers: { cookie?: string } };
const idOf = (req: CookieRequest) => /(?:^|; )by_hand=([\w-]+)/.exec(req.headers.cookie ?? '')?.[1] ?? '';

/** What Nest charges for binding any interceptor: this one does nothing but hand the handler's result on. */
class PassThroughInterceptor implements NestInterceptor {
  intercept(_context: unknown, next: CallHandler) {
    return next.handle();
  }
}
const interceptors = kind === 'pg by hand+interceptor' ? [PassThroughInterceptor] : [];

@Controller()
class ByHandController {
  @Get('none') none() {
    return { ok: true };
  }
  @Get('read') @UseInterceptors(...interceptors) async read(@Req() req: CookieRequest) {
    const { rows } = await pool!.query(BY_HAND.read, [idOf(req)]);
    return { user: rows.length ? 'alice' : undefined };
  }
  @Get('write') @UseInterceptors(...interceptors) async write(@Req() req: CookieRequest) {
    const id = idOf(req);
    const { rows } = await pool!.query(BY_HAND.read, [id]);
    const count = ((rows[0]?.data as Buffer | undefined)?.readUInt32BE(0) ?? 0) + 1;
    const data = Buffer.alloc(4);
    data.writeUInt32BE(count);
    await pool!.query(BY_HAND.write, [id, data]);
    return { count };
  }
  @Get('login') async login(@Res({ passthrough: true }) res: { setHeader(name: string, value: string): void }) {
    const id = randomBytes(24).toString('base64url');
    await pool!.query(BY_HAND.insert, [id, Buffer.alloc(4)]);
    res.setHeader('Set-Cookie', `by_hand=${id}; HttpOnly; Path=/`);
    return { ok: true };
  }
}
function moduleFor(): DynamicModule {
  if (kind === 'nest-session+pg') {
    sessions = new SqlSessionInterface({ client: pool! });
    return { module: BenchModule, imports: [SessionModule.forRoot({ interface: sessions, secretKey: SECRET })], controllers: [NestSessionController] };
  }
  if (kind.startsWith('pg by hand')) return { module: BenchModule, controllers: [ByHandController] };
  return { module: BenchModule, controllers: [kind === 'bare' ? BareController : ReqSessionController] };
}

if (kind.startsWith('pg by hand')) await pool!.query(BY_HAND.create);
const app = await NestFactory.create(moduleFor(), { logger: false });
if (kind === 'express-session+connect-pg-simple') {
  const PgStore = connectPgSimple(expressSession);
  const store = new PgStore({ pool, createTableIfMissing: true });
  app.use(expressSession({ store, secret: SECRET, resave: false, saveUninitialized: false }));
}
await app.listen(port, '127.0.0.1');
process.send?.('ready');
