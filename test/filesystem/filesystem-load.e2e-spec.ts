/**
 * The filesystem store under load and faults: 40 concurrent clients in a
 * process with few file descriptors, past the threshold, get no 503; a folder
 * that breaks under load gives 503s within the budget on session routes only,
 * writes nothing after a 503, and recovers without a restart.
 */
import { Controller, Get, Query, type INestApplication } from '@nestjs/common';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSystemSessionInterface } from '../../lib/filesystem/index.js';
import { Session, SessionModule, StoreSerializer, type SessionMixin } from '../../lib/index.js';
import { createApp } from '../support/apps.js';
import { buildChildApp, type ChildBuild } from './support/build-child.js';
import { Clients, startSessionProcess, type Reply, type SessionProcess } from './support/session-process.js';

const folders: string[] = [];
function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nest-session-fs-load-'));
  folders.push(dir);
  return dir;
}
afterAll(() => folders.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

const isSessionFile = (name: string) => /^[0-9a-f]{64}$/.test(name);
const sessionFiles = (dir: string) => readdirSync(dir).filter(isSessionFile);

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('filesystem store under load', () => {
  let build: ChildBuild;
  let app: SessionProcess | undefined;
  const clients = new Clients(40);
  beforeAll(async () => {
    build = await buildChildApp();
  }, 60_000);
  afterAll(async () => {
    clients.close();
    await app?.stop();
    build?.remove();
  });

  it('40 concurrent clients of a process limited to 80 open files, past the threshold, get no 503', async () => {
    const cacheDir = folder();
    // 2,000 files already there, half of them expired, with a threshold of 200: the startup
    // listing, the sweep and eviction all run while the clients do.
    const header = Buffer.alloc(4);
    const now = Math.floor(Date.now() / 1000);
    for (let i = 0; i < 2000; i++) {
      header.writeUInt32LE(i % 2 ? now + 3600 : now - 60);
      writeFileSync(join(cacheDir, i.toString(16).padStart(64, '0')), Buffer.concat([header, Buffer.from([0x80])]));
    }
    // About 20 descriptors for Node itself, 40 for the clients' connections, 10 for the store: 80 is tight.
    app = await startSessionProcess(build.app, { cacheDir, threshold: 200, storeTimeout: 5000 }, 80);
    const url = app.url;
    // A connection the server could not accept or had to drop counts as status 0.
    const get = (path: string, cookie?: string) => clients.get(url, path, cookie).catch((): Reply => ({ status: 0, body: '', ms: 0 }));
    const client = async (c: number): Promise<Reply[]> => {
      const replies: Reply[] = [];
      let cookie = '';
      for (let i = 0; i < 30; i++) {
        // An anonymous visitor (a new session, a new file), or a write to this client's own session.
        const reply = i % 2 ? await get('/visit') : await get(`/put?key=c${c}&value=${i}`, cookie);
        cookie ||= reply.cookie ?? '';
        replies.push(reply);
      }
      return replies;
    };
    const replies = (await Promise.all(Array.from({ length: 40 }, (_, c) => client(c)))).flat();
    const statuses = replies.reduce<Record<number, number>>((count, { status }) => ({ ...count, [status]: (count[status] ?? 0) + 1 }), {});
    expect(statuses).toEqual({ 200: 1200 });
    // No store call failed (Nest logs those as errors); running out of descriptors is only retried (a warning).
    expect(app.errors()).not.toMatch(/ERROR/);
    await until(() => sessionFiles(cacheDir).length <= 200, 'the folder is back at the threshold', 60_000);
  }, 120_000);
});

@Controller()
class FaultController {
  @Get('put')
  put(@Session() session: SessionMixin, @Query('key') key: string) {
    session.set(key, key);
    return '';
  }

  @Get('none')
  none() {
    return 'none';
  }
}

/**
 * Removes a folder the store is writing into, in one step: moved aside (a rename), then deleted; with `fileText`,
 * a file takes its place at once. Deleting it in place races the store's writes (a file made after the listing:
 * ENOTEMPTY), and so would writing the file after it (the store makes the folder again when it finds it gone).
 */
function removeAtOnce(dir: string, fileText?: string): void {
  const aside = `${dir}.removed-${Date.now()}`;
  if (fileText !== undefined) writeFileSync(`${aside}.file`, fileText);
  renameSync(dir, aside);
  if (fileText !== undefined) renameSync(`${aside}.file`, dir);
  rmSync(aside, { recursive: true, force: true, maxRetries: 5 });
}

/** While the folder is broken, requests are refused (503), or served because the store made the folder again. */
type WhileBroken = 'refused' | 'served';

describe.each<[string, (dir: string) => void, (dir: string) => void, WhileBroken]>([
  [
    'replaced by a file (unwritable)',
    (dir) => removeAtOnce(dir, 'not a folder'),
    (dir) => {
      rmSync(dir, { force: true });
      mkdirSync(dir);
    },
    'refused',
  ],
  ['removed, then made again', (dir) => removeAtOnce(dir), (dir) => mkdirSync(dir, { recursive: true }), 'served'],
])('filesystem store: the folder %s under load', (_case, breakFolder, repairFolder, whileBroken) => {
  let nest: INestApplication | undefined;
  afterEach(() => nest?.close());

  it('answers 503 within the budget on session routes only, writes nothing after a 503, and recovers', async () => {
    const cacheDir = join(folder(), 'sessions');
    // Room for a stall of this shared machine: once (a CI run) every client's request at one moment ran past a 500 ms
    // budget after the repair. The faults here fail or succeed at once; the budget's precision is tested elsewhere.
    const storeTimeout = 1500;
    const sessions = new FileSystemSessionInterface({ cacheDir, storeTimeout, cleanupInterval: 1 });
    nest = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k' })], controllers: [FaultController] });
    await nest.listen(0, '127.0.0.1');
    const url = await nest.getUrl();
    const clients = new Clients(20);
    const results: Array<Reply & { key?: string; phase: string }> = [];
    let phase = 'before';
    let stop = false;
    const client = async (c: number) => {
      let cookie = '';
      for (let i = 0; !stop; i++) {
        const key = `c${c}i${i}`;
        const started = phase;
        const reply = await clients.get(url, `/put?key=${key}`, cookie);
        results.push({ ...reply, key, phase: started === phase ? phase : 'changing' });
        if (reply.cookie && reply.status === 200) cookie = reply.cookie;
        if (i % 5 === 0) results.push({ ...(await clients.get(url, '/none')), phase });
      }
    };
    const running = Array.from({ length: 20 }, (_, c) => client(c));
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      breakFolder(cacheDir);
      phase = 'broken';
      await new Promise((resolve) => setTimeout(resolve, 700));
      repairFolder(cacheDir);
      phase = 'repaired';
      await new Promise((resolve) => setTimeout(resolve, 300));
      phase = 'after';
      await new Promise((resolve) => setTimeout(resolve, 700));
    } finally {
      stop = true;
      await Promise.all(running);
      clients.close();
    }

    const puts = results.filter((r) => r.key);
    expect(puts.filter((r) => r.status !== 200 && r.status !== 503)).toEqual([]);
    expect(puts.filter((r) => r.ms > storeTimeout + 1500)).toEqual([]);
    expect(results.filter((r) => !r.key && r.status !== 200)).toEqual([]); // /none never touches the store
    expect(puts.filter((r) => r.phase === 'before' && r.status !== 200)).toEqual([]);
    expect(puts.filter((r) => r.phase === 'after' && r.status !== 200)).toEqual([]);
    expect(puts.filter((r) => r.phase === 'after').length).toBeGreaterThan(20);
    const broken = puts.filter((r) => r.phase === 'broken');
    if (whileBroken === 'refused') expect(broken.filter((r) => r.status === 200)).toEqual([]);
    expect(broken.filter((r) => r.status === (whileBroken === 'refused' ? 503 : 200)).length).toBeGreaterThan(10);
    // Nothing the client was told failed is in any session file now.
    const serializer = new StoreSerializer('msgpack');
    const stored = new Set(
      sessionFiles(cacheDir).flatMap((name) => Object.keys(serializer.loads(readFileSync(join(cacheDir, name)).subarray(4)))),
    );
    const refused = puts.filter((r) => r.status === 503).map((r) => r.key!);
    expect(refused.filter((key) => stored.has(key))).toEqual([]);
    // The requests told 200 after the repair are all there.
    const kept = puts.filter((r) => r.phase === 'after' && r.status === 200).map((r) => r.key!);
    expect(kept.filter((key) => !stored.has(key))).toEqual([]);
  });
});
