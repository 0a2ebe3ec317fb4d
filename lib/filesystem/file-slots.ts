/** Errors that mean "no file descriptor free right now", in this process (EMFILE) or the system (ENFILE). */
const OUT_OF_DESCRIPTORS = new Set(['EMFILE', 'ENFILE']);
/** How long to wait before trying again when descriptors ran out. */
const RETRY_AFTER_MS = 10;
const BUDGET_RAN_OUT = 'the request\'s store budget ran out while it waited for a file slot';

type Waiter = { readonly deadline: number; readonly start: () => void; readonly fail: (error: Error) => void };

/** One pool of slots, first come first served. */
class Lane {
  used = 0;
  readonly waiting: Waiter[] = [];
  constructor(readonly size: number) {}
}

/**
 * Counting semaphores around file-system calls, so that the store never holds
 * more than `requestSlots + backgroundSlots` file descriptors (or thread-pool
 * jobs) at once, however many requests arrive: 40 concurrent clients queue
 * here instead of exhausting the process's descriptors. Requests and
 * background work (the sweep, eviction) have a lane each, so a sweep of a
 * large folder never makes a request wait behind it, and a steady stream of
 * requests never starves eviction.
 *
 * An operation that still meets EMFILE/ENFILE (descriptors taken by
 * something else in the process: sockets, other libraries) is retried until
 * its deadline instead of failing at once.
 */
export class FileSlots {
  private readonly requests: Lane;
  private readonly background: Lane;
  /** Set when descriptors ran out, so it is logged once per episode, not per call. */
  private outOfDescriptors = false;

  constructor(
    requestSlots: number,
    backgroundSlots: number,
    private readonly onOutOfDescriptors: (error: Error) => void = () => undefined,
  ) {
    this.requests = new Lane(requestSlots);
    this.background = new Lane(backgroundSlots);
  }

  /**
   * Runs `operation` in a slot. Rejects without running it when `deadline`
   * (ms since the epoch) passed while it waited: its request was answered.
   */
  async run<T>(operation: () => Promise<T> | T, deadline: number, background = false): Promise<T> {
    const lane = background ? this.background : this.requests;
    for (;;) {
      await this.acquire(lane, deadline);
      try {
        const result = await operation();
        this.outOfDescriptors = false;
        return result;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException)?.code;
        if (!code || !OUT_OF_DESCRIPTORS.has(code)) throw error;
        if (!this.outOfDescriptors) this.onOutOfDescriptors(error as Error);
        this.outOfDescriptors = true;
        if (Date.now() + RETRY_AFTER_MS >= deadline) throw error;
      } finally {
        this.release(lane);
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS));
      // Out of the timers phase before trying again: a commit never runs from a timer (see CommitWindow).
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private acquire(lane: Lane, deadline: number): Promise<void> {
    if (Date.now() >= deadline) return Promise.reject(new Error(BUDGET_RAN_OUT));
    if (lane.used < lane.size) {
      lane.used++;
      return Promise.resolve();
    }
    return new Promise((start, fail) => lane.waiting.push({ deadline, start, fail }));
  }

  /** Hands the slot to the next waiter; one whose deadline passed is turned away. */
  private release(lane: Lane): void {
    lane.used--;
    while (lane.used < lane.size && lane.waiting.length) {
      const waiter = lane.waiting.shift()!;
      if (Date.now() >= waiter.deadline) {
        waiter.fail(new Error(BUDGET_RAN_OUT));
        continue;
      }
      lane.used++;
      waiter.start();
    }
  }
}
