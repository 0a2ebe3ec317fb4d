import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants, mkdirSync, openSync, renameSync, statSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { OnModuleDestroy } from '@nestjs/common';
import { KeyedLock } from '../server-side/keyed-lock.js';
import { SwapQueue } from '../server-side/swap-queue.js';
import {
  ServerSideSessionInterface,
  type ServerSideSessionOptions,
  type StoreCall,
  type StoredRecord,
  type SwapOutcome,
} from '../server-side/server-side.session-interface.js';
import { SessionConfigurationError, describeOptionValue as describe } from '../session.errors.js';
import { FileSlots } from './file-slots.js';
import { SessionFileLocks, uniqueName } from './session-file-lock.js';

/** @publicApi */
export interface FileSystemSessionOptions extends ServerSideSessionOptions {
  /**
   * The folder of session files; created (mode `0o700`) at construction if
   * missing. Required (Flask-Session: `SESSION_FILE_DIR`). Give each
   * application its own folder: the sweep removes what it does not recognise
   * as its own only if it is expired or left over, but the threshold counts
   * every session file in it.
   */
  cacheDir: string;
  /**
   * The most session files kept: beyond it, expired files are removed first,
   * then those least recently written or refreshed (see "Threshold" on
   * {@link FileSystemSessionInterface}). A positive whole number. Default
   * `500` (`SESSION_FILE_THRESHOLD`).
   */
  threshold?: number;
  /**
   * File mode of session files; the owner must be able to read and write
   * them. Default `0o600`, owner only (`SESSION_FILE_MODE`).
   */
  mode?: number;
  /**
   * Seconds between two sweeps that remove expired session files (and files
   * left over by a crash), whatever the threshold; `0` turns the periodic
   * sweep off (call {@link FileSystemSessionInterface.deleteExpired} on a
   * schedule of your own); the one at the first store call, which starts the
   * count of files, still runs. The timer never keeps the process alive.
   * Default `20`.
   */
  cleanupInterval?: number;
}

/** Each file starts with its expiry: seconds since the epoch, 4 bytes little-endian (cachelib's header). */
const HEADER_BYTES = 4;
const LATEST_EXPIRY = 0xffff_ffff;
/** A session file's name: the SHA-256 of its store key, in hex. */
const SESSION_FILE = /^[0-9a-f]{64}$/;
const TEMPORARY_PREFIX = '.tmp-';
const LOCK_SUFFIX = '.lock';
const TAKEOVER_SUFFIX = '.lock.takeover';
/** File descriptors the store holds at most at once: for requests, and for background work (the sweep, eviction). */
const REQUEST_SLOTS = 8;
const BACKGROUND_SLOTS = 2;
/** How long one background step (removing one file, reading one header) may wait for a slot or a lock. */
const BACKGROUND_BUDGET_MS = 5000;
/** A temporary (or takeover) file older than this was left by a process that died while it held it. */
const LEFTOVER_TEMPORARY_MS = 10 * 60 * 1000;
const LONGEST_INTERVAL_SECONDS = Math.floor(0x7fff_ffff / 1000);

/** What this process knows of one session file: its expiry, and the inode and mtime it read that from. */
interface KnownFile {
  readonly expiry: number;
  readonly ino: number;
  readonly modifiedMs: number;
}

