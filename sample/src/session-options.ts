import { Logger } from '@nestjs/common';
import type { SessionModuleOptions } from 'nest-session';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const logger = new Logger('Sample');

/**
 * Signed cookies by default; SESSION_STORE picks a server-side store, each
 * reading one variable (defaults in sample/README.md):
 *   filesystem (SESSION_DIR), redis (REDIS_URL), sqlite (SQLITE_FILE),
 *   postgres (DATABASE_URL), mysql (DATABASE_URL), mongodb (MONGODB_URL),
 *   dynamodb (DYNAMODB_ENDPOINT, and the AWS SDK's own AWS_* variables).
 * SECRET_KEY signs the cookie; without it a development secret is used, with a warning.
 * Each store's driver is imported only when it is chosen: they are optional peers.
 */
export async function sessionOptions(env: NodeJS.ProcessEnv = process.env): Promise<SessionModuleOptions> {
  let secretKey = env.SECRET_KEY;
  if (!secretKey) {
    secretKey = 'development secret: set SECRET_KEY';
    logger.warn('SECRET_KEY is not set: using a development secret that anyone can read in this file. Never run like this in production.');
  }
  const options: SessionModuleOptions = { secretKey, cookie: { sameSite: 'Lax' } };
  switch (env.SESSION_STORE ?? 'cookie') {
    case 'cookie':
      return options;
    case 'filesystem': {
      const { FileSystemSessionInterface } = await import('nest-session/filesystem');
      const cacheDir = env.SESSION_DIR ?? join(tmpdir(), 'nest-session-sample');
      logger.log(`Sessions are files in ${cacheDir}`);
      return { ...options, interface: new FileSystemSessionInterface({ cacheDir }) };
    }
    case 'redis': {
      const [{ RedisSessionInterface }, { Redis }] = await Promise.all([import('nest-session/redis'), import('ioredis')]);
      const url = env.REDIS_URL ?? 'redis://127.0.0.1:6379';
      logger.log(`Sessions are in Redis at ${url}`);
      const client = new Redis(url);
      // ioredis reconnects by itself; without a listener, each failed attempt prints an "Unhandled error event".
      let reported = false;
      client.on('error', (error: Error) => {
        if (!reported) logger.error(`Redis at ${url}: ${error.message}. Is it running? Until it is, requests that use the session get 503.`);
        reported = true;
      });
      client.on('ready', () => {
        if (reported) logger.log(`Redis at ${url} is back`);
        reported = false;
      });
      return { ...options, interface: new RedisSessionInterface({ client }) };
    }
    case 'sqlite': {
      const [{ SqlSessionInterface }, { default: Database }] = await Promise.all([import('nest-session/sql'), import('better-sqlite3')]);
      const file = env.SQLITE_FILE ?? join(tmpdir(), 'nest-session-sample.db');
      logger.log(`Sessions are in the SQLite file ${file}`);
      // A short busy timeout: better-sqlite3 waits for a lock synchronously, blocking the event loop meanwhile.
      return { ...options, interface: new SqlSessionInterface({ client: new Database(file, { timeout: 100 }) }) };
    }
    case 'postgres': {
      const [{ SqlSessionInterface }, { default: pg }] = await Promise.all([import('nest-session/sql'), import('pg')]);
      const url = env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
      logger.log(`Sessions are in PostgreSQL at ${withoutPassword(url)}`);
      const pool = new pg.Pool({ connectionString: url });
      // node-postgres reports a broken idle connection as an 'error' event: without a listener the process ends.
      pool.on('error', (error) => logger.error(`PostgreSQL: ${error.message}`));
      return { ...options, interface: new SqlSessionInterface({ client: pool }) };
    }
    case 'mysql': {
      const [{ SqlSessionInterface }, { createPool }] = await Promise.all([import('nest-session/sql'), import('mysql2/promise')]);
      const url = env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/test';
      logger.log(`Sessions are in MySQL/MariaDB at ${withoutPassword(url)}`);
      return { ...options, interface: new SqlSessionInterface({ client: createPool(url) }) };
    }
    case 'mongodb': {
      const [{ MongoDBSessionInterface }, { MongoClient }] = await Promise.all([import('nest-session/mongodb'), import('mongodb')]);
      const url = env.MONGODB_URL ?? 'mongodb://127.0.0.1:27017';
      logger.log(`Sessions are in MongoDB at ${withoutPassword(url)}, database flask_session`);
      // A short server selection timeout: with MongoDB down, a request answers 503 within the session budget, not after 30 s.
      return { ...options, interface: new MongoDBSessionInterface({ client: new MongoClient(url, { serverSelectionTimeoutMS: 2000 }) }) };
    }
    case 'dynamodb': {
      const [{ DynamoDBSessionInterface }, { DynamoDBClient }] = await Promise.all([import('nest-session/dynamodb'), import('@aws-sdk/client-dynamodb')]);
      const endpoint = env.DYNAMODB_ENDPOINT;
      const region = env.AWS_REGION ?? 'us-east-1';
      logger.log(`Sessions are in DynamoDB (${endpoint ?? `AWS, ${region}`}), table Sessions`);
      // A local endpoint (dynalite, DynamoDB Local) accepts any credentials; AWS itself needs the usual AWS_* variables.
      const credentials = endpoint && !env.AWS_ACCESS_KEY_ID ? { accessKeyId: 'local', secretAccessKey: 'local' } : undefined;
      const client = new DynamoDBClient({ region, ...(endpoint ? { endpoint } : {}), ...(credentials ? { credentials } : {}) });
      return { ...options, interface: new DynamoDBSessionInterface({ client, createTable: true }) };
    }
    default:
      throw new Error(
        `SESSION_STORE must be one of ${SESSION_STORES.join(', ')}, not "${env.SESSION_STORE}"`,
      );
  }
}

/** The values SESSION_STORE accepts. */
export const SESSION_STORES = ['cookie', 'filesystem', 'redis', 'sqlite', 'postgres', 'mysql', 'mongodb', 'dynamodb'] as const;

/** A connection URL fit for a log line. */
function withoutPassword(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
}
