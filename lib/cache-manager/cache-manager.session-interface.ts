import type { Cache } from 'cache-manager';
import { ServerSideSessionInterface, type ServerSideSessionOptions } from '../server-side/server-side.session-interface.js';

/** @publicApi */
export interface CacheManagerSessionOptions extends ServerSideSessionOptions {
  /** A cache-manager `Cache`, such as the one `@nestjs/cache-manager` injects as `CACHE_MANAGER`. */
  client: Cache;
}

/**
 * Sessions in a cache-manager `Cache` (memory, or Redis and others through
 * Keyv): Flask-Session's cachelib backend for NestJS. Records are stored as
 * base64 text, which every Keyv store keeps as it is. cache-manager has no
 * command that only moves an expiry, so a refresh reads and writes the record.
 *
 * @example
 * @Injectable()
 * class CacheSessions extends CacheManagerSessionInterface {
 *   constructor(@Inject(CACHE_MANAGER) cache: Cache) { super({ client: cache }); }
 * }
 * SessionModule.forRoot({ interface: CacheSessions, imports: [CacheModule.register()] })
 *
 * @publicApi
 */
export class CacheManagerSessionInterface extends ServerSideSessionInterface {
  protected readonly storeName = 'cache-manager';
  readonly client: Cache;

  constructor(options: CacheManagerSessionOptions) {
    super(options);
    this.client = options.client;
  }

  protected async readRecord(storeId: string): Promise<Buffer | null> {
    const text = await this.client.get<string>(storeId);
    return typeof text === 'string' ? Buffer.from(text, 'base64') : null;
  }

  protected async writeRecord(storeId: string, value: Buffer, ttlSeconds: number): Promise<void> {
    await this.client.set(storeId, value.toString('base64'), ttlSeconds * 1000);
  }

  protected async deleteRecord(storeId: string): Promise<void> {
    await this.client.del(storeId);
  }

  protected async refreshRecord(storeId: string, ttlSeconds: number): Promise<void> {
    const text = await this.client.get<string>(storeId);
    if (typeof text === 'string') await this.client.set(storeId, text, ttlSeconds * 1000);
  }
}
