import { Controller, Get, Query, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { Session, type SessionMixin } from '../../lib/index.js';

/** Routes for fault tests: one that writes a key of the session, one that never touches it. */
@Controller('load')
export class LoadController {
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

/** One request of a load run. */
export interface LoadResult {
  route: 'put' | 'none';
  /** The key a put set (unique for the run), and on which session (index into the cookies). */
  key?: string;
  session?: number;
  startedAt: number;
  finishedAt: number;
  status: number;
}

/**
 * Concurrent traffic on a listening app: `writers` loops each setting a new
 * key (`w<writer>_<n>`) on one of the sessions, and one loop on a route
 * without a session, until {@link stop}. Network failures count as status 0.
 */
export class SessionLoad {
  readonly results: LoadResult[] = [];
  private running = true;
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly url: string,
    private readonly cookies: readonly string[],
    writers: number,
  ) {
    for (let writer = 0; writer < writers; writer++) this.loops.push(this.writer(writer));
    this.loops.push(this.bystander());
  }

  static async listen(app: INestApplication): Promise<string> {
    await app.listen(0, '127.0.0.1');
    return (await app.getUrl()).replace('[::1]', '127.0.0.1');
  }

  async stop(): Promise<LoadResult[]> {
    this.running = false;
    await Promise.all(this.loops);
    return this.results;
  }

  private async writer(writer: number): Promise<void> {
    for (let n = 0; this.running; n++) {
      const session = (writer + n) % this.cookies.length;
      const key = `w${writer}_${n}`;
      await this.send('put', `/load/put?key=${key}`, { key, session, cookie: this.cookies[session]! });
    }
  }

  private async bystander(): Promise<void> {
    while (this.running) await this.send('none', '/load/none', {});
  }

  private async send(route: LoadResult['route'], path: string, extra: { key?: string; session?: number; cookie?: string }): Promise<void> {
    const startedAt = Date.now();
    let status = 0;
    try {
      const call = request(this.url).get(path).timeout(30_000);
      status = (await (extra.cookie ? call.set('Cookie', extra.cookie) : call)).status;
    } catch {
      status = 0;
    }
    this.results.push({ route, key: extra.key, session: extra.session, startedAt, finishedAt: Date.now(), status });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