/**
 * Sessions as files, one per session, in `cacheDir`: Flask-Session's
 * filesystem backend for NestJS, made to hold up under load and to be shared
 * by several processes (cluster workers, several instances on one host, or
 * hosts on one NFS folder). It needs a POSIX system (Linux, macOS): its
 * locks are symbolic links, which the constructor checks it can create.
 *
 * **Files.** A session lives in `<cacheDir>/<SHA-256 of keyPrefix + sid, in
 * hex>`, so no sid can reach outside the folder: 4 bytes of expiry (Unix
 * seconds, little-endian, cachelib's header), then the record (msgpack or
 * JSON, as `serializationFormat` says). This is the format of earlier
 * versions, kept: existing session files stay valid, and the sweep reads an
 * expiry from 4 bytes without decoding the record. Flask-Session cannot read
 * these files (its backend pickles). Beside them, for milliseconds at a
 * time: `.tmp-*` files being written, and `<name>.lock` symbolic links whose
 * text (never followed) is the holder's pid, deadline and host.
 *
 * **Atomic, across processes.** A write goes to a temporary file that is
 * renamed into place, so a reader sees the old record or the new one, never
 * half of one; reads take no lock. Every write (compare-and-set, replace,
 * delete, refresh) runs under the session's lock: first one in this process
 * (so its own requests do not contend for the file), then the lock link,
 * which one process at a time can create. Under it the record is read again
 * and compared, so concurrent requests that change different keys keep
 * theirs, whichever processes serve them, and a logout is never undone.
 * Compare-and-sets of one session from this process go one at a time, and
 * one whose expected record is already stale is answered without touching
 * the disk (`SwapQueue`), so none starves under contention. A lock left by
 * a process that died is taken over at once on the same host, and by any
 * process once its holder's deadline is 2 s past (a holder commits nothing
 * after its deadline; hosts sharing a network folder must have clocks
 * within that).
 *
 * **A 503 means "not written".** The request's deadline is checked right
 * before the commit (the rename, the unlink, the 4-byte expiry write), and
 * the commit is one synchronous system call after that check, whose outcome
 * reaches the request with no I/O in between: a write the client was told
 * failed never lands later, and one it was told succeeded has landed. The
 * lock is released right after the answer.
 *
 * **Threshold.** The number of session files is counted as this process
 * writes and removes them (the folder is listed once, at the first store
 * call, and then only by the sweep: never per write). When a write takes it
 * above `threshold`, files are removed in the background, without delaying
 * the request: expired ones first, then the least recently written or
 * refreshed (with one lifetime for all sessions, the ones closest to
 * expiring). A session that a request is using at that moment is skipped.
 * What this means: `threshold` caps files, not users, and every session
 * counts the same. A logged-in user whose session was last written or
 * refreshed before those of the `threshold` most recent visitors is logged
 * out (the file is deleted; the next request gets a new, empty session),
 * even when those visitors are anonymous: a route that writes the session
 * for anonymous visitors creates a file for each. Recency is as exact as
 * `refreshAfter` (an unchanged session's file is refreshed at most that
 * often). So set `threshold` above the number of sessions alive within their
 * lifetime, write sessions for anonymous visitors only when needed, and give
 * them a short life with `permanent: false` and `nonPermanentLifetime`. The
 * count can exceed `threshold` briefly, by the writes that arrive while
 * files are being removed; with several processes, each counts the files it
 * wrote plus what the last sweep listed, so the folder can also exceed it by
 * other processes' new files until the next sweep.
 *
 * **Cleanup.** Every `cleanupInterval` seconds (default 20) a sweep lists
 * the folder, removes expired session files (whatever the threshold), and
 * temporary and lock files left by processes that died. An expired file is
 * also removed when a request finds it. {@link deleteExpired} runs the same
 * sweep on demand.
 *
 * **File descriptors.** The store holds at most 10 at once (8 for requests,
 * 2 for the sweep and eviction), however many requests arrive (they queue
 * for them), and retries within the request's budget when the process has
 * none left, so EMFILE reaches no client.
 *
 * @example
 * SessionModule.forRoot({
 *   interface: new FileSystemSessionInterface({ cacheDir: '/var/lib/my-app/sessions' }),
 *   secretKey: process.env.SECRET_KEY,
 * })
 *
 * @publicApi
 */
