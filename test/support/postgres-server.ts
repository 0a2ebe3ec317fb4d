import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './loopback-servers.js';
import { ManagedServer, fromTemplate, settlesWithin, type ServerCommand } from './managed-server.js';

const DEBIAN_PACKAGE = 'postgresql';

/**
 * Debian's PostgreSQL binaries (/usr/lib/postgresql/<major>/bin, the newest
 * major installed), not whatever pg_ctl comes first on the PATH.
 */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, 'bin', 'postgres'))) : [];
  if (majors.length === 0) throw new Error(`These tests need PostgreSQL: run "sudo apt-get install ${DEBIAN_PACKAGE}".`);
  return join(root, majors.sort((a, b) => Number(b) - Number(a))[0]!, 'bin');
}

/**
 * A PostgreSQL server of the test's own (Debian's `postgresql` package) on
 * 127.0.0.1 and a free port: a cluster copied from a template made once with
 * initdb, fsync off, a login role with a password and a database it owns.
 * As root it runs as the `postgres` user, which PostgreSQL requires.
 *
 * Connect with {@link poolConfig} (`pg`), {@link url} (`pg`, psycopg2, psql)
 * or {@link sqlalchemyUrl}; {@link adminConfig} is the superuser over the Unix
 * socket.
 */
export class PostgresServer extends ManagedServer {
  protected readonly name = 'PostgreSQL';
  protected readonly debianPackage = DEBIAN_PACKAGE;
  readonly user = 'nest';
  readonly password = randomBytes(12).toString('hex');
  readonly database = 'nest_session';
  private readonly bin = postgresBinDir();

  /** Starts a new server; its data goes when {@link close} is called. */
  static async start(): Promise<PostgresServer> {
    return ManagedServer.started(new PostgresServer(await freePort()));
  }

  private constructor(port: number) {
    super(port);
  }

  /** `postgres://user:password@127.0.0.1:port/database`, for `pg` (connectionString), psycopg2 and psql. */
  get url(): string {
    return `postgres://${this.user}:${this.password}@${this.host}:${this.port}/${this.database}`;
  }

  /** The same for SQLAlchemy (psycopg2 driver). */
  get sqlalchemyUrl(): string {
    return `postgresql+psycopg2://${this.user}:${this.password}@${this.host}:${this.port}/${this.database}`;
  }

  /** Options for `new pg.Pool(…)` / `new pg.Client(…)`: TCP with the role's password. */
  get poolConfig(): pg.PoolConfig {
    return { host: this.host, port: this.port, user: this.user, password: this.password, database: this.database };
  }

  /** The `postgres` superuser over the Unix socket in {@link dir} (trust), for what the role may not do. */
  get adminConfig(): pg.ClientConfig {
    return { host: this.dir, port: this.port, user: 'postgres', database: this.database };
  }

  protected async initialise(): Promise<void> {
    const version = spawnSync(join(this.bin, 'postgres'), ['--version'], { encoding: 'utf8' }).stdout.trim();
    const key = `postgres-${version.replace(/[^\w.]+/g, '_')}`;
    this.giveTo('postgres', this.dir);
    await fromTemplate(key, this.dir, async (scratch) => {
      this.giveTo('postgres', scratch);
      // Local (socket) connections trust the OS user; TCP ones need a password, as in production.
      const args = ['-D', join(scratch, 'data'), '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'];
      await this.tool(join(this.bin, 'initdb'), args, 'postgres');
    });
  }

  protected command(): ServerCommand {
    return {
      command: join(this.bin, 'postgres'),
      runAsUser: 'postgres',
      args: [
        '-D', join(this.dir, 'data'),
        '-p', String(this.port),
        '-c', `listen_addresses=${this.host}`,
        '-c', `unix_socket_directories=${this.dir}`,
        // No fsync: the OS keeps what PostgreSQL wrote across a stop (a process crash),
        // all a test needs. synchronous_commit stays on, so a committed row is in the WAL.
        '-c', 'fsync=off',
        '-c', 'full_page_writes=off',
      ],
    };
  }

  /**
   * SIGQUIT to the postmaster, as `pg_ctl stop -m immediate` sends: every
   * backend ends at once, without a checkpoint (a restart runs crash
   * recovery), and the postmaster ends them itself, so no orphaned backend
   * lingers until PID 1 reaps it.
   */
  protected override async halt(exit: Promise<void>): Promise<void> {
    process.kill(this.pid!, 'SIGQUIT');
    if (this.paused) this.signal('SIGCONT');
    if (!(await settlesWithin(exit, 10_000))) await super.halt(exit);
  }

  protected async ready(): Promise<boolean> {
    // Over the socket as the superuser: the role may not exist yet on the first start.
    const client = new pg.Client({ ...this.adminConfig, database: 'postgres', connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  protected override async provision(): Promise<void> {
    const client = new pg.Client({ ...this.adminConfig, database: 'postgres' });
    await client.connect();
    try {
      await client.query(`CREATE ROLE ${this.user} LOGIN PASSWORD '${this.password}'`);
      // FILE_COPY (PostgreSQL 15+): with fsync off, a plain copy of template1 beats WAL-logging each block.
      const { rows } = await client.query<{ server_version_num: string }>('SHOW server_version_num');
      const strategy = Number(rows[0]!.server_version_num) >= 150000 ? ' STRATEGY FILE_COPY' : '';
      await client.query(`CREATE DATABASE ${this.database} OWNER ${this.user}${strategy}`);
    } finally {
      await client.end();
    }
  }
}
