import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync, unlinkSync } from 'node:fs';
import { link, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import type { FileSlots } from './file-slots.js';

/**
 * A lock whose holder's deadline passed this long ago is stale: its holder
 * commits nothing after its deadline, so taking the lock over is safe. The
 * margin covers clocks of hosts sharing a network folder that disagree a
 * little.
 */
export const STALE_AFTER_DEADLINE_MS = 2000;
/** A holder removes its lock without checking that it is still its own only this long before others may take it over. */
const RELEASE_MARGIN_MS = 1000;
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

/** A lock this process holds. */
export interface HeldLock {
  readonly path: string;
  readonly token: string;
  readonly deadline: number;
}

/** Who holds a lock, as its file says; `unreadable` when it does not say (damaged, or not written by this store). */
type Holder =
  | { readonly kind: 'process'; readonly pid: number; readonly machine: string; readonly deadline: number; readonly token: string }
  | { readonly kind: 'unreadable'; readonly modifiedMs: number };

/**
 * The cross-process half of a session's lock: a file `<session file>.lock`
 * holding its owner's pid, machine, deadline and a random token. It is
 * written under a temporary name and hard-linked to the lock's name, which
 * fails if that exists: exactly one process gets it, and nobody ever sees a
 * lock file half written (a process killed or paused between creating and
 * filling a lock would leave one nobody could judge). This works on local
 * folders and on NFS.
 *
 * A lock left behind is taken over when its holder is known to be gone: a
 * process of this machine that no longer exists (at once), or any holder
 * whose deadline is more than {@link STALE_AFTER_DEADLINE_MS} past (a holder
 * commits nothing after its deadline). Taking over is serialised by a second,
 * short-lived O_EXCL file, so that two waiters never both take over one lock.
 */
export class SessionFileLocks {
  constructor(
    private readonly slots: FileSlots,
    private readonly mode: number,
    private readonly ensureFolder: () => Promise<void>,
  ) {}

  /**
   * Takes the lock at `path`, waiting for another process to release it
   * until `deadline`; with `once`, tries once and answers null when it is
   * held.
   */
  async acquire(path: string, deadline: number, { background = false, once = false } = {}): Promise<HeldLock | null> {
    const token = randomBytes(12).toString('base64url');
    // Written in full under another name first, then linked: a lock file is never seen empty.
    const staging = join(dirname(path), `.tmp-${token}`);
    await this.createFile(staging, `${process.pid}\n${MACHINE}\n${deadline}\n${token}\n`, deadline, background);
    try {
      let wait = FIRST_WAIT_MS;
      for (;;) {
        try {
          await this.slots.run(() => link(staging, path), deadline, background);
          return { path, token, deadline };
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
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
    } finally {
      await this.slots.run(() => unlink(staging), Date.now() + 5000, background).catch(() => undefined);
    }
  }

  /** Creates a file that must not exist yet; recreates the folder if it was removed, as at startup. */
  private async createFile(path: string, content: string, deadline: number, background: boolean): Promise<void> {
    const create = () => this.slots.run(() => writeFile(path, content, { flag: 'wx', mode: this.mode }), deadline, background);
    try {
      await create();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await this.ensureFolder();
      await create();
    }
  }

  /**
   * Removes the lock, synchronously: no other work of this process can run
   * between the check and the removal. Well before the lock could be judged
   * stale, it is certainly still ours; later, it is removed only if its token
   * is still ours (another process may have taken it over).
   */
  release(held: HeldLock): void {
    try {
      if (Date.now() < held.deadline + STALE_AFTER_DEADLINE_MS - RELEASE_MARGIN_MS) {
        unlinkSync(held.path);
        return;
      }
      const holder = parseHolder(readFileSync(held.path, 'utf8'));
      if (holder?.token === held.token) unlinkSync(held.path);
    } catch {
      // Gone already (the folder was removed), or not removable now: a lock left behind is taken over once stale.
    }
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
        await this.slots.run(() => writeFile(takeoverPath, String(process.pid), { flag: 'wx', mode: this.mode }), deadline, background);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        if (attempt >= 3) return false;
      }
      // Another process is taking over, or one died doing so: its takeover lock is removed once it is old.
      const info = await this.slots.run(() => stat(takeoverPath), deadline, background).catch(ifGone);
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
      const holder = parseHolder(await this.slots.run(() => readFile(path, 'utf8'), deadline, background));
      if (holder) return holder;
      const info = await this.slots.run(() => stat(path), deadline, background);
      return { kind: 'unreadable', modifiedMs: info.mtimeMs };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }
}

function parseHolder(text: string): (Holder & { kind: 'process' }) | undefined {
  const [pid, machine, deadline, token] = text.split('\n');
  const holder = { kind: 'process' as const, pid: Number(pid), machine, deadline: Number(deadline), token };
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
