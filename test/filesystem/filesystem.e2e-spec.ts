import { Controller, Get, Query, type INestApplication } from '@nestjs/common';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { FileSystemSessionInterface, type FileSystemSessionOptions } from '../../lib/filesystem/index.js';
import { Session, SessionConfigurationError, SessionModule, type SessionMixin } from '../../lib/index.js';
import { cookiePair, createApp } from '../support/apps.js';
import { describeStoreContract } from '../server-side/contract.js';
import { aliveProcess, deadPid, plantLock } from './support/locks.js';

let cacheDir: string;
const fileOf = (storeId: string, dir = cacheDir) => join(dir, createHash('sha256').update(storeId).digest('hex'));
const sidOf = (cookie: string) => cookie.split('=')[1];

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

@Controller()
class FilesController {
  @Get('put')
  put(@Session() session: SessionMixin, @Query('key') key: string, @Query('value') value: string) {
    session.set(key, value);
    return '';
  }

  @Get('all')
  all(@Session() session: SessionMixin) {
    return session.toJSON();
  }

  @Get('none')
  none() {
    return 'none';
  }
}

/** Whether the lock (a symbolic link, which existsSync would follow) is gone, waiting up to 2 s for it. */
async function lockGone(path: string): Promise<boolean> {
  for (let waited = 0; lstatSync(path, { throwIfNoEntry: false }) && waited < 2000; waited += 10) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return !lstatSync(path, { throwIfNoEntry: false });
}

/** The lock of a session, held by process `pid` until `deadline`. */
function lockFile(storeId: string, pid: number, deadline: number): string {
  const path = `${fileOf(storeId)}.lock`;
  plantLock(path, pid, deadline);
  return path;
}

