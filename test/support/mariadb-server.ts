import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createConnection, type ConnectionOptions } from 'mysql2/promise';
import { freePort } from './loopback-servers.js';
import { ManagedServer, fromTemplate, runningAsRoot, type ServerCommand } from './managed-server.js';

const SERVER = '/usr/sbin/mariadbd';
const INSTALL_DB = '/usr/bin/mariadb-install-db';

/**
 * Server options shared by mariadb-install-db and mariadbd (InnoDB's redo log
 * size must agree). Small buffers, and no fsync at commit: several test
 * servers run side by side on two cores. Commits still reach the OS at once
 * (flush-log-at-trx-commit 2, not 0), so a committed row survives a
 * {@link ManagedServer.stop}, which kills the process, as a crash would.
 * Native AIO off: parallel servers can exhaust the kernel's aio-max-nr.
 * utf8mb4 as Debian's own configuration sets it.
 */
const INNODB = [
  '--innodb-buffer-pool-size=32M',
  '--innodb-log-file-size=16M',
  '--innodb-flush-log-at-trx-commit=2',
  '--innodb-doublewrite=0',
  '--innodb-use-native-aio=0',
  // The 12 MiB temporary tablespace is written out in full at every start otherwise.
  '--innodb-temp-data-file-path=ibtmp1:1M:autoextend',
  '--skip-log-bin',
  '--skip-name-resolve',
  '--character-set-server=utf8mb4',
  '--collation-server=utf8mb4_general_ci',
];

/**
 * A MariaDB server of the test's own (Debian's `mariadb-server` package) on
 * 127.0.0.1 and a free port: a data folder copied from a template made once
 * with mariadb-install-db, grant tables on, and a user with a password and a
 * database of its own, reached over TCP as an application would. As root the
 * server runs as the `mysql` user (mariadbd's own `--user`).
 *
 * Connect with {@link connectionOptions} (`mysql2`) or {@link url};
 * {@link adminOptions} is MariaDB's root over the Unix socket.
 */
export class MariaDBServer extends ManagedServer {
  protected readonly name = 'MariaDB';
  protected readonly debianPackage = 'mariadb-server';
  readonly user = 'nest';
  readonly password = randomBytes(12).toString('hex');
  readonly database = 'nest_session';

  /** Starts a new server; its data goes when {@link close} is called. */
  static async start(): Promise<MariaDBServer> {
    return ManagedServer.started(new MariaDBServer(await freePort()));
  }

  private constructor(port: number) {
    super(port);
  }

  get socketPath(): string {
    return join(this.dir, 'mariadbd.sock');
  }

  /** `mysql://user:password@127.0.0.1:port/database` (mysql2's `uri`, TypeORM's `url`). */
  get url(): string {
    return `mysql://${this.user}:${this.password}@${this.host}:${this.port}/${this.database}`;
  }

  /** The same for SQLAlchemy with PyMySQL (Debian's python3-pymysql). */
  get sqlalchemyUrl(): string {
    return `mysql+pymysql://${this.user}:${this.password}@${this.host}:${this.port}/${this.database}`;
  }

  /** Options for mysql2's `createPool`/`createConnection` (callback or promise API): TCP with the user's password. */
  get connectionOptions(): ConnectionOptions {
    return { host: this.host, port: this.port, user: this.user, password: this.password, database: this.database };
  }

  /** MariaDB's root over the Unix socket (no password: the template is made with normal root authentication). */
  get adminOptions(): ConnectionOptions {
    return { socketPath: this.socketPath, user: 'root' };
  }

  protected async initialise(): Promise<void> {
    this.requireBinary(SERVER);
    const version = spawnSync(SERVER, ['--version'], { encoding: 'utf8' }).stdout.trim();
    const key = `mariadb-${version.replace(/[^\w.]+/g, '_')}`;
    this.giveTo('mysql', this.dir);
    await fromTemplate(key, this.dir, async (scratch) => {
      this.giveTo('mysql', scratch);
      await this.tool(INSTALL_DB, [
        '--no-defaults',
        `--datadir=${join(scratch, 'data')}`,
        // Root logs in with an empty password (over the socket only: the tests' user is made below).
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        ...(runningAsRoot ? ['--user=mysql'] : []),
        ...INNODB,
      ]);
    });
  }

  protected command(): ServerCommand {
    return {
      command: SERVER,
      args: [
        '--no-defaults',
        `--datadir=${join(this.dir, 'data')}`,
        `--port=${this.port}`,
        `--bind-address=${this.host}`,
        `--socket=${this.socketPath}`,
        `--pid-file=${join(this.dir, 'mariadbd.pid')}`,
        `--tmpdir=${this.dir}`,
        // mariadbd drops root itself; refusing to run as root otherwise.
        ...(runningAsRoot ? ['--user=mysql'] : []),
        ...INNODB,
      ],
    };
  }

  protected async ready(): Promise<boolean> {
    const connection = await createConnection({ ...this.adminOptions, connectTimeout: 2000 });
    try {
      await connection.query('SELECT 1');
      return true;
    } finally {
      connection.destroy();
    }
  }

  protected override async provision(): Promise<void> {
    const connection = await createConnection(this.adminOptions);
    try {
      await connection.query(`CREATE DATABASE ${this.database}`);
      await connection.query(`CREATE USER '${this.user}'@'%' IDENTIFIED BY '${this.password}'`);
      await connection.query(`GRANT ALL PRIVILEGES ON ${this.database}.* TO '${this.user}'@'%'`);
    } finally {
      await connection.end();
    }
  }
}
