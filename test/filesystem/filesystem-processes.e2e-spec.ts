/**
 * Several Node processes sharing one session folder, as cluster workers or
 * several instances on one host do: each is the real app (support/session-app.ts)
 * in its own process, so only the lock files keep them apart.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FileSystemSessionOptions } from '../../lib/filesystem/index.js';
import { buildChildApp, type ChildBuild } from './support/build-child.js';
import { Clients, startSessionProcess, type Reply, type SessionProcess } from './support/session-process.js';

let build: ChildBuild;
let clients: Clients;
const running: SessionProcess[] = [];
const folders: string[] = [];

beforeAll(async () => {
  build = await buildChildApp();
  clients = new Clients(128);
}, 60_000);
afterEach(async () => {
  await Promise.all(running.splice(0).map((app) => app.stop()));
});
afterAll(() => {
  clients?.close();
  build?.remove();
  folders.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
});

async function twoProcesses(a: Partial<FileSystemSessionOptions> = {}, b: Partial<FileSystemSessionOptions> = {}) {
  const cacheDir = mkdtempSync(join(tmpdir(), 'nest-session-fs-processes-'));
  folders.push(cacheDir);
  const apps = await Promise.all([
    startSessionProcess(build.app, { cacheDir, storeTimeout: 10_000, ...a }),
    startSessionProcess(build.app, { cacheDir, storeTimeout: 10_000, ...b }),
  ]);
  running.push(...apps);
  expect(apps[0].pid).not.toBe(apps[1].pid);
  return { cacheDir, a: apps[0], b: apps[1] };
}

const fileOf = (cacheDir: string, cookie: string) => join(cacheDir, createHash('sha256').update(`session:${cookie.split('=')[1]}`).digest('hex'));
const put = (app: SessionProcess, cookie: string, key: string) => clients.get(app.url, `/put?key=${key}&value=${key}`, cookie);
const all = async (app: SessionProcess, cookie: string) => JSON.parse((await clients.get(app.url, '/all', cookie)).body) as Record<string, unknown>;

/** Sends `count` requests at once; calls `onFirst` when the first answer arrives. */
function burst(count: number, send: (i: number) => Promise<Reply>, onFirst?: () => void): Promise<Reply[]> {
  let first = true;
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      send(i).then((reply) => {
        if (first) onFirst?.();
        first = false;
        return reply;
      }),
    ),
  );
}

describe('filesystem store shared by several processes', () => {
  it('loses no update when requests in two processes change different keys of one session', async () => {
    const { a, b } = await twoProcesses();
    const created = await put(a, '', 'first');
    const cookie = created.cookie!;
    for (let round = 0; round < 3; round++) {
      const replies = await burst(64, (i) => put(i % 2 ? b : a, cookie, `r${round}k${i}`));
      expect(replies.map((reply) => reply.status)).toEqual(Array(64).fill(200));
      expect(new Set(replies.map((reply) => JSON.parse(reply.body).pid)).size).toBe(2);
    }
    const data = await all(b, cookie);
    const missing = [0, 1, 2].flatMap((round) => Array.from({ length: 64 }, (_, i) => `r${round}k${i}`)).filter((key) => data[key] !== key);
    expect(missing).toEqual([]);
    expect(data.first).toBe('first');
  });

  it('a logout in one process is never undone by a write in the other', async () => {
    const { cacheDir, a, b } = await twoProcesses();
    for (let round = 0; round < 8; round++) {
      const cookie = (await put(a, '', 'loggedIn')).cookie!;
      const [logout, late] = await Promise.all([clients.get(a.url, '/clear', cookie), put(b, cookie, 'late')]);
      expect([logout.status, late.status]).toEqual([200, 200]);
      expect(existsSync(fileOf(cacheDir, cookie))).toBe(false);
      expect(await all(a, cookie)).not.toHaveProperty('late');
    }
  });

  it('a process paused mid-write commits nothing after its deadline, and the other takes its lock over', async () => {
    // A answers within 400 ms or not at all; B's budget outlasts A's lock (A's deadline + 2 s).
    const { a, b } = await twoProcesses({ storeTimeout: 400 }, { storeTimeout: 6000 });
    const cookie = (await put(b, '', 'first')).cookie!;
    const paused = burst(40, (i) => put(a, cookie, `a${i}`), () => a.child.kill('SIGSTOP'));
    // Until every request to A is answered, some wait in A's kernel socket buffer: B starts once A is paused.
    await new Promise<void>((resolve) => {
      const check = () => (a.child.signalCode === null && isStopped(a.pid) ? resolve() : setTimeout(check, 5));
      check();
    });
    const fromB = await burst(20, (i) => put(b, cookie, `b${i}`));
    expect(fromB.map((reply) => reply.status)).toEqual(Array(20).fill(200));
    await new Promise((resolve) => setTimeout(resolve, 500));
    a.child.kill('SIGCONT');
    const fromA = await paused;
    const data = await all(b, cookie);
    for (let i = 0; i < 20; i++) expect(data[`b${i}`]).toBe(`b${i}`);
    const outcome = fromA.map((reply, i) => ({ key: `a${i}`, status: reply.status, stored: data[`a${i}`] === `a${i}` }));
    // Stored if and only if the client was told so.
    expect(outcome.filter(({ status, stored }) => (status === 200) !== stored)).toEqual([]);
    expect(outcome.filter(({ status }) => status === 503).length).toBeGreaterThan(0);
    expect(outcome.filter(({ status }) => status !== 200 && status !== 503)).toEqual([]);
  });

  it('a process killed while it writes leaves locks that the other takes over at once', async () => {
    const { a, b } = await twoProcesses({ storeTimeout: 2000 }, { storeTimeout: 500 });
    const cookie = (await put(b, '', 'first')).cookie!;
    await burst(40, (i) => put(a, cookie, `a${i}`).catch(() => ({ status: 0, body: '', ms: 0 })), () => a.child.kill('SIGKILL'));
    // B's budget (500 ms) is shorter than the dead process's deadline + 2 s: only knowing that it died lets B through.
    const fromB = await burst(10, (i) => put(b, cookie, `b${i}`));
    expect(fromB.map((reply) => reply.status)).toEqual(Array(10).fill(200));
    const data = await all(b, cookie);
    for (let i = 0; i < 10; i++) expect(data[`b${i}`]).toBe(`b${i}`);
  });
});

/** Whether the process is stopped (state T in /proc/<pid>/stat). */
function isStopped(pid: number): boolean {
  return / T /.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\)/, ''));
}
