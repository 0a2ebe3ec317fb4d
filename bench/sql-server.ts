/**
 * One SQL benchmark server: `node bench/dist/sql-server.js KIND PORT`, with
 * PG_URL the PostgreSQL database to keep sessions in. A NestJS app on Express
 * with the routes of controllers.ts (/none, /read, /write and /login):
 *   bare                               no sessions
 *   nest-session+pg                    SqlSessionInterface on a pg Pool
 *   express-session+connect-pg-simple  express-session with connect-pg-simple on a pg Pool
 * Both stores get a pg Pool of the same size (node-postgres's default, 10).
 */
import 'reflect-metadata';
import { Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import connectPgSimple from 'connect-pg-simple';
import expressSession from 'express-session';
import { SessionModule } from 'nest-session';
import { SqlSessionInterface } from 'nest-session/sql';
import pg from 'pg';
import { BareController, NestSessionController, ReqSessionController, SECRET } from './controllers.js';

type Kind = 'bare' | 'nest-session+pg' | 'express-session+connect-pg-simple';

@Module({})
class BenchModule {}

const [kind, port] = [process.argv[2] as Kind, Number(process.argv[3])];
const pool = kind === 'bare' ? undefined : new pg.Pool({ connectionString: process.env.PG_URL });
pool?.on('error', (error) => console.error(`${kind}: PostgreSQL: ${error.message}`));

let sessions: SqlSessionInterface | undefined;
function moduleFor(): DynamicModule {
  if (kind === 'nest-session+pg') {
    sessions = new SqlSessionInterface({ client: pool! });
    return { module: BenchModule, imports: [SessionModule.forRoot({ interface: sessions, secretKey: SECRET })], controllers: [NestSessionController] };
  }
  return { module: BenchModule, controllers: [kind === 'bare' ? BareController : ReqSessionController] };
}

const app = await NestFactory.create(moduleFor(), { logger: false });
if (kind === 'express-session+connect-pg-simple') {
  const PgStore = connectPgSimple(expressSession);
  const store = new PgStore({ pool, createTableIfMissing: true });
  app.use(expressSession({ store, secret: SECRET, resave: false, saveUninitialized: false }));
}
await app.listen(port, '127.0.0.1');
process.send?.('ready');
