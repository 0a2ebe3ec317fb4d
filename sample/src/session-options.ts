import { Logger } from '@nestjs/common';
import type { SessionModuleOptions } from 'nest-session';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const logger = new Logger('Sample');

/**
 * Signed cookies by default; SESSION_STORE picks a server-side store:
 *   SESSION_STORE=filesystem  (SESSION_DIR, default: a folder in the temp dir)
 *   SESSION_STORE=redis       (REDIS_URL, default redis://127.0.0.1:6379)
 * SECRET_KEY signs the cookie; without it a development secret is used, with a warning.
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
    default:
      throw new Error(`SESSION_STORE must be cookie, filesystem or redis, not "${env.SESSION_STORE}"`);
  }
}
