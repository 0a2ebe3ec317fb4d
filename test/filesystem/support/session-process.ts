/**
 * Runs the child app (session-app.ts, compiled by build-child.ts) as a real
 * process on a free loopback port, and talks HTTP to it (and to in-process
 * apps) with keep-alive connections, as concurrent clients would.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import type { FileSystemSessionOptions } from '../../../lib/filesystem/index.js';

export interface SessionProcess {
  readonly url: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** What the process wrote to stderr (Nest's errors and warnings). */
  readonly errors: () => string;
  stop(): Promise<void>;
}

/**
 * Starts the app. With `openFiles`, its limit of open files (`ulimit -n`) is
 * lowered to that once it listens: Node's module loader alone needs more than
 * 100 while it starts.
 */
export async function startSessionProcess(app: string, options: FileSystemSessionOptions, openFiles?: number): Promise<SessionProcess> {
  const child = spawn(process.execPath, [app, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const port = await new Promise<number>((resolve, reject) => {
    let stdout = '';
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
      const match = /LISTENING (\d+)/.exec(stdout);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code, signal) => reject(new Error(`the session app exited (${code ?? signal}) before listening: ${stderr}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (openFiles) {
    try {
      execFileSync('prlimit', ['--pid', String(child.pid), `--nofile=${openFiles}:${openFiles}`], { stdio: 'pipe' });
    } catch (error) {
      child.kill('SIGKILL');
      throw new Error(`prlimit could not lower the open-files limit of the test app (install util-linux): ${(error as Error).message}`);
    }
  }
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    child,
    errors: () => stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
      await exited;
    },
  };
}

export interface Reply {
  readonly status: number;
  readonly body: string;
  /** `session=<value>` from Set-Cookie, if one was set. */
  readonly cookie?: string;
  /** Milliseconds from sending the request to the end of the answer. */
  readonly ms: number;
}

/** HTTP clients with up to `sockets` keep-alive connections per server: concurrent clients. */
export class Clients {
  private readonly agent: Agent;

  constructor(sockets = 64) {
    this.agent = new Agent({ keepAlive: true, maxSockets: sockets });
  }

  get(base: string, path: string, cookie?: string, timeoutMs = 20_000): Promise<Reply> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const req = request(`${base}${path}`, { agent: this.agent, headers: cookie ? { cookie } : {}, timeout: timeoutMs }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => {
          const set = (res.headers['set-cookie'] ?? []).find((header) => header.startsWith('session='));
          resolve({ status: res.statusCode!, body, cookie: set?.split(';')[0], ms: Date.now() - started });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer to ${path} within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
