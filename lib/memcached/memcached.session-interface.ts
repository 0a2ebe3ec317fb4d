import type { Client } from 'memjs';
import {
  ServerSideSessionInterface,
  type ServerSideSessionOptions,
  type StoreCall,
  type StoredRecord,
  type SwapOutcome,
} from '../server-side/server-side.session-interface.js';

/** @publicApi */
export interface MemcachedSessionOptions extends ServerSideSessionOptions {
  /** A memjs client (`memjs.Client.create('127.0.0.1:11211')`). The interface never closes it. */
  client: Client;
}

/** Memcached reads an expiry above 30 days as a Unix time, not a number of seconds. */
const THIRTY_DAYS = 30 * 24 * 60 * 60;

/**
 * Sessions in Memcached, as Flask-Session stores them: `set session:<sid>`
 * with the lifetime as expiry, `get`, `delete`, and `touch` to refresh an
 * unchanged session. A lifetime over 30 days (the 31-day default) is sent as
 * an absolute time, Flask-Session's rule.
 *
 * @publicApi
 */
export class MemcachedSessionInterface extends ServerSideSessionInterface {
  protected readonly storeName = 'Memcached';
  readonly client: Client;

  constructor(options: MemcachedSessionOptions) {
    super(options, ['client']);
    this.client = options.client;
  }

  protected async readRecord(storeId: string, _call: StoreCall): Promise<StoredRecord | null> {
    const { value } = await this.client.get(storeId);
    return value ? { value } : null;
  }

  // TODO(cas): not atomic yet.
  protected async swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome> {
    const current = await this.readRecord(storeId, call);
    if ((current === null) !== (expected === null) || (current && expected && !current.value.equals(expected.value))) return { swapped: false, current };
    await this.replaceRecord(storeId, value, ttlSeconds, call);
    return { swapped: true };
  }

  protected async replaceRecord(storeId: string, value: Buffer, ttlSeconds: number, _call: StoreCall): Promise<void> {
    if (!(await this.client.set(storeId, value, { expires: memcachedExpiry(ttlSeconds) }))) {
      throw new Error(`Memcached did not store ${storeId}`);
    }
  }

  protected async deleteRecord(storeId: string, _call: StoreCall): Promise<void> {
    await this.client.delete(storeId);
  }

  protected async refreshRecord(storeId: string, ttlSeconds: number, _call: StoreCall): Promise<void> {
    await this.client.touch(storeId, memcachedExpiry(ttlSeconds));
  }
}

/** Seconds from now up to 30 days; beyond that, the Unix time of the expiry. */
export function memcachedExpiry(ttlSeconds: number, now = Date.now()): number {
  return ttlSeconds > THIRTY_DAYS ? Math.floor(now / 1000) + ttlSeconds : ttlSeconds;
}
