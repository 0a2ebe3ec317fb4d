import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './loopback-servers.js';

const run = promisify(execFile);

/** True when the tests run as root: database servers then run as their Debian service user. */
export const runningAsRoot = process.getuid?.() === 0;

/**
 * Servers not closed yet, killed and removed when the test file ends even if
 * a failed test skipped its own close(). Under Jest that is an afterAll hook
 * of the importing file: Jest's sandboxed `process` never emits 'exit'. Outside
 * Jest (a bench script), the process's exit.
 */
const unclosed = new Set<ManagedServer>();
const killUnclosed = () => {
  for (const server of unclosed) server.killNow();
  unclosed.clear();
};
if (typeof afterAll === 'function') afterAll(killUnclosed);
else process.once('exit', killUnclosed);

/** What a subclass runs: the server binary, its arguments, and the Debian service user to run it as when root. */
export interface ServerCommand {
  command: string;
  args: string[];
  /**
   * As root, run as this user (PostgreSQL refuses to run as root). Node sets
   * the uid and gid itself rather than through runuser: a wrapper process
   * would be what the test holds, and runuser, seeing its child stopped by
   * {@link ManagedServer.pause}, stops itself again after a resume and then
   * never reaps the server.
   */
  runAsUser?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * A real database server of the test's own, on 127.0.0.1 and a free port,
 * with its data in a temporary folder. Besides start and close it can be
 * paused (SIGSTOP: connections stay open, queries hang), resumed (SIGCONT),
 * and stopped at once as a crash would (the data kept), then started again on
 * the same port, so later tests can inject faults.
 *
 * Signals go to the whole process tree (the server and every process it
 * forks, found through /proc): PostgreSQL's backends each call setsid(), so a
 * process group would miss them.
 */
export abstract class ManagedServer {
  /** Milliseconds each start took, until the server answered a real request: the first start, then each restart. */
  readonly startTimes: number[] = [];
  /** The temporary folder holding the data, the sockets and the server's log. */
  readonly dir = mkdtempSync(join(tmpdir(), 'nest-session-db-'));
  readonly host = '127.0.0.1';
  private child?: ChildProcess;
  private exit?: Promise<void>;
  private isPaused = false;
  private initialised = false;

  protected constructor(public port: number) {
    unclosed.add(this);
  }

  /** Starts a new server for a subclass's static start(), removing its folder if it cannot start. */
  protected static async started<T extends ManagedServer>(server: T): Promise<T> {
    try {
      await server.start();
      return server;
    } catch (error) {
      await server.close();
      throw error;
    }
  }

  /** The server's name in messages. */
  protected abstract readonly name: string;
  /** The Debian package that provides the binaries, named when one is missing. */
  protected abstract readonly debianPackage: string;
  /** Creates the data folder (runs once, before the first start). */
  protected abstract initialise(): Promise<void>;
  protected abstract command(): ServerCommand;
  /** Resolves true once the server answers a real request; false (or a throw) while it is still starting. */
  protected abstract ready(): Promise<boolean>;
  /** Runs once after the first start (accounts, databases). */
  protected async provision(): Promise<void> {}

