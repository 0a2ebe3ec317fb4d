import { randomBytes } from 'node:crypto';
import { readlinkSync, unlinkSync } from 'node:fs';
import { lstat, readlink, symlink, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { FileSlots } from './file-slots.js';

/**
 * A lock whose holder's deadline passed this long ago is stale: its holder
 * commits nothing after its deadline, so taking the lock over is safe. The
 * margin covers clocks of hosts sharing a network folder that disagree a
 * little.
 */
export const STALE_AFTER_DEADLINE_MS = 2000;
/** A holder removes its lock without checking that it is still its own only this long before others may take it over. */
const RELEASE_SLACK_MS = 1500;
/** A lock file that does not say who holds it (damaged, or not written by this store) is stale after this long. */
const UNREADABLE_LOCK_STALE_MS = 10_000;
/** The short lock that serialises taking over one stale lock is itself stale after this long. */
const TAKEOVER_LOCK_STALE_MS = 5000;
/** Waits between attempts on a lock held by another process, doubling up to the last. */
const FIRST_WAIT_MS = 1;
const LONGEST_WAIT_MS = 16;

/**
 * This process's machine: the host name plus, on Linux, the PID namespace, so
 * that two containers on one host sharing a folder never judge each other's
 * process ids.
 */
const MACHINE = (() => {
  let namespace = '';
  try {
    namespace = readlinkSync('/proc/self/ns/pid');
  } catch {
    // Not Linux: the host name alone.
  }
  return `${hostname()}${namespace ? ` ${namespace}` : ''}`;
})();

/** Unique across processes and time: a random prefix per process, then a counter (cheaper than random bytes each time). */
const UNIQUE_PREFIX = randomBytes(9).toString('base64url');
let uniqueCounter = 0;
export function uniqueName(): string {
  return `${UNIQUE_PREFIX}${(uniqueCounter++).toString(36)}`;
}

/** A lock this process holds. */
export interface HeldLock {
  readonly path: string;
  readonly token: string;
  readonly deadline: number;
  /** Taken by background work (the sweep, eviction): released in its lane. */
  readonly background: boolean;
}

/** Who holds a lock, as its file says; `unreadable` when it does not say (damaged, or not written by this store). */
type Holder =
  | { readonly kind: 'process'; readonly pid: number; readonly machine: string; readonly deadline: number; readonly token: string }
  | { readonly kind: 'unreadable'; readonly modifiedMs: number };

/**
 * The cross-process half of a session's lock: `<session file>.lock`, a
 * symbolic link whose text (never followed) says who holds it: pid, deadline,
 * a random token, machine. Creating a symbolic link is one system call that
 * fails if the name exists, so exactly one process gets the lock, and its
 * text is there from the first instant (a lock file created empty and filled
 * afterwards would, if its process were killed or paused in between, leave a
 * lock nobody can judge). Emacs locks files the same way. It works on local
 * folders and NFS of POSIX systems, and costs no file descriptor.
 *
 * A lock left behind is taken over when its holder is known to be gone: a
 * process of this machine that no longer exists (at once), or any holder
 * whose deadline is more than {@link STALE_AFTER_DEADLINE_MS} past (a holder
 * commits nothing after its deadline). Taking over is serialised by a second,
 * short-lived lock, so that two waiters never both take over one lock.
 */
export class SessionFileLocks {
  constructor(
    private readonly slots: FileSlots,
    private readonly ensureFolder: () => Promise<void>,
  ) {}

  /**
   * Takes the lock at `path`, waiting for another process to release it
   * until `deadline`; with `once`, tries once and answers null when it is
   * held.
   */
  async acquire(path: string, deadline: number, { background = false, once = false } = {}): Promise<HeldLock | null> {
    const token = uniqueName();
    const text = `${process.pid} ${deadline} ${token} ${MACHINE}`;
    let wait = FIRST_WAIT_MS;
    for (;;) {
      try {
        await this.slots.run(() => symlink(text, path), deadline, background);
        return { path, token, deadline, background };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          // The folder was removed: recreated, as at startup.
          await this.ensureFolder();
          continue;
        }
        if (code !== 'EEXIST') throw error;
      }
      if (once) return null;
      const holder = await this.readHolder(path, deadline, background);
      if (!holder) continue; // released meanwhile
      if (this.isStale(holder) && (await this.takeOver(path, holder, deadline, background))) continue;
      if (Date.now() + wait >= deadline) {
        throw new Error(`the session is locked by another process (${describe(holder)}) beyond the request's store budget`);
      }
      await new Promise((resolve) => setTimeout(resolve, wait * (0.5 + Math.random())));
      wait = Math.min(wait * 2, LONGEST_WAIT_MS);
    }
  }

  /**
   * Removes the lock; never fails (a lock left behind is taken over once
   * stale). Decided when the removal gets its slot: well before the lock
   * could be judged stale it is certainly still ours, and removed as it is
   * (the removal having seconds to reach the file system); later, only if
   * its token is still ours (another process may have taken it over),
   * checked and removed synchronously so that nothing of this process runs
   * in between.
   */
  async release(held: HeldLock): Promise<void> {
    await this.slots
      .run(async () => {
        if (Date.now() < held.deadline + STALE_AFTER_DEADLINE_MS - RELEASE_SLACK_MS) return unlink(held.path);
        if (parseHolder(readlinkSync(held.path))?.token === held.token) unlinkSync(held.path);
      }, Date.now() + 60_000, held.background)
      .catch(() => undefined); // gone already (the folder was removed), or not removable now
  }

  /** For the sweep: removes the lock at `path` if its holder is gone; true if it did. */
  async removeIfStale(path: string, deadline: number): Promise<boolean> {
    const holder = await this.readHolder(path, deadline, true);
    return !!holder && this.isStale(holder) && this.takeOver(path, holder, deadline, true);
  }

  private isStale(holder: Holder): boolean {
    if (holder.kind === 'unreadable') return Date.now() - holder.modifiedMs > UNREADABLE_LOCK_STALE_MS;
    if (holder.machine === MACHINE && holder.pid !== process.pid && !isRunning(holder.pid)) return true;
    return Date.now() > holder.deadline + STALE_AFTER_DEADLINE_MS;
  }

  /**
   * Removes the stale lock `seen`, if it is still the lock at `path`, under a
   * short takeover lock: two processes never both remove one stale lock (the
   * second would remove the first's fresh one). False when another process
   * is taking it over already.
   */
  private async takeOver(path: string, seen: Holder, deadline: number, background: boolean): Promise<boolean> {
    const takeoverPath = `${path}.takeover`;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.slots.run(() => symlink(String(process.pid), takeoverPath), deadline, background);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        if (attempt >= 3) return false;
      }
      // Another process is taking over, or one died doing so: its takeover lock is removed once it is old.
      const info = await this.slots.run(() => lstat(takeoverPath), deadline, background).catch(ifGone);
      if (info && Date.now() - info.mtimeMs <= TAKEOVER_LOCK_STALE_MS) return false;
      if (info) await this.slots.run(() => unlink(takeoverPath), deadline, background).catch(ifGone);
    }
    try {
      const now = await this.readHolder(path, deadline, background);
      if (!now || !sameLock(now, seen) || !this.isStale(now)) return true;
      await this.slots.run(() => unlink(path), deadline, background).catch(ifGone);
      return true;
    } finally {
      await this.slots.run(() => unlink(takeoverPath), deadline, background).catch(ifGone);
    }
  }

  /** The lock's holder, or undefined when there is no lock (any more). */
  private async readHolder(path: string, deadline: number, background: boolean): Promise<Holder | undefined> {
    try {
      const holder = parseHolder(await this.slots.run(() => readlink(path), deadline, background));
      if (holder) return holder;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (code !== 'EINVAL') throw error; // EINVAL: not a symbolic link
    }
    try {
      const info = await this.slots.run(() => lstat(path), deadline, background);
      return { kind: 'unreadable', modifiedMs: info.mtimeMs };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }
}

function parseHolder(text: string): (Holder & { kind: 'process' }) | undefined {
  const [pid, deadline, token, ...machine] = text.split(' ');
  const holder = { kind: 'process' as const, pid: Number(pid), deadline: Number(deadline), token, machine: machine.join(' ') };
  return Number.isSafeInteger(holder.pid) && holder.pid > 0 && Number.isFinite(holder.deadline) && token ? holder : undefined;
}

function sameLock(a: Holder, b: Holder): boolean {
  if (a.kind === 'process' && b.kind === 'process') return a.token === b.token;
  return a.kind === 'unreadable' && b.kind === 'unreadable' && a.modifiedMs === b.modifiedMs;
}

/** Whether a process of this machine exists (EPERM: it does, owned by another user). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function describe(holder: Holder): string {
  return holder.kind === 'process'
    ? `pid ${holder.pid} on ${holder.machine.split(' ')[0]}, until ${new Date(holder.deadline).toISOString()}`
    : 'a lock file that does not say who holds it';
}

function ifGone(error: NodeJS.ErrnoException): void {
  if (error.code !== 'ENOENT') throw error;
}
