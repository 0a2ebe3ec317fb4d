import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A free TCP port on the loopback address. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * A real server of the test's own, on 127.0.0.1 and a free port, started and
 * stopped by the test (and stopped and resumed on the same port, to test an
 * outage). A missing binary fails with the package to install.
 */
export abstract class LoopbackServer {
  protected abstract readonly command: string;
  protected abstract readonly debianPackage: string;
  protected abstract args(): string[];
  private child?: ChildProcess;
  protected readonly dir = mkdtempSync(join(tmpdir(), 'nest-session-server-'));

  constructor(readonly port: number) {}

  /** The server's process id while it runs (for a test that signals it). */
  get pid(): number | undefined {
    const child = this.child;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  async resume(): Promise<void> {
    if (spawnSync(this.command, ['--version']).error) {
      throw new Error(`These tests need ${this.command}: run "sudo apt-get install ${this.debianPackage}".`);
    }
    const child = spawn(this.command, this.args(), { stdio: 'ignore' });
    this.child = child;
    let exited = false;
    child.once('exit', () => (exited = true));
    for (let attempt = 0; attempt < 200; attempt++) {
      if (exited) throw new Error(`${this.command} exited at start (port ${this.port})`);
      if (await accepts(this.port)) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`${this.command} did not accept connections on port ${this.port}`);
  }

  /**
   * Sends `signal` to the server process: SIGSTOP pauses it (connections stay
   * open, nothing is answered; resolves once every thread has stopped, as
   * until then a thread could still answer), SIGCONT resumes it.
   */
  async signal(signal: NodeJS.Signals): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) throw new Error(`${this.command} is not running`);
    process.kill(pid, signal);
    if (signal !== 'SIGSTOP') return;
    for (let attempt = 0; attempt < 2000; attempt++) {
      if (allThreadsStopped(pid)) return;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    throw new Error(`${this.command} (pid ${pid}) did not stop after SIGSTOP`);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class RedisServer extends LoopbackServer {
  protected readonly command = 'redis-server';
  protected readonly debianPackage = 'redis-server';

  static async start(extraArgs: string[] = []): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), extraArgs);
    await server.resume();
    return server;
  }

  constructor(port: number, private readonly extraArgs: string[] = []) {
    super(port);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  protected args(): string[] {
    return ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, ...this.extraArgs];
  }
}

export class MemcachedServer extends LoopbackServer {
  protected readonly command = 'memcached';
  protected readonly debianPackage = 'memcached';
  private paused = false;

  /** `extraArgs`: more memcached options, e.g. `['-C']` (no CAS tokens). */
  static async start(extraArgs: string[] = []): Promise<MemcachedServer> {
    const server = new MemcachedServer(await freePort(), extraArgs);
    await server.resume();
    return server;
  }

  constructor(port: number, private readonly extraArgs: string[] = []) {
    super(port);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /**
   * Freezes the server (SIGSTOP): its connections stay open and the kernel
   * still queues what they receive, but nothing is answered. Resolves once
   * every thread has stopped: until then, a thread woken by a command could
   * still answer it.
   */
  async pause(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) throw new Error(`memcached on port ${this.port} is not running`);
    process.kill(pid, 'SIGSTOP');
    this.paused = true;
    for (let attempt = 0; attempt < 2000; attempt++) {
      if (allThreadsStopped(pid)) return;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    throw new Error(`memcached (pid ${pid}) did not stop after SIGSTOP`);
  }

  /** After {@link pause}: wakes the server (SIGCONT), which then answers what was queued. Otherwise starts it again, as before. */
  override async resume(): Promise<void> {
    const pid = this.pid;
    if (this.paused && pid !== undefined) {
      this.paused = false;
      process.kill(pid, 'SIGCONT');
      return;
    }
    this.paused = false;
    await super.resume();
  }

  override async stop(): Promise<void> {
    this.paused = false;
    await super.stop();
  }

  protected args(): string[] {
    return ['-l', '127.0.0.1', '-p', String(this.port), '-U', '0', '-u', 'nobody', '-m', '16', ...this.extraArgs];
  }
}

/** Whether every thread of `pid` is stopped (state T in /proc/<pid>/task/<tid>/stat). */
function allThreadsStopped(pid: number): boolean {
  return readdirSync(`/proc/${pid}/task`).every((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    // The state follows the command name, which is in parentheses and may contain spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
  });
}
