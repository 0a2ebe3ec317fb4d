/**
 * The filesystem store's count, threshold and sweep: files are counted as
 * they are written (the folder is listed once at startup and then only by the
 * sweep), expired files go first beyond the threshold, then the least
 * recently written, and the sweep removes expired files whatever the
 * threshold.
 */
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { existsSync, lutimesSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { FileSystemSessionInterface, type FileSystemSessionOptions } from '../../lib/filesystem/index.js';
import { Session, SessionModule, type SessionMixin } from '../../lib/index.js';
import { createApp } from '../support/apps.js';
import { aliveProcess, deadPid, plantLock } from './support/locks.js';

type Call = { deadline: number };
interface Primitives {
  replaceRecord(storeId: string, value: Buffer, ttlSeconds: number, call: Call): Promise<void>;
  refreshRecord(storeId: string, ttlSeconds: number, call: Call): Promise<void>;
}

const folders: string[] = [];
function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nest-session-fs-threshold-'));
  folders.push(dir);
  return dir;
}
afterAll(() => folders.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

const nameOf = (storeId: string) => createHash('sha256').update(storeId).digest('hex');
const sessionFiles = (dir: string) => readdirSync(dir).filter((name) => /^[0-9a-f]{64}$/.test(name));
const exists = (dir: string, storeId: string) => existsSync(join(dir, nameOf(storeId)));
const call = (): Call => ({ deadline: Date.now() + 5000 });

/** The store, with the number of times it listed its folder counted (the real listing still runs). */
function store(options: FileSystemSessionOptions) {
  const sessions = new FileSystemSessionInterface(options);
  const target = sessions as unknown as { listFolder(): Promise<string[]> };
  const list = target.listFolder.bind(sessions);
  let listings = 0;
  target.listFolder = () => {
    listings++;
    return list();
  };
  return { sessions, primitives: sessions as unknown as Primitives, listings: () => listings };
}

/** A session file written as the store writes one, expiring at `expiry` (Unix seconds). */
function plantSession(dir: string, storeId: string, expiry: number): void {
  const header = Buffer.alloc(4);
  header.writeUInt32LE(expiry);
  writeFileSync(join(dir, nameOf(storeId)), Buffer.concat([header, Buffer.from([0x80])]));
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const value = Buffer.from([0x81, 0xa1, 0x61, 0x01]); // msgpack {a: 1}

describe('filesystem store: count, threshold and sweep', () => {
  it('counts files without listing the folder per write; beyond the threshold removes expired files first, then the least recently written', async () => {
    const dir = folder();
    const { primitives, listings } = store({ cacheDir: dir, threshold: 10, cleanupInterval: 0 });
    for (let i = 0; i < 3; i++) await primitives.replaceRecord(`session:short${i}`, value, 1, call());
    for (let i = 0; i < 7; i++) await primitives.replaceRecord(`session:live${i}`, value, 3600, call());
    // The short ones expire, but nothing sweeps them (cleanupInterval: 0) and the folder is at the threshold.
    const expiry = readFileSync(join(dir, nameOf('session:short2'))).readUInt32LE(0);
    await new Promise((resolve) => setTimeout(resolve, (expiry + 1) * 1000 - Date.now()));
    expect(sessionFiles(dir)).toHaveLength(10);

    for (let i = 0; i < 3; i++) await primitives.replaceRecord(`session:new${i}`, value, 3600, call());
    await until(() => sessionFiles(dir).length === 10, 'the folder is back at the threshold');
    for (let i = 0; i < 3; i++) expect(exists(dir, `session:short${i}`)).toBe(false);
    for (let i = 0; i < 7; i++) expect(exists(dir, `session:live${i}`)).toBe(true);

    // No expired file left: the least recently written go, in order.
    await primitives.replaceRecord('session:new3', value, 3600, call());
    await primitives.replaceRecord('session:new4', value, 3600, call());
    await until(() => sessionFiles(dir).length === 10, 'the folder is back at the threshold');
    expect([0, 1, 2].map((i) => exists(dir, `session:live${i}`))).toEqual([false, false, true]);
    for (let i = 0; i < 5; i++) expect(exists(dir, `session:new${i}`)).toBe(true);

    expect(listings()).toBe(1); // the startup listing, for 15 writes
  });

  it('starts its count from one listing: files already beyond the threshold are trimmed, soonest to expire first', async () => {
    const dir = folder();
    const order = Array.from({ length: 30 }, (_, i) => i).sort(() => Math.random() - 0.5);
    for (const i of order) plantSession(dir, `session:old${i}`, nowSeconds() + 1000 + i * 10);
    const { primitives, listings } = store({ cacheDir: dir, threshold: 20, cleanupInterval: 0 });
    await primitives.replaceRecord('session:trigger', value, 100_000, call());
    await until(() => sessionFiles(dir).length === 20, 'the folder is down to the threshold');
    const kept = Array.from({ length: 30 }, (_, i) => i).filter((i) => exists(dir, `session:old${i}`));
    expect(kept).toEqual(Array.from({ length: 19 }, (_, i) => i + 11));
    expect(exists(dir, 'session:trigger')).toBe(true);
    expect(listings()).toBe(1);
  });

  it('does not evict a session that another process refreshed since this one noted it', async () => {
    const dir = folder();
    const a = store({ cacheDir: dir, threshold: 5, cleanupInterval: 0 });
    const b = store({ cacheDir: dir, cleanupInterval: 0 });
    await a.sessions.deleteExpired(); // lists the (empty) folder: the count starts
    for (let i = 0; i < 5; i++) await a.primitives.replaceRecord(`session:s${i}`, value, 100, call());
    await b.primitives.refreshRecord('session:s0', 1000, call());
    await a.primitives.replaceRecord('session:s5', value, 100, call());
    await until(() => sessionFiles(dir).length === 5, 'the folder is back at the threshold');
    expect([0, 1, 2, 3, 4, 5].map((i) => exists(dir, `session:s${i}`))).toEqual([true, false, true, true, true, true]);
  });

  it('past the threshold, new sessions through the app keep the folder at the threshold, listed once', async () => {
    @Controller()
    class VisitController {
      @Get('visit')
      visit(@Session() session: SessionMixin) {
        session.set('visitor', true);
        return '';
      }
    }
    const dir = folder();
    const { sessions, listings } = store({ cacheDir: dir, threshold: 50, cleanupInterval: 0 });
    let app: INestApplication | undefined;
    try {
      app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [VisitController] });
      const server = app.getHttpServer();
      for (let round = 0; round < 10; round++) {
        const replies = await Promise.all(Array.from({ length: 30 }, () => request(server).get('/visit')));
        expect(replies.map((reply) => reply.status)).toEqual(Array(30).fill(200));
      }
      await until(() => sessionFiles(dir).length === 50, 'the folder is back at the threshold');
      expect(listings()).toBe(1); // for 300 writes
    } finally {
      await app?.close();
    }
  });

  it('the sweep removes expired files on its interval, far below the threshold', async () => {
    const dir = folder();
    const { primitives, listings } = store({ cacheDir: dir, threshold: 500, cleanupInterval: 1 });
    for (let i = 0; i < 50; i++) await primitives.replaceRecord(`session:short${i}`, value, 1, call());
    for (let i = 0; i < 5; i++) await primitives.replaceRecord(`session:live${i}`, value, 3600, call());
    expect(sessionFiles(dir)).toHaveLength(55);
    await until(() => sessionFiles(dir).length === 5, 'the expired files are gone');
    for (let i = 0; i < 5; i++) expect(exists(dir, `session:live${i}`)).toBe(true);
    expect(listings()).toBeGreaterThan(1); // it listed again to sweep
  });

  it('deleteExpired() removes expired sessions, and temporary and lock files left by processes that died, leaving the rest', async () => {
    const dir = folder();
    const alive = aliveProcess();
    try {
      for (let i = 0; i < 3; i++) plantSession(dir, `session:expired${i}`, nowSeconds() - 10);
      for (let i = 0; i < 2; i++) plantSession(dir, `session:live${i}`, nowSeconds() + 1000);
      const anHourAgo = new Date(Date.now() - 3600_000);
      const files = {
        oldTemporary: '.tmp-0123456789abcdef',
        newTemporary: '.tmp-fedcba9876543210',
        deadLock: `${nameOf('session:live0')}.lock`,
        liveLock: `${nameOf('session:live1')}.lock`,
        oldTakeover: `${nameOf('session:live0')}.lock.takeover`,
        foreign: 'README',
      };
      writeFileSync(join(dir, files.oldTemporary), 'x');
      utimesSync(join(dir, files.oldTemporary), anHourAgo, anHourAgo);
      writeFileSync(join(dir, files.newTemporary), 'x');
      plantLock(join(dir, files.deadLock), await deadPid(), Date.now() + 60_000);
      plantLock(join(dir, files.liveLock), alive.pid!, Date.now() + 60_000);
      symlinkSync('1', join(dir, files.oldTakeover));
      lutimesSync(join(dir, files.oldTakeover), anHourAgo, anHourAgo);
      writeFileSync(join(dir, files.foreign), 'not ours');

      const { sessions } = store({ cacheDir: dir, cleanupInterval: 0 });
      expect(await sessions.deleteExpired()).toBe(3);
      expect(sessionFiles(dir).sort()).toEqual([nameOf('session:live0'), nameOf('session:live1')].sort());
      const left = readdirSync(dir).filter((name) => !/^[0-9a-f]{64}$/.test(name));
      expect(left.sort()).toEqual([files.newTemporary, files.liveLock, files.foreign].sort());
      expect(await sessions.deleteExpired()).toBe(0);
    } finally {
      alive.kill('SIGKILL');
    }
  });
});
