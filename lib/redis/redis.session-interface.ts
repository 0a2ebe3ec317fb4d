import type { Cluster, Redis } from 'ioredis';
import { ServerSideSessionInterface, type ServerSideSessionOptions } from '../server-side/server-side.session-interface.js';

/** @publicApi */
export interface RedisSessionOptions extends ServerSideSessionOptions {
  /** An ioredis client: a `Redis` or a `Cluster`. The interface never closes it. */
  client: Redis | Cluster;
}

/**
 * Sessions in Redis, as Flask-Session stores them: `SET session:<sid> <msgpack>
 * EX <lifetime>`, `GET`, `DEL`, and `EXPIRE` to refresh an unchanged session.
 * Every key is one slot, so a Cluster works as well as a single server.
 *
 * @example
 * SessionModule.forRoot({ interface: new RedisSessionInterface({ client: new Redis(url) }), secretKey })
 *
 * @publicApi
 */
export class RedisSessionInterface extends ServerSideSessionInterface {
  protected readonly storeName = 'Redis';
  readonly client: Redis | Cluster;

  constructor(options: RedisSessionOptions) {
    super(options);
    this.client = options.client;
  }

  protected readRecord(storeId: string): Promise<Buffer | null> {
    return this.client.getBuffer(storeId);
  }

  protected async writeRecord(storeId: string, value: Buffer, ttlSeconds: number): Promise<void> {
    await this.client.set(storeId, value, 'EX', ttlSeconds);
  }

  protected async deleteRecord(storeId: string): Promise<void> {
    await this.client.del(storeId);
  }

  protected async refreshRecord(storeId: string, ttlSeconds: number): Promise<void> {
    await this.client.expire(storeId, ttlSeconds);
  }
}
