/**
 * Expiry is naive UTC whatever this process's time zone: time-zone.check.ts
 * runs in a Jest of its own with TZ=Pacific/Chatham (UTC+12:45, +13:45 in
 * summer), since a Jest worker cannot change the time zone it runs in.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('sessions keep expiry in naive UTC on PostgreSQL, MariaDB and SQLite with the Node process in Pacific/Chatham time', async () => {
  const jest = ['--experimental-vm-modules', '--no-warnings=ExperimentalWarning', 'node_modules/jest/bin/jest.js'];
  const args = [...jest, '--ci', '--testMatch', '**/test/sql/time-zone.check.ts', '--reporters', 'default'];
  const outcome = await new Promise<{ code: number | null; output: string }>((resolve) => {
    execFile(process.execPath, args, { cwd: root, env: { ...process.env, TZ: 'Pacific/Chatham' }, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}` }),
    );
  });
  expect(outcome.output).toMatch(/Tests:\s+4 passed, 4 total/);
  expect(outcome.code).toBe(0);
}, 300_000);