export class FileSystemSessionInterface extends ServerSideSessionInterface implements OnModuleDestroy {
  protected readonly storeName = 'filesystem';
  /** The folder, as an absolute path. */
  readonly cacheDir: string;
  readonly threshold: number;
  readonly mode: number;
  readonly cleanupInterval: number;
  /** The in-process half of each session's lock, by file name. */
  private readonly inProcess = new KeyedLock();
  /** Compare-and-sets of one session from this process, in turn; a stale one answered from what was last seen stored. */
  private readonly swaps = new SwapQueue();
  private readonly slots: FileSlots;
  private readonly locks: SessionFileLocks;
  /** The session files this process knows of, by name, least recently written first: the count, and the eviction order. */
  private known = new Map<string, KnownFile>();
  /** Whether the folder has been listed: until then, nothing is evicted. */
  private listed = false;
  /** Names this process wrote or removed while a sweep was listing the folder: what it knows of them is newer. */
  private touchedDuringSweep: Set<string> | undefined;
  private sweeping: Promise<number> | undefined;
  private trimming = false;
  private started = false;
  private timer: NodeJS.Timeout | undefined;
  private creatingFolder: Promise<void> | undefined;
  /** Whether the last background sweep failed, so a broken folder is logged once, not every interval. */
  private sweepFailing = false;

