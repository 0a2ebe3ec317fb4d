/** Plants session locks as another process would hold them (see lib/filesystem/session-file-lock.ts). */
import { spawn, type ChildProcess } from 'node:child_process';
import { readlinkSync, symlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/** This machine as the store names it: the host name and, on Linux, the PID namespace. */
function machine(): string {
  try {
    return `${hostname()} ${readlinkSync('/proc/self/ns/pid')}`;
  } catch {
    return hostname();
  }
}

/** A lock at `path` held by process `pid` of this machine until `deadline` (ms since the epoch). */
export function plantLock(path: string, pid: number, deadline: number): void {
  symlinkSync(`${pid} ${deadline} planted-token ${machine()}`, path);
}

/** A process that runs until killed: a holder that is alive. */
export function aliveProcess(): ChildProcess {
  return spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
}

/** The pid of a process that has exited: a holder that died. */
export async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}
