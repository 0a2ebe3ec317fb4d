import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSystemSessionInterface } from '../../lib/filesystem/index.js';
import { describeStoreContract } from '../server-side/contract.js';

let cacheDir: string;
const fileOf = (storeId: string) => join(cacheDir, createHash('sha256').update(storeId).digest('hex'));

beforeAll(() => {
  cacheDir = join(mkdtempSync(join(tmpdir(), 'nest-session-fs-')), 'sessions');
});
afterAll(() => rmSync(join(cacheDir, '..'), { recursive: true, force: true }));

describeStoreContract('filesystem', {
  create: (options) => new FileSystemSessionInterface({ cacheDir, ...options }),
  read: async (storeId) => (existsSync(fileOf(storeId)) ? readFileSync(fileOf(storeId)).subarray(4) : null),
  // A file where the folder should be: every read and write fails.
  breakStore: async () => {
    rmSync(cacheDir, { recursive: true, force: true });
    writeFileSync(cacheDir, 'not a folder');
  },
  repairStore: async () => {
    rmSync(cacheDir, { force: true });
    mkdirSync(cacheDir, { recursive: true });
  },
});

describe('filesystem specifics', () => {
  it('creates files with mode 0600 and keeps the expiry in them', async () => {
    const sessions = new FileSystemSessionInterface({ cacheDir });
    await (sessions as unknown as { writeRecord(id: string, v: Buffer, t: number): Promise<void> }).writeRecord('session:abc', Buffer.from('x'), 60);
    const file = fileOf('session:abc');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const expiry = readFileSync(file).readUInt32LE(0);
    expect(expiry).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) + 59);
  });

  it('prunes expired files first, then the oldest, above the threshold', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nest-session-prune-'));
    const sessions = new FileSystemSessionInterface({ cacheDir: dir, threshold: 3 });
    const write = (id: string, ttl: number) =>
      (sessions as unknown as { writeRecord(id: string, v: Buffer, t: number): Promise<void> }).writeRecord(id, Buffer.from(id), ttl);
    const expiredFile = join(dir, 'expired');
    const header = Buffer.alloc(4);
    header.writeUInt32LE(1);
    writeFileSync(expiredFile, Buffer.concat([header, Buffer.from('old')]));
    for (const id of ['a', 'b', 'c']) {
      await write(`session:${id}`, 60);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(existsSync(expiredFile)).toBe(false);
    await write('session:d', 60);
    const names = readdirSync(dir);
    expect(names).toHaveLength(3);
    expect(names).not.toContain(createHash('sha256').update('session:a').digest('hex'));
    rmSync(dir, { recursive: true, force: true });
  });
});
