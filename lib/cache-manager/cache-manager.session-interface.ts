import type { Cache } from 'cache-manager';
import { KeyedLock } from '../server-side/keyed-lock.js';
import {
  ServerSideSessionInterface,
  type ServerSideSessionOptions,
  type StoreCall,
  type StoredRecord,
  type SwapOutcome,
} from '../server-side/server-side.session-interface.js';
import { SessionConfigurationError } from '../session.errors.js';

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
 * cache-manager has no compare-and-set either: changes to one session are
 * applied one at a time in this process (no lost updates between this
 * process's requests). Processes sharing one cache (several instances on one
 * Redis through Keyv) can still overwrite each other's concurrent changes:
 * there, use `RedisSessionInterface`, which is atomic across processes.
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
  private readonly lock = new KeyedLock();

  constructor(options: CacheManagerSessionOptions) {
    super(options, ['client']);
    const client = options.client as Partial<Cache> | undefined;
    if (!client || typeof client.get !== 'function' || typeof client.set !== 'function' || typeof client.del !== 'function') {
      throw SessionConfigurationError.create(
        'client',
        'expected a cache-manager Cache (createCache(), or what @nestjs/cache-manager injects as CACHE_MANAGER).',
        'CacheManagerSessionInterface',
      );
    }
    this.client = options.client;
  }

  protected async readRecord(storeId: string, _call: StoreCall): Promise<StoredRecord | null> {
    const text = await this.client.get<string>(storeId);
    return typeof text === 'string' ? { value: Buffer.from(text, 'base64') } : null;
  }

  protected swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome> {
    return this.lock.run(storeId, call.deadline, async () => {
      const current = await this.readRecord(storeId, call);
      const same = current === null ? expected === null : expected !== null && current.value.equals(expected.value);
      if (!same) return { swapped: false, current };
      await this.client.set(storeId, value.toString('base64'), ttlSeconds * 1000);
      return { swapped: true };
    });
  }

  protected replaceRecord(storeId: string, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<void> {
    return this.lock.run(storeId, call.deadline, async () => {
      await this.client.set(storeId, value.toString('base64'), ttlSeconds * 1000);
    });
  }

  protected deleteRecord(storeId: string, call: StoreCall): Promise<void> {
    return this.lock.run(storeId, call.deadline, async () => {
      await this.client.del(storeId);
    });
  }

  protected refreshRecord(storeId: string, ttlSeconds: number, call: StoreCall): Promise<void> {
    return this.lock.run(storeId, call.deadline, async () => {
      const text = await this.client.get<string>(storeId);
      if (typeof text === 'string') await this.client.set(storeId, text, ttlSeconds * 1000);
    });
  }
}