  constructor(options: FileSystemSessionOptions) {
    super(options, ['cacheDir', 'threshold', 'mode', 'cleanupInterval']);
    const own: Partial<FileSystemSessionOptions> = options ?? {};
    // Declared with its type, so that TypeScript narrows the options after each check.
    const fail: (option: string, problem: string) => never = SessionConfigurationError.thrower('FileSystemSessionInterface');
    const { cacheDir, threshold = 500, mode = 0o600, cleanupInterval = 20 } = own;
    if (cacheDir === undefined) fail('cacheDir', 'required: the folder to keep session files in.');
    if (typeof cacheDir !== 'string' || cacheDir.trim() === '') fail('cacheDir', `expected the path of a folder, got ${describe(cacheDir)}.`);
    if (typeof threshold !== 'number' || !Number.isSafeInteger(threshold) || threshold < 1) {
      fail('threshold', `expected a whole number of files > 0, got ${describe(threshold)}.`);
    }
    if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o777) {
      fail('mode', `expected a file mode from 0o000 to 0o777, such as 0o600, got ${describe(mode)}.`);
    }
    if ((mode & 0o600) !== 0o600) fail('mode', `the owner must be able to read and write session files (0o600), got 0o${mode.toString(8)}.`);
    if (typeof cleanupInterval !== 'number' || !Number.isFinite(cleanupInterval) || cleanupInterval < 0 || cleanupInterval > LONGEST_INTERVAL_SECONDS) {
      fail('cleanupInterval', `expected a number of seconds from 0 (off) to ${LONGEST_INTERVAL_SECONDS}, got ${describe(cleanupInterval)}.`);
    }
    this.cacheDir = resolve(cacheDir);
    this.threshold = threshold;
    this.mode = mode;
    this.cleanupInterval = cleanupInterval;
    // A folder that cannot be created or written is a configuration mistake: said now, not as a 503 on every request.
    try {
      mkdirSync(this.cacheDir, { recursive: true, mode: 0o700 });
      if (!statSync(this.cacheDir).isDirectory()) fail('cacheDir', `${this.cacheDir} is not a folder.`);
      accessSync(this.cacheDir, constants.R_OK | constants.W_OK | constants.X_OK);
      // Locks are symbolic links: a folder (or a system) without them could store nothing.
      const probe = join(this.cacheDir, `${TEMPORARY_PREFIX}${uniqueName()}`);
      symlinkSync('probe', probe);
      unlinkSync(probe);
    } catch (error) {
      if (error instanceof SessionConfigurationError) throw error;
      fail('cacheDir', `cannot keep session files and their locks (symbolic links) in ${this.cacheDir}: ${(error as Error).message}`);
    }
    this.slots = new FileSlots(REQUEST_SLOTS, BACKGROUND_SLOTS, (error) =>
      this.logger.warn(`The process is out of file descriptors (${(error as NodeJS.ErrnoException).code}); session file operations wait and retry.`),
    );
    this.locks = new SessionFileLocks(this.slots, () => this.createFolder());
  }

  /**
   * Removes expired session files now, whatever the threshold, with temporary
   * and lock files left by processes that died; answers how many session
   * files it removed. It lists the folder once and reads only the headers of
   * files it has not seen unchanged before. The store runs it every
   * `cleanupInterval` seconds by itself; to run it on a schedule of your own
   * instead, set `cleanupInterval: 0` and call it, for example with
   * `@nestjs/schedule`:
   *
   * @example
   * @Injectable()
   * export class SessionCleanup {
   *   constructor(private readonly sessions: SessionInterface) {}
   *
   *   @Cron(CronExpression.EVERY_10_MINUTES)
   *   async deleteExpiredSessions() {
   *     await (this.sessions as FileSystemSessionInterface).deleteExpired();
   *   }
   * }
   * // in the root module: imports: [ScheduleModule.forRoot(), SessionModule.forRoot({ interface:
   * //   new FileSystemSessionInterface({ cacheDir, cleanupInterval: 0 }), secretKey })],
   * // providers: [SessionCleanup]
   */
  deleteExpired(): Promise<number> {
    return (this.sweeping ??= this.sweep().finally(() => (this.sweeping = undefined)));
  }

  /** Stops the periodic sweep (Nest calls it on shutdown); the next store call starts it again. */
  onModuleDestroy(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.started = false;
  }

  protected async readRecord(storeId: string, call: StoreCall): Promise<StoredRecord | null> {
    this.startSweeping();
    const name = fileNameOf(storeId);
    const record = await this.readSessionFile(name, call.deadline);
    if (record === 'expired') {
      // Removed in the background, under its lock, if it is still expired then.
      void this.removeIf(name, (expiry) => expiry <= nowSeconds()).catch(() => undefined);
      return null;
    }
    return record;
  }

  protected swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome> {
    const name = fileNameOf(storeId);
    // Now, in the base class's tick, whenever the queue gets to it (see CommitWindow).
    const window = new CommitWindow(call.deadline);
    const swap = () =>
      this.underLock(
        name,
        call,
        async (): Promise<SwapOutcome> => {
          const read = await this.readSessionFile(name, call.deadline);
          const current = read === 'expired' ? null : read;
          const same = current === null ? expected === null : expected !== null && current.value.equals(expected.value);
          if (!same) return { swapped: false, current };
          await this.write(name, value, ttlSeconds, call, window);
          return { swapped: true };
        },
        window,
      );
    return this.swaps.run(storeId, expected, value, call, swap).finally(() => window.close());
  }

  protected replaceRecord(storeId: string, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<void> {
    const name = fileNameOf(storeId);
    return this.underLock(name, call, (window) => this.write(name, value, ttlSeconds, call, window));
  }

  protected deleteRecord(storeId: string, call: StoreCall): Promise<void> {
    const name = fileNameOf(storeId);
    return this.underLock(name, call, async (window) => {
      window.commit(() => unlinkSync(this.pathOf(name)), { ifMissing: true });
      this.forget(name);
    });
  }

  /** Rewrites the 4-byte expiry in place; an expired or missing file is not brought back. */
  protected refreshRecord(storeId: string, ttlSeconds: number, call: StoreCall): Promise<void> {
    const name = fileNameOf(storeId);
    return this.underLock(name, call, async (window) => {
      const expiry = await this.readExpiry(name, call.deadline, false);
      if (expiry === null || expiry <= nowSeconds()) return;
      const next = expiryIn(ttlSeconds);
      const written = await this.slots.run(
        () =>
          window.commit(
            () => {
              const fd = openSync(this.pathOf(name), 'r+');
              try {
                writeSync(fd, headerOf(next), 0, HEADER_BYTES, 0);
              } finally {
                closeSync(fd);
              }
            },
            { ifMissing: true },
          ),
        call.deadline,
      );
      if (written) this.remember(name, next);
    });
  }

  /** Lists the folder: the sweep's one directory read (a test counts them). */
  protected listFolder(): Promise<string[]> {
    return this.slots.run(() => readdir(this.cacheDir), Date.now() + BACKGROUND_BUDGET_MS, true);
  }

  /**
   * Runs `work` holding the session's lock, in this process and across
   * processes. Answers as soon as `work` has (so the answer follows the
   * commit with no I/O in between), and releases the lock after, before the
   * next request of this process gets it. Called synchronously by the
   * primitives, in the same tick as the base class's timer for this call
   * (see {@link CommitWindow}).
   */
  private underLock<T>(name: string, call: StoreCall, work: (window: CommitWindow) => Promise<T>, window = new CommitWindow(call.deadline)): Promise<T> {
    this.startSweeping();
    return new Promise<T>((resolve, reject) => {
      const locked = async () => {
        const held = (await this.locks.acquire(this.pathOf(name) + LOCK_SUFFIX, call.deadline))!;
        try {
          resolve(await work(window));
        } finally {
          window.close();
          await this.locks.release(held);
        }
      };
      this.inProcess.run(name, call.deadline, locked).catch((error: unknown) => {
        window.close();
        reject(error);
      });
    });
  }

  /** Writes a temporary file, then renames it over the session file: the commit. */
  private async write(name: string, value: Buffer, ttlSeconds: number, call: StoreCall, window: CommitWindow): Promise<void> {
    const expiry = expiryIn(ttlSeconds);
    const temporary = join(this.cacheDir, `${TEMPORARY_PREFIX}${uniqueName()}`);
    await this.writeTemporary(temporary, Buffer.concat([headerOf(expiry), value]), call.deadline);
    try {
      window.commit(() => renameSync(temporary, this.pathOf(name)));
    } catch (error) {
      void this.slots.run(() => unlink(temporary), Date.now() + BACKGROUND_BUDGET_MS, true).catch(() => undefined);
      throw error;
    }
    this.remember(name, expiry);
  }

  private async writeTemporary(path: string, bytes: Buffer, deadline: number): Promise<void> {
    const create = () =>
      this.slots.run(async () => {
        await writeFile(path, bytes, { flag: 'wx', mode: this.mode });
        // The umask may have taken group or other bits away: set them as asked, as cachelib does.
        if (this.mode & 0o077) await chmod(path, this.mode);
      }, deadline);
    try {
      await create();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      // The folder was removed: recreated, as at startup.
      await this.createFolder();
      await create();
    }
  }

  private createFolder(): Promise<void> {
    return (this.creatingFolder ??= mkdir(this.cacheDir, { recursive: true, mode: 0o700 })
      .then(() => undefined)
      .finally(() => (this.creatingFolder = undefined)));
  }

  /** The record in the session file, `'expired'`, or null when there is none. */
  private async readSessionFile(name: string, deadline: number): Promise<StoredRecord | 'expired' | null> {
    const bytes = await this.slots.run(() => readFile(this.pathOf(name)), deadline).catch(ifMissing(null));
    if (!bytes || bytes.length < HEADER_BYTES) return null;
    if (bytes.readUInt32LE(0) <= nowSeconds()) return 'expired';
    return { value: bytes.subarray(HEADER_BYTES) };
  }

  /** The expiry in a session file's header, or null when there is no such file. */
  private readExpiry(name: string, deadline: number, background: boolean): Promise<number | null> {
    return this.slots.run(
      async () => {
        const handle = await open(this.pathOf(name), 'r').catch(ifMissing(null));
        if (!handle) return null;
        try {
          const header = Buffer.alloc(HEADER_BYTES);
          const { bytesRead } = await handle.read(header, 0, HEADER_BYTES, 0);
          return bytesRead === HEADER_BYTES ? header.readUInt32LE(0) : null;
        } finally {
          await handle.close();
        }
      },
      deadline,
      background,
    );
  }

  private pathOf(name: string): string {
    return join(this.cacheDir, name);
  }

  /** Notes a file this process wrote or refreshed: counted, and last in the eviction order. */
  private remember(name: string, expiry: number, ino = 0, modifiedMs = 0): void {
    this.known.delete(name);
    this.known.set(name, { expiry, ino, modifiedMs });
    this.touchedDuringSweep?.add(name);
    if (this.known.size > this.threshold) this.trimSoon();
  }

  private forget(name: string): void {
    this.known.delete(name);
    this.touchedDuringSweep?.add(name);
  }

  /** Starts the periodic sweep at the first store call; its first run lists the folder and so starts the count. */
  private startSweeping(): void {
    if (this.started) return;
    this.started = true;
    const run = () =>
      void this.deleteExpired().then(
        () => (this.sweepFailing = false),
        (error: Error) => {
          if (!this.sweepFailing) this.logger.warn(`Removing expired session files in ${this.cacheDir} failed: ${error.message}`);
          this.sweepFailing = true;
        },
      );
    run();
    if (this.cleanupInterval > 0) {
      this.timer = setInterval(run, this.cleanupInterval * 1000);
      this.timer.unref();
    }
  }

  /**
   * Lists the folder once; reads the expiry of each session file it has not
   * seen unchanged (same inode and mtime) before; renews the count and the
   * eviction order from that; removes the expired files, and temporary and
   * lock files left by processes that died.
   */
  private async sweep(): Promise<number> {
    const touched = (this.touchedDuringSweep = new Set());
    const found = new Map<string, KnownFile>();
    try {
      const names = await this.listFolder().catch(ifMissing([] as string[]));
      await eachAtMost(BACKGROUND_SLOTS, names, async (entry) => {
        if (SESSION_FILE.test(entry)) {
          const file = await this.inspect(entry);
          if (file) found.set(entry, file);
        } else if (entry.startsWith(TEMPORARY_PREFIX) || entry.endsWith(TAKEOVER_SUFFIX)) {
          await this.removeLeftover(entry);
        } else if (entry.endsWith(LOCK_SUFFIX) && SESSION_FILE.test(entry.slice(0, -LOCK_SUFFIX.length))) {
          await this.locks.removeIfStale(this.pathOf(entry), Date.now() + BACKGROUND_BUDGET_MS).catch(() => false);
        }
      });
    } finally {
      this.touchedDuringSweep = undefined;
    }
    // What the listing found, soonest to expire first, then what this process wrote meanwhile.
    const merged = new Map([...found].filter(([name]) => !touched.has(name)).sort(([, a], [, b]) => a.expiry - b.expiry));
    for (const [name, file] of this.known) if (touched.has(name)) merged.set(name, file);
    this.known = merged;
    this.listed = true;
    const now = nowSeconds();
    const expired = [...this.known].filter(([, file]) => file.expiry <= now).map(([name]) => name);
    let removed = 0;
    await eachAtMost(BACKGROUND_SLOTS, expired, async (name) => {
      if ((await this.removeIf(name, (expiry) => expiry <= nowSeconds())) === 'removed') removed++;
    });
    if (this.known.size > this.threshold) this.trimSoon();
    return removed;
  }

  /** A session file's expiry, read from its header only when its inode or mtime changed since this process last read it. */
  private async inspect(name: string): Promise<KnownFile | undefined> {
    const deadline = Date.now() + BACKGROUND_BUDGET_MS;
    const info = await this.slots.run(() => lstat(this.pathOf(name)), deadline, true).catch(ifMissing(null));
    if (!info?.isFile()) return undefined;
    const before = this.known.get(name);
    if (before && before.ino === info.ino && before.modifiedMs === info.mtimeMs) return before;
    const expiry = await this.readExpiry(name, deadline, true);
    return expiry === null ? undefined : { expiry, ino: info.ino, modifiedMs: info.mtimeMs };
  }

  private async removeLeftover(entry: string): Promise<void> {
    const path = this.pathOf(entry);
    const deadline = Date.now() + BACKGROUND_BUDGET_MS;
    const info = await this.slots.run(() => lstat(path), deadline, true).catch(ifMissing(null));
    if (info && Date.now() - info.mtimeMs > LEFTOVER_TEMPORARY_MS) await this.slots.run(() => unlink(path), deadline, true).catch(ifMissing(undefined));
  }

  /** Starts removing files down to the threshold, in the background, unless that runs already. */
  private trimSoon(): void {
    if (!this.listed || this.trimming) return;
    this.trimming = true;
    // Off the request's path: the write that crossed the threshold answers first.
    setImmediate(() =>
      this.trim()
        .catch((error: Error) => this.logger.warn(`Removing session files above the threshold failed: ${error.message}`))
        .finally(() => (this.trimming = false)),
    );
  }

  /** Expired files first, then the least recently written; stops when every candidate is in use (the next write tries again). */
  private async trim(): Promise<void> {
    while (this.known.size > this.threshold) {
      const now = nowSeconds();
      const victims = this.victims(this.known.size - this.threshold, now);
      let settled = 0;
      await eachAtMost(BACKGROUND_SLOTS, victims, async (name) => {
        // Kept if another process refreshed it since this one noted it: it is in use (and now last in line).
        const removable = (expiry: number) => expiry <= nowSeconds() || expiry <= (this.known.get(name)?.expiry ?? 0);
        if ((await this.removeIf(name, removable)) !== 'busy') settled++;
      });
      if (!settled) return;
    }
  }

  private victims(count: number, now: number): string[] {
    const chosen = new Set<string>();
    for (const [name, file] of this.known) {
      if (chosen.size >= count) break;
      if (file.expiry <= now && !this.inProcess.isBusy(name)) chosen.add(name);
    }
    for (const name of this.known.keys()) {
      if (chosen.size >= count) break;
      if (!this.inProcess.isBusy(name)) chosen.add(name);
    }
    return [...chosen];
  }

  /**
   * Removes a session file if `removable(its expiry)` says so, under its lock.
   * A session that a request of any process holds right now is left alone
   * (`'busy'`); one that is not removable is noted with its expiry (`'kept'`).
   */
  private async removeIf(name: string, removable: (expiry: number) => boolean): Promise<'removed' | 'kept' | 'gone' | 'busy'> {
    if (this.inProcess.isBusy(name)) return 'busy';
    const deadline = Date.now() + BACKGROUND_BUDGET_MS;
    return this.inProcess.run(name, deadline, async () => {
      const held = await this.locks.acquire(this.pathOf(name) + LOCK_SUFFIX, deadline, { background: true, once: true });
      if (!held) return 'busy';
      try {
        const expiry = await this.readExpiry(name, deadline, true);
        if (expiry === null) {
          this.forget(name);
          return 'gone';
        }
        if (!removable(expiry)) {
          if (this.known.get(name)?.expiry !== expiry) this.remember(name, expiry);
          return 'kept';
        }
        await this.slots.run(() => unlink(this.pathOf(name)), deadline, true).catch(ifMissing(undefined));
        this.forget(name);
        return 'removed';
      } finally {
        await this.locks.release(held);
      }
    });
  }
}

