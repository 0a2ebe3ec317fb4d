import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KeyedLock } from '../server-side/keyed-lock.js';
import {
  ServerSideSessionInterface,
  type ServerSideSessionOptions,
  type StoreCall,
  type StoredRecord,
  type SwapOutcome,
} from '../server-side/server-side.session-interface.js';

/** @publicApi */
export interface FileSystemSessionOptions extends ServerSideSessionOptions {
  /** The folder of session files; created if missing. Required (Flask-Session: `SESSION_FILE_DIR`). */
  cacheDir: string;
  /** Above this many files, expired ones are removed, then the oldest. Default `500` (`SESSION_FILE_THRESHOLD`). */
  threshold?: number;
  /** File mode of new session files. Default `0o600`, owner only (`SESSION_FILE_MODE`). */
  mode?: number;
}

/** Each file starts with its expiry: seconds since the epoch, 4 bytes little-endian (cachelib's header). */
const HEADER_BYTES = 4;

/**
 * One file per session in `cacheDir`, named by the SHA-256 of its store key,
 * so no sid can reach outside the folder. A file is written to a temporary
 * name and renamed into place, so a reader sees the old or the new record,
 * never half of one. The expiry sits in the file and is checked on read.
 *
 * @publicApi
 */
export class FileSystemSessionInterface extends ServerSideSessionInterface {
  protected readonly storeName = 'filesystem';
  readonly cacheDir: string;
  readonly threshold: number;
  readonly mode: number;
  private ready?: Promise<unknown>;
  private readonly lock = new KeyedLock();

  constructor(options: FileSystemSessionOptions) {
    super(options, ['cacheDir', 'threshold', 'mode']);
    this.cacheDir = options.cacheDir;
    this.threshold = options.threshold ?? 500;
    this.mode = options.mode ?? 0o600;
  }

  protected async readRecord(storeId: string, _call?: StoreCall): Promise<StoredRecord | null> {
    const file = this.fileOf(storeId);
    const bytes = await readFile(file).catch(ifMissing(null));
    if (!bytes || bytes.length < HEADER_BYTES) return null;
    if (bytes.readUInt32LE(0) <= nowSeconds()) {
      await rm(file, { force: true });
      return null;
    }
    return { value: bytes.subarray(HEADER_BYTES) };
  }

  // TODO(fs): in-process only; the rewrite adds a lock file.
  protected swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome> {
    return this.lock.run(storeId, call.deadline, async () => {
      const current = await this.readRecord(storeId);
      const same = current === null ? expected === null : expected !== null && current.value.equals(expected.value);
      if (!same) return { swapped: false, current };
      await this.writeRecord(storeId, value, ttlSeconds);
      return { swapped: true };
    });
  }

  protected replaceRecord(storeId: string, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<void> {
    return this.lock.run(storeId, call.deadline, () => this.writeRecord(storeId, value, ttlSeconds));
  }

  private async writeRecord(storeId: string, value: Buffer, ttlSeconds: number): Promise<void> {
    await (this.ready ??= mkdir(this.cacheDir, { recursive: true, mode: 0o700 }));
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(nowSeconds() + ttlSeconds);
    const temporary = join(this.cacheDir, `.tmp-${randomBytes(8).toString('hex')}`);
    await writeFile(temporary, Buffer.concat([header, value]), { mode: this.mode });
    await rename(temporary, this.fileOf(storeId));
    await this.prune();
  }

  protected deleteRecord(storeId: string, call: StoreCall): Promise<void> {
    return this.lock.run(storeId, call.deadline, () => rm(this.fileOf(storeId), { force: true }));
  }

  protected refreshRecord(storeId: string, ttlSeconds: number, call: StoreCall): Promise<void> {
    return this.lock.run(storeId, call.deadline, () => this.moveExpiry(storeId, ttlSeconds));
  }

  private async moveExpiry(storeId: string, ttlSeconds: number): Promise<void> {
    const handle = await open(this.fileOf(storeId), 'r+').catch(ifMissing(null));
    if (!handle) return;
    try {
      const header = Buffer.alloc(HEADER_BYTES);
      header.writeUInt32LE(nowSeconds() + ttlSeconds);
      await handle.write(header, 0, HEADER_BYTES, 0);
    } finally {
      await handle.close();
    }
  }

  private fileOf(storeId: string): string {
    return join(this.cacheDir, createHash('sha256').update(storeId).digest('hex'));
  }

  /** Over `threshold` files: expired ones go first, then the oldest, as Flask-Session's cache prunes. */
  private async prune(): Promise<void> {
    const names = (await readdir(this.cacheDir)).filter((name) => !name.startsWith('.tmp-'));
    if (names.length <= this.threshold) return;
    const now = nowSeconds();
    const files = await Promise.all(
      names.map(async (name) => {
        const file = join(this.cacheDir, name);
        const [info, head] = await Promise.all([stat(file).catch(ifMissing(null)), readHeader(file)]);
        return { file, modified: info?.mtimeMs ?? 0, expired: head === null || head <= now };
      }),
    );
    const expired = files.filter((f) => f.expired);
    const live = files.filter((f) => !f.expired).sort((a, b) => a.modified - b.modified);
    const excess = Math.max(0, files.length - expired.length - this.threshold);
    await Promise.all([...expired, ...live.slice(0, excess)].map((f) => rm(f.file, { force: true })));
  }
}

async function readHeader(file: string): Promise<number | null> {
  const handle = await open(file, 'r').catch(ifMissing(null));
  if (!handle) return null;
  try {
    const header = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(header, 0, HEADER_BYTES, 0);
    return bytesRead === HEADER_BYTES ? header.readUInt32LE(0) : null;
  } finally {
    await handle.close();
  }
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** A missing file is an answer (no record), not a store failure. */
function ifMissing<T>(fallback: T) {
  return (error: NodeJS.ErrnoException): T => {
    if (error.code === 'ENOENT') return fallback;
    throw error;
  };
}
