import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Markup } from '../../lib/index.js';

const PEERS = {
  flask: fileURLToPath(new URL('../compat/flask_peer.py', import.meta.url)),
  'flask-session': fileURLToPath(new URL('../compat/flask_session_peer.py', import.meta.url)),
};
/** Debian's interpreter: python3-flask installs for it, not for other pythons on the PATH. */
const PYTHON = process.env.FLASK_PYTHON ?? '/usr/bin/python3';

/** Runs one command against a real Flask app (test/compat/flask_peer.py). */
export function flask<T>(command: Record<string, unknown>): T {
  return python<T>('flask', command);
}

/** Runs one command against Flask-Session's record layout in Redis (test/compat/flask_session_peer.py). */
export function flaskSession<T>(command: Record<string, unknown>): T {
  return python<T>('flask-session', command);
}

function python<T>(peer: keyof typeof PEERS, command: Record<string, unknown>): T {
  const run = spawnSync(PYTHON, [PEERS[peer]], { input: JSON.stringify(command), encoding: 'utf8', timeout: 20_000 });
  if (run.error || run.status !== 0) {
    const reason = run.error?.message ?? run.stderr;
    if (/No module named '?(flask|markupsafe|itsdangerous|redis|msgpack)/.test(reason) || (run.error as NodeJS.ErrnoException)?.code === 'ENOENT') {
      throw new Error(
        `The Flask compatibility tests need Debian's Python packages: run ` +
          `"sudo apt-get install python3-flask python3-redis python3-msgpack" ` +
          `(or set FLASK_PYTHON to a python3 that has them). ${reason}`,
      );
    }
    throw new Error(`The Flask peer failed: ${reason}`);
  }
  return JSON.parse(run.stdout) as T;
}

/** A session value written with the same $-markers flask_peer.py uses for Python types. */
export function describeValue(value: unknown): unknown {
  if (value instanceof Markup) return { $markup: value.html };
  if (Buffer.isBuffer(value)) return { $bytes: value.toString('base64') };
  if (value instanceof Date) return { $date: value.toISOString().replace('.000Z', 'Z') };
  if (Array.isArray(value)) return value.map(describeValue);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describeValue(v)]));
  }
  return value;
}