/**
 * Whether a store call may still commit: closed once the request's deadline
 * is (about to be) reached. The base class answers 503 from a timer it sets
 * for the deadline in the same tick as this one's, which is set to fire a
 * millisecond earlier; a commit runs only after a file-system callback (never
 * from a timer), so by then this timer has run whenever the base class's
 * has. And the commit is one synchronous call right after the check, whose
 * outcome reaches the base class in microtasks: no timer can run between the
 * check, the commit and the answer. So a client told 503 never gets its
 * write committed, and a client told 200 always has.
 */
class CommitWindow {
  private open = true;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly deadline: number) {
    this.timer = setTimeout(() => (this.open = false), Math.max(0, deadline - Date.now() - 1));
  }

  /**
   * Runs the synchronous `commit` if the window is open, else throws having
   * done nothing. With `ifMissing`, a missing file (ENOENT) is no error:
   * answers false.
   */
  commit(commit: () => void, { ifMissing = false } = {}): boolean {
    if (!this.open || Date.now() >= this.deadline - 1) {
      throw new Error('the request\'s store budget ran out before the write could be committed; nothing was written');
    }
    try {
      commit();
      return true;
    } catch (error) {
      if (ifMissing && (error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  }

  close(): void {
    clearTimeout(this.timer);
    this.open = false;
  }
}

function fileNameOf(storeId: string): string {
  return createHash('sha256').update(storeId).digest('hex');
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function expiryIn(ttlSeconds: number): number {
  return Math.min(LATEST_EXPIRY, nowSeconds() + ttlSeconds);
}

function headerOf(expiry: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(expiry);
  return header;
}

/** Runs `work` on every item, at most `limit` at a time. */
async function eachAtMost<T>(limit: number, items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** A missing file is an answer (no record), not a store failure. */
function ifMissing<T>(fallback: T) {
  return (error: NodeJS.ErrnoException): T => {
    if (error.code === 'ENOENT') return fallback;
    throw error;
  };
}
