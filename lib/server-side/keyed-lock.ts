/** One piece of work waiting for its key; `first`: it goes before the others (a compare-and-set that lost once). */
type Waiter = { readonly start: () => void; readonly first: boolean };

/**
 * Runs async work one at a time per key, in this process: the compare-and-set
 * of a store that has none of its own (cache-manager), and the in-process
 * half of the filesystem store's lock. Work runs in the order it arrived,
 * except that work marked `first` goes before the work that is only waiting.
 * Work whose deadline passed while it waited for its turn does not run: the
 * request was answered already.
 */
export class KeyedLock {
  /** Keys in use, each with the work waiting for it. */
  private readonly waiting = new Map<string, Waiter[]>();

  /** Whether work for `key` runs or waits now (the filesystem store's eviction leaves such a session alone). */
  isBusy(key: string): boolean {
    return this.waiting.has(key);
  }

  async run<T>(key: string, deadline: number, work: () => Promise<T>, { first = false } = {}): Promise<T> {
    const queue = this.waiting.get(key);
    if (queue) {
      await new Promise<void>((start) => {
        // After the other `first` work, before the rest.
        const at = first ? queue.findIndex((waiter) => !waiter.first) : -1;
        queue.splice(at === -1 ? queue.length : at, 0, { start, first });
      });
    } else {
      this.waiting.set(key, []);
    }
    try {
      if (Date.now() >= deadline) throw new Error('the request\'s store budget ran out while it waited for its turn on this session');
      return await work();
    } finally {
      const next = this.waiting.get(key)!.shift();
      if (next) next.start();
      else this.waiting.delete(key);
    }
  }
}