  /** The server's output so far (its own log), for error messages. */
  get log(): string {
    try {
      return readFileSync(join(this.dir, 'server.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** The server's pid, while running. */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    const child = this.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /**
   * Starts the server on {@link port}, on a first call after creating its
   * data; later calls start it again on the same port with the same data. On
   * the first start only, a port another process took meanwhile is replaced by
   * a new free one.
   */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running on port ${this.port}`);
    const began = performance.now();
    if (!this.initialised) {
      await this.initialise();
      this.initialised = true;
      for (let attempt = 1; ; attempt++) {
        try {
          await this.launch();
          break;
        } catch (error) {
          if (attempt === 3 || !/address already in use/i.test(this.log)) throw error;
          this.port = await freePort();
        }
      }
      await this.provision();
    } else {
      await this.launch();
    }
    this.startTimes.push(Math.round(performance.now() - began));
  }

  /** Stops every process of the server (SIGSTOP): open connections stay, requests hang until {@link resume}. */
  pause(): void {
    this.signal('SIGSTOP');
    this.isPaused = true;
  }

  /** Lets a paused server go on (SIGCONT). */
  resume(): void {
    this.signal('SIGCONT');
    this.isPaused = false;
  }

  /**
   * Ends the server at once, as a crash would (open connections are reset,
   * nothing is flushed), keeping its data for {@link start}; a paused server too.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    const exit = this.exit!;
    await this.halt(exit);
    this.isPaused = false;
  }

  /** Whether {@link pause} stopped the server (and {@link resume} has not let it go on). */
  get paused(): boolean {
    return this.isPaused;
  }

  /** Ends the running server and resolves once `exit` (the spawned process's end) has. SIGKILL to the tree here. */
  protected async halt(exit: Promise<void>): Promise<void> {
    this.signal('SIGKILL');
    await exit;
  }

  /** Stops the server and removes its data. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
    unclosed.delete(this);
  }

  /** @internal The synchronous last resort of {@link unclosed}. */
  killNow(): void {
    if (this.running) signalTree(this.child!.pid!, 'SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** As root, hands a path to the service user the server runs as. */
  protected giveTo(user: string, path: string): void {
    if (!runningAsRoot) return;
    const { uid, gid } = this.ids(user);
    chownSync(path, uid, gid);
  }

  /** spawn()'s uid and gid: the service user's when root, none (this process's own) otherwise. */
  protected account(user: string | undefined): { uid?: number; gid?: number } {
    return runningAsRoot && user !== undefined ? this.ids(user) : {};
  }

  private ids(user: string): { uid: number; gid: number } {
    const uid = spawnSync('id', ['-u', user], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', user], { encoding: 'utf8' });
    if (uid.status !== 0 || gid.status !== 0) {
      throw new Error(`${this.name} runs as the "${user}" user when the tests run as root; it is missing: run "sudo apt-get install ${this.debianPackage}".`);
    }
    return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
  }

  /** Runs a one-off tool (initdb, mariadb-install-db), as the service user when root; fails with its output. */
  protected async tool(command: string, args: string[], runAsUser?: string): Promise<void> {
    this.requireBinary(command);
    try {
      await run(command, args, { cwd: this.dir, maxBuffer: 16 * 1024 * 1024, ...this.account(runAsUser) });
    } catch (error) {
      const { stdout, stderr } = error as { stdout?: string; stderr?: string };
      throw new Error(`${command} failed: ${(error as Error).message}\n${stdout ?? ''}${stderr ?? ''}`);
    }
  }

  protected requireBinary(path: string): void {
    if (path.startsWith('/') ? !existsSync(path) : spawnSync('which', [path]).status !== 0) {
      throw new Error(`These tests need ${path}: run "sudo apt-get install ${this.debianPackage}".`);
    }
  }

  private async launch(): Promise<void> {
    const { command, args, runAsUser, env } = this.command();
    this.requireBinary(command);
    const logFd = openSync(join(this.dir, 'server.log'), 'a');
    // Not detached: a Ctrl-C in the terminal reaches the servers with the test run.
    const child = spawn(command, args, { stdio: ['ignore', logFd, logFd], env: env ?? process.env, ...this.account(runAsUser) });
    closeSync(logFd);
    // A server a failed test left running must not hold the run open (see unclosed).
    child.unref();
    this.child = child;
    this.exit = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (!this.running) {
        throw new Error(`${this.name} exited at start (port ${this.port}):\n${this.log.slice(-2000)}`);
      }
      if (await this.ready().catch(() => false)) return;
      await sleep(25);
    }
    await this.stop();
    throw new Error(`${this.name} did not answer on port ${this.port} within 60 s:\n${this.log.slice(-2000)}`);
  }

  /** Sends a signal to the spawned process and all its descendants. */
  protected signal(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (!this.running || pid === undefined) throw new Error(`${this.name} is not running`);
    signalTree(pid, signal);
  }
}

/**
 * Signals a process and its descendants, walking /proc again after each
 * round: a parent stopped in one round forks no child the next round misses.
 */
function signalTree(root: number, signal: NodeJS.Signals): void {
  const signalled = new Set<number>();
  let batch = [root];
  while (batch.length > 0) {
    for (const pid of batch) {
      signalled.add(pid);
      try {
        process.kill(pid, signal);
      } catch {
        // exited meanwhile
      }
    }
    batch = descendants(root).filter((pid) => !signalled.has(pid));
  }
}

/** Every live descendant of a process, parents before children. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  for (let queue = children.get(root) ?? []; queue.length > 0; ) {
    found.push(...queue);
    queue = queue.flatMap((pid) => children.get(pid) ?? []);
  }
  return found;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether `promise` settles within `ms` (its timer cleared either way, so it holds no test run open). */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A data folder built once per machine and user (initdb and
 * mariadb-install-db take a second or two) and copied for each server. Workers
 * racing to build it each build their own; the first rename wins.
 */
export async function fromTemplate(key: string, target: string, build: (dir: string) => Promise<void>): Promise<void> {
  const root = join(tmpdir(), `nest-session-db-templates-${process.getuid?.() ?? 'user'}`);
  mkdirSync(root, { recursive: true, mode: 0o755 });
  const template = join(root, key);
  if (!existsSync(join(template, '.complete'))) {
    const scratch = mkdtempSync(join(root, `${key}.building-`));
    try {
      await build(scratch);
      writeFileSync(join(scratch, '.complete'), '');
      renameSync(scratch, template);
    } catch (error) {
      rmSync(scratch, { recursive: true, force: true });
      // Another worker finished first: use its template.
      if (!existsSync(join(template, '.complete'))) throw error;
    }
  }
  // cp -a keeps the owner (the service user when root) and the modes the servers insist on.
  await run('cp', ['-a', `${template}/.`, target]);
  rmSync(join(target, '.complete'), { force: true });
}