describe('filesystem store', () => {
  let app: INestApplication | undefined;
  afterEach(() => app?.close());

  async function start(options: Partial<FileSystemSessionOptions> = {}) {
    await app?.close();
    const sessions = new FileSystemSessionInterface({ cacheDir, storeTimeout: 500, ...options });
    app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [FilesController] });
    return { sessions, server: app.getHttpServer() };
  }

  it('stores a session as <sha256 of keyPrefix + sid>: 4 bytes of expiry, then the record; mode 0600', async () => {
    const { server } = await start();
    const set = await request(server).get('/put?key=a&value=1').expect(200);
    const file = fileOf(`session:${sidOf(cookiePair(set))}`);
    const bytes = readFileSync(file);
    const lifetime = 31 * 24 * 3600;
    expect(bytes.readUInt32LE(0)).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) + lifetime - 5);
    expect(bytes.readUInt32LE(0)).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + lifetime);
    expect(bytes[4] & 0xf0).toBe(0x80); // a msgpack map follows
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The lock is removed right after the answer (it does not delay it).
    expect(await lockGone(`${file}.lock`)).toBe(true);
  });

  it('gives files the mode asked for, whatever the umask', async () => {
    const { server } = await start({ mode: 0o640 });
    const previous = process.umask(0o077);
    try {
      const set = await request(server).get('/put?key=a&value=1').expect(200);
      expect(statSync(fileOf(`session:${sidOf(cookiePair(set))}`)).mode & 0o777).toBe(0o640);
    } finally {
      process.umask(previous);
    }
  });

  it('a refresh never brings back a record that expired or was deleted', async () => {
    const { sessions } = await start();
    const primitives = sessions as unknown as {
      replaceRecord(id: string, value: Buffer, ttl: number, call: { deadline: number }): Promise<void>;
      deleteRecord(id: string, call: { deadline: number }): Promise<void>;
      refreshRecord(id: string, ttl: number, call: { deadline: number }): Promise<void>;
    };
    const call = () => ({ deadline: Date.now() + 2000 });
    await primitives.replaceRecord('session:gone', Buffer.from([0x80]), 60, call());
    await primitives.deleteRecord('session:gone', call());
    await primitives.refreshRecord('session:gone', 60, call());
    expect(existsSync(fileOf('session:gone'))).toBe(false);
    await primitives.replaceRecord('session:expired', Buffer.from([0x80]), 1, call());
    const expiry = readFileSync(fileOf('session:expired')).readUInt32LE(0);
    await new Promise((resolve) => setTimeout(resolve, (expiry + 1) * 1000 - Date.now()));
    await primitives.refreshRecord('session:expired', 60, call());
    const after = existsSync(fileOf('session:expired')) ? readFileSync(fileOf('session:expired')).readUInt32LE(0) : null;
    expect([null, expiry]).toContain(after);
  });

  describe('a session locked by another process', () => {
    let holder: ChildProcess | undefined;
    afterEach(() => holder?.kill('SIGKILL'));

    it('waits for it within the budget, answers 503, and never writes later; works once it is released', async () => {
      const { server } = await start({ storeTimeout: 300 });
      const set = await request(server).get('/put?key=before&value=1').expect(200);
      const storeId = `session:${sidOf(cookiePair(set))}`;
      holder = aliveProcess();
      const lock = lockFile(storeId, holder.pid!, Date.now() + 60_000);
      const started = Date.now();
      const refused = await request(server).get('/put?key=refused&value=1').set('Cookie', cookiePair(set));
      expect(refused.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(300 + 1500);
      await request(server).get('/none').expect(200, 'none');
      // The holder goes away: nothing of the refused request may appear afterwards.
      rmSync(lock);
      await new Promise((resolve) => setTimeout(resolve, 600));
      const after = await request(server).get('/all').set('Cookie', cookiePair(set)).expect(200);
      expect(after.body).toEqual({ _permanent: true, before: '1' });
      await request(server).get('/put?key=later&value=1').set('Cookie', cookiePair(set)).expect(200);
      expect((await request(server).get('/all').set('Cookie', cookiePair(set))).body).toMatchObject({ before: '1', later: '1' });
    });

    it('takes over at once a lock whose process died', async () => {
      const { server } = await start({ storeTimeout: 500 });
      const set = await request(server).get('/put?key=before&value=1').expect(200);
      lockFile(`session:${sidOf(cookiePair(set))}`, await deadPid(), Date.now() + 60_000);
      await request(server).get('/put?key=after&value=1').set('Cookie', cookiePair(set)).expect(200);
      expect((await request(server).get('/all').set('Cookie', cookiePair(set))).body).toMatchObject({ before: '1', after: '1' });
      const lock = `${fileOf(`session:${sidOf(cookiePair(set))}`)}.lock`;
      expect(await lockGone(lock)).toBe(true); // the dead process's lock was removed, and ours after the answer
    });

    it('takes over a lock whose holder is alive but 2 s past its deadline (it commits nothing any more)', async () => {
      const { server } = await start({ storeTimeout: 500 });
      const set = await request(server).get('/put?key=before&value=1').expect(200);
      holder = aliveProcess();
      lockFile(`session:${sidOf(cookiePair(set))}`, holder.pid!, Date.now() - 2500);
      await request(server).get('/put?key=after&value=1').set('Cookie', cookiePair(set)).expect(200);
      expect((await request(server).get('/all').set('Cookie', cookiePair(set))).body).toMatchObject({ before: '1', after: '1' });
    });
  });

  it('under contention, compare-and-set attempts per request stay bounded: no request starves', async () => {
    const { sessions, server } = await start({ storeTimeout: 30_000 });
    type Swap = (id: string, expected: object | null, value: Buffer, ttl: number, call: object) => Promise<{ swapped: boolean; current?: object | null }>;
    const target = sessions as unknown as { swapRecord: Swap };
    const swap = target.swapRecord.bind(sessions);
    // The base class retries with `expected` = the record the lost attempt answered: attempts chain by identity.
    const attemptsBefore = new WeakMap<object, number>();
    let most = 0;
    target.swapRecord = async (id, expected, value, ttl, call) => {
      const attempt = (expected && attemptsBefore.get(expected)) ?? 0;
      const outcome = await swap(id, expected, value, ttl, call);
      if (!outcome.swapped && outcome.current) attemptsBefore.set(outcome.current, attempt + 1);
      most = Math.max(most, attempt + 1);
      return outcome;
    };
    const writersPerSession = 6;
    const cookies = await Promise.all(Array.from({ length: 4 }, async () => cookiePair(await request(server).get('/put?key=start&value=1'))));
    const writer = async (cookie: string, w: number) => {
      for (let i = 0; i < 8; i++) await request(server).get(`/put?key=w${w}&value=${i}`).set('Cookie', cookie).expect(200);
    };
    await Promise.all(cookies.flatMap((cookie) => Array.from({ length: writersPerSession }, (_, w) => writer(cookie, w))));
    for (const cookie of cookies) {
      const data = (await request(server).get('/all').set('Cookie', cookie)).body;
      expect(Array.from({ length: writersPerSession }, (_, w) => data[`w${w}`])).toEqual(Array(writersPerSession).fill('7'));
    }
    // Without the in-process queue, some requests lost to newcomers again and again (35 attempts measured).
    expect(most).toBeLessThanOrEqual(writersPerSession + 1);
  });

  it('sweeps on its interval while the app runs, and stops when the app closes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nest-session-fs-stop-'));
    try {
      const sessions = new FileSystemSessionInterface({ cacheDir: dir, cleanupInterval: 1 });
      const local = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [FilesController] });
      const expired = () => {
        const header = Buffer.alloc(4);
        header.writeUInt32LE(1);
        const path = join(dir, createHash('sha256').update(`session:${Math.random()}`).digest('hex'));
        writeFileSync(path, Buffer.concat([header, Buffer.from([0x80])]));
        return path;
      };
      try {
        await request(local.getHttpServer()).get('/put?key=a&value=1').expect(200); // the first store call starts the sweep
        const first = expired();
        for (let waited = 0; existsSync(first) && waited < 5000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
        expect(existsSync(first)).toBe(false);
      } finally {
        await local.close();
      }
      const second = expired();
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(existsSync(second)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('recreates a removed folder: requests go on, the removed sessions are new ones', async () => {
    const { server } = await start();
    const set = await request(server).get('/put?key=a&value=1').expect(200);
    rmSync(cacheDir, { recursive: true, force: true });
    const after = await request(server).get('/all').set('Cookie', cookiePair(set)).expect(200);
    expect(after.body).not.toHaveProperty('a');
    const again = await request(server).get('/put?key=b&value=2').expect(200);
    expect(existsSync(fileOf(`session:${sidOf(cookiePair(again))}`))).toBe(true);
    expect((await request(server).get('/all').set('Cookie', cookiePair(again))).body).toMatchObject({ b: '2' });
  });

  describe('options are checked at construction, naming the option', () => {
    const file = () => {
      const path = join(cacheDir, '..', 'a-file');
      writeFileSync(path, 'x');
      return path;
    };
    it.each<[string, () => Record<string, unknown>, string]>([
      ['no options', () => ({}), '"cacheDir": required'],
      ['no cacheDir', () => ({ threshold: 5 }), '"cacheDir": required'],
      ['an empty cacheDir', () => ({ cacheDir: '' }), '"cacheDir"'],
      ['a blank cacheDir', () => ({ cacheDir: '  ' }), '"cacheDir"'],
      ['a cacheDir that is not a string', () => ({ cacheDir: 42 }), '"cacheDir"'],
      ['a cacheDir that is a file', () => ({ cacheDir: file() }), '"cacheDir"'],
      ['a cacheDir inside a file', () => ({ cacheDir: join(file(), 'sessions') }), '"cacheDir"'],
      ['a threshold of 0', () => ({ cacheDir, threshold: 0 }), '"threshold"'],
      ['a negative threshold', () => ({ cacheDir, threshold: -1 }), '"threshold"'],
      ['a fractional threshold', () => ({ cacheDir, threshold: 1.5 }), '"threshold"'],
      ['a threshold as text', () => ({ cacheDir, threshold: '500' }), '"threshold"'],
      ['an infinite threshold', () => ({ cacheDir, threshold: Infinity }), '"threshold"'],
      ['a mode as text', () => ({ cacheDir, mode: '600' }), '"mode"'],
      ['a mode beyond 0o777', () => ({ cacheDir, mode: 0o4600 }), '"mode"'],
      ['a negative mode', () => ({ cacheDir, mode: -1 }), '"mode"'],
      ['a mode the owner cannot read', () => ({ cacheDir, mode: 0o200 }), '"mode": the owner must be able to read and write'],
      ['a negative cleanupInterval', () => ({ cacheDir, cleanupInterval: -1 }), '"cleanupInterval"'],
      ['a cleanupInterval as text', () => ({ cacheDir, cleanupInterval: '20' }), '"cleanupInterval"'],
      ['a misspelled option', () => ({ cacheDir, cachedir: 'x' }), 'did you mean "cacheDir"'],
    ])('%s', (_case, options, named) => {
      const construct = () => new FileSystemSessionInterface(options() as unknown as FileSystemSessionOptions);
      expect(construct).toThrow(SessionConfigurationError);
      expect(construct).toThrow(named);
      if (!named.startsWith('did you mean')) expect(construct).toThrow('Invalid FileSystemSessionInterface option');
    });

    it('accepts the defaults and says what they are', () => {
      const sessions = new FileSystemSessionInterface({ cacheDir });
      expect(sessions).toMatchObject({ cacheDir, threshold: 500, mode: 0o600, cleanupInterval: 20 });
    });
  });
});
