/**
 * Runs async work one at a time per key, in this process: the compare-and-set
 * of a store that has none of its own (cache-manager), and the in-process
 * half of the filesystem store's lock. Work whose deadline passed while it
 * waited for its turn does not run: the request was answered already.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  /** Whether work for `key` runs or waits now (the filesystem store's eviction leaves such a session alone). */
  isBusy(key: string): boolean {
    return this.tails.has(key);
  }

  async run<T>(key: string, deadline: number, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    try {
      await previous;
      if (Date.now() >= deadline) throw new Error('the request\'s store budget ran out while it waited for its turn on this session');
      return await work();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
