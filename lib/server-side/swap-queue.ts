import { KeyedLock } from './keyed-lock.js';
import type { StoreCall, StoredRecord, SwapOutcome } from './server-side.session-interface.js';

/**
 * Compare-and-sets of one record from this process, one at a time, a stale
 * one answered without a store call. Without it, N concurrent requests
 * changing one session thrash: each round costs every writer a conditional
 * write (and a read, to learn the record) for one winner, N² store calls in
 * all (64 writers: about 4,000 calls, 10 s on dynalite). Here a writer whose
 * expected record is not what this process last saw stored is told that
 * record at once, so each writer makes about one store call. The store's own
 * condition still decides every write: another process's change makes the
 * next store call fail and report it, as without the queue.
 */
export class SwapQueue {
  private readonly lock = new KeyedLock();
  /** What this process last saw stored, per record with swaps queued (forgotten when none is). */
  private readonly seen = new Map<string, { value?: Buffer; users: number }>();

  /** Runs `swap` (the store's compare-and-set writing `value`) in turn, or answers from what was last seen. */
  async run(storeId: string, expected: StoredRecord | null, value: Buffer, call: StoreCall, swap: () => Promise<SwapOutcome>): Promise<SwapOutcome> {
    let entry = this.seen.get(storeId);
    if (!entry) this.seen.set(storeId, (entry = { users: 0 }));
    entry.users++;
    const known = entry;
    try {
      return await this.lock.run(storeId, call.deadline, async () => {
        // Only a record seen stored answers locally: "gone" is always asked of the store.
        if (expected && known.value && !known.value.equals(expected.value)) return { swapped: false, current: { value: known.value } };
        const outcome = await swap();
        known.value = outcome.swapped ? value : outcome.current?.value;
        return outcome;
      });
    } finally {
      if (--known.users === 0) this.seen.delete(storeId);
    }
  }
}
