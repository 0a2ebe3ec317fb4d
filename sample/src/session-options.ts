import { Logger } from '@nestjs/common';
import type { SessionModuleOptions } from 'nest-session';

/** Signed-cookie sessions, with a development secret when SECRET_KEY is not set. */
export function sessionOptions(env: NodeJS.ProcessEnv = process.env): SessionModuleOptions {
  let secretKey = env.SECRET_KEY;
  if (!secretKey) {
    secretKey = 'development secret: set SECRET_KEY';
    new Logger('Sample').warn(
      'SECRET_KEY is not set: using a development secret that anyone can read in this file. ' +
        'Never run like this in production.',
    );
  }
  return { secretKey, cookie: { sameSite: 'Lax' } };
}
