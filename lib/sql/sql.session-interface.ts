import { randomInt } from 'node:crypto';
import type { OnModuleInit } from '@nestjs/common';
import type { CookieReadableRequest } from '../http/platform-seam.js';
import type { SessionApp } from '../interfaces/session-module-options.interface.js';
import {
  ServerSideSessionInterface,
  type ServerSideSessionOptions,
  type StoreCall,
  type StoredRecord,
  type SwapOutcome,
} from '../server-side/server-side.session-interface.js';
import { SessionConfigurationError, SessionError, describeOptionValue as describe } from '../session.errors.js';
import type { SessionMixin } from '../sessions/session-mixin.js';
import { SessionWriteQueue, type BatchOutcome, type BatchWrite } from '../server-side/session-write-queue.js';
import { ServerClock } from '../server-side/server-clock.js';
import { NotSentError, UnsupportedClientError, connect, dialectOf, type AccessDenial, type SqlClient, type SqlConnection } from './sql-connection.js';
import {
  CLEANUP_BATCH,
  MysqlStatements,
  PostgresStatements,
  SqliteStatements,
  type Deadlines,
  type SessionStatements,
  type WriteReply,
} from './sql-statements.js';

/** @publicApi */
export interface SqlSessionOptions extends ServerSideSessionOptions {
  /**
   * The connection the application already has; the interface never opens
   * or closes connections of its own. Required (Flask-Session:
   * `SESSION_SQLALCHEMY`).
   * - a TypeORM `DataSource` of type `'postgres'`, `'mysql'`, `'mariadb'` or
   *   `'better-sqlite3'`, as `@nestjs/typeorm` injects it: its own pool is
   *   used (no entity, no migration);
   * - a `pg` Pool (`new pg.Pool(…)`); give it an `error` listener, as
   *   node-postgres asks (an idle connection that breaks is reported there);
   * - a `mysql2` pool, from `createPool` of `mysql2` (callback API) or of
   *   `mysql2/promise`;
   * - a `better-sqlite3` Database.
   *
   * A single connection (`pg.Client`, a mysql2 connection) is refused: a
   * query queued behind a stuck one would be sent after its request gave up.
   */
  client: SqlClient;
  /**
   * The table's name. Default `'sessions'` (`SESSION_SQLALCHEMY_TABLE`). Any
   * name is quoted; as SQLAlchemy quotes them too, the name is case-sensitive
   * where the database is.
   */
  table?: string;
  /**
   * The schema holding the table (PostgreSQL schema, MySQL database, SQLite
   * attached database). Default: none, the connection's default / search path
   * (`SESSION_SQLALCHEMY_SCHEMA`). It must exist.
   */
  schema?: string;
  /**
   * Create the table (Flask-Session's layout) and an index on `expiry` when
   * missing, on first use or at bootstrap. Default `true` (Flask-Session
   * always creates it). With `false` no DDL is ever run; a missing table, or
   * one without the four columns and the UNIQUE `session_id`, fails at
   * bootstrap, and a missing `expiry` index is logged as a warning.
   */
  createTable?: boolean;
  /**
   * Delete expired sessions (`deleteExpired()`) in the background on average
   * once every N + 1 requests that open a session (each does so with
   * probability 1/(N+1), as Flask-Session draws it); a failure is logged,
   * never the request's. Default: none, off; `0` is off too
   * (`SESSION_CLEANUP_N_REQUESTS`). A schedule is the better way on a busy
   * site: see {@link SqlSessionInterface.deleteExpired}.
   */
  cleanupNRequests?: number | null;
}

/** What setUp() was doing: logging in (its first statement), preparing the table, checking the statements' privileges. */
type SetUpStep = 'login' | 'table' | 'statements';

/** The names, as the options are spelled, for SessionConfigurationError. */
const OWN_OPTIONS = ['client', 'table', 'schema', 'createTable', 'cleanupNRequests'];
/** PostgreSQL cuts names at 63 bytes, MySQL refuses more than 64 characters: 63 fits both. */
const MAX_IDENTIFIER = 63;
/** Flask-Session's session_id column is varchar(255). */
const MAX_STORE_ID = 255;

/**
 * Sessions in an SQL table that Flask-Session's SQLAlchemy backend shares
 * (`SESSION_TYPE = "sqlalchemy"`): PostgreSQL, MySQL/MariaDB or SQLite, on the
 * connection the application already has.
 *
 * The table (default `sessions`) has Flask-Session's four columns:
 * `id` integer key, `session_id` varchar(255) unique (`keyPrefix + sid`),
 * `data` bytes (the msgpack or JSON of the session dict), `expiry` timestamp
 * without time zone, in UTC. It is created if missing, with an index on
 * `expiry` (see {@link SqlSessionOptions.createTable}).
 *
 * Per request: a session route reads with one SELECT (an expired row is never
 * returned: the expiry is compared in the statement); a change is one UPDATE
 * that applies only if the row still holds the bytes read (else the change is
 * merged into what is there now, and tried again), so concurrent requests
 * that change different keys keep both; an unchanged session has only its
 * `expiry` moved, at most once per `refreshAfter`; a route without the
 * session makes no statement. Changes to one session made in this process
 * while a write of it is running are written together by the next UPDATE
 * (see lib/server-side/session-write-queue.ts): many concurrent writers of one session cost
 * less than one statement each, not a storm of retries.
 *
 * Deliberately not one upsert per write (issue 9 asked for `INSERT … ON
 * CONFLICT` / `ON DUPLICATE KEY UPDATE` on every write): an upsert on an
 * existing row takes an id from PostgreSQL's sequence and MySQL's
 * AUTO_INCREMENT, and Flask-Session's 32-bit `id` would run out within months
 * on a busy site (100 writes a second: 250 days), after which no session could
 * be created. An existing row is only ever UPDATEd; only a new one is
 * INSERTed, by a statement atomic on its own (`ON CONFLICT` / `ON DUPLICATE
 * KEY UPDATE` against a concurrent insert; never a SELECT then an INSERT). A
 * replace (a new session, `clear()`) is one statement on PostgreSQL (a CTE
 * whose INSERT runs only when its UPDATE found no row) and SQLite (an upsert:
 * a rowid table keeps no counter), an UPDATE then an INSERT on MySQL.
 *
 * Honest failures: every write compares the server's clock with the
 * request's deadline in the statement and does nothing when it runs late (a
 * server paused past the budget runs what it received when it wakes): a
 * request answered 503 never has its write land. The offset between the
 * server's clock and this host's is measured from the statements' replies.
 * Nothing is sent for a request whose budget ran out while it waited for a
 * pooled connection. A refused connection fails the request at once, naming
 * the address.
 *
 * Expired rows stay until something deletes them: {@link deleteExpired} on a
 * schedule, or `cleanupNRequests`.
 *
 * @example
 * // With @nestjs/typeorm: built by Nest with the application's DataSource.
 * \@Injectable()
 * export class AppSessions extends SqlSessionInterface {
 *   constructor(dataSource: DataSource) {
 *     super({ client: dataSource });
 *   }
 * }
 * SessionModule.forRoot({ interface: AppSessions, imports: [TypeOrmModule.forRoot(options)], secretKey })
 *
 * @example
 * // With a pg Pool.
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * pool.on('error', (error) => logger.warn(`PostgreSQL: ${error.message}`));
 * SessionModule.forRoot({ interface: new SqlSessionInterface({ client: pool }), secretKey })
 *
 * @publicApi
 */
export class SqlSessionInterface extends ServerSideSessionInterface implements OnModuleInit {
  /** 'PostgreSQL', 'MySQL' or 'MariaDB' (once the server said which), 'SQLite'. */
  protected storeName: string;
  readonly client: SqlClient;
  readonly table: string;
  readonly schema: string | undefined;
  readonly createTable: boolean;
  readonly cleanupNRequests: number | undefined;
  private readonly connection: SqlConnection;
  private readonly statements: SessionStatements;
  /** Concurrent changes to one session from this process, written together (not SQLite, whose statements run within the call). */
  private readonly queue: SessionWriteQueue | undefined;
  /** The server's clock compared with ours, from the statements that read it. */
  private readonly serverClock = new ServerClock(50);
  /** How long before the request's deadline a write must have run, to be answered within it. */
  private readonly margin: number;
  private setup?: Promise<void>;
  private isSetUp = false;
  /** Bytes the data column holds, when it is small (a BLOB made by SQLAlchemy on MySQL). */
  private maxDataBytes: number | undefined;
  private cleanupRunning = false;

  constructor(options: SqlSessionOptions) {
    super(options, OWN_OPTIONS);
    const fail = SessionConfigurationError.thrower('SqlSessionInterface');
    const client = options.client as unknown;
    let dialect;
    try {
      dialect = dialectOf(client);
    } catch (error) {
      if (error instanceof UnsupportedClientError) fail('client', error.message);
      throw error;
    }
    this.client = client as SqlClient;
    this.table = identifier('table', options.table ?? 'sessions', fail);
    this.schema = options.schema === undefined || options.schema === null ? undefined : identifier('schema', options.schema, fail);
    const createTable = options.createTable ?? true;
    if (typeof createTable !== 'boolean') fail('createTable', `expected true or false, got ${describe(createTable)}.`);
    this.createTable = createTable;
    const cleanup = options.cleanupNRequests ?? 0;
    if (typeof cleanup !== 'number' || !Number.isInteger(cleanup) || cleanup < 0) {
      fail('cleanupNRequests', `expected a whole number of requests >= 0 (0 or none: off), got ${describe(options.cleanupNRequests)}.`);
    }
    this.cleanupNRequests = cleanup === 0 ? undefined : cleanup;
    const storeIdLength = this.keyPrefix.length + Math.ceil((this.sidLength * 4) / 3);
    if (storeIdLength > MAX_STORE_ID) {
      fail('sidLength', `keyPrefix (${this.keyPrefix.length} characters) + the sid (${storeIdLength - this.keyPrefix.length}) exceed the ${MAX_STORE_ID} characters of session_id.`);
    }
    this.margin = Math.min(100, Math.max(5, this.storeTimeout / 10));
    this.connection = connect(client as object);
    this.storeName = dialect === 'postgres' ? 'PostgreSQL' : dialect === 'mysql' ? 'MySQL' : 'SQLite';
    this.queue = dialect === 'sqlite' ? undefined : new SessionWriteQueue((storeId, batch) => this.writeBatch(storeId, batch), this.margin, () => this.lateError());
    const name = { table: this.table, schema: this.schema };
    const onClock = (serverNow: number, sentAt: number, receivedAt: number) => this.serverClock.sample(serverNow, sentAt, receivedAt);
    this.statements =
      dialect === 'postgres'
        ? new PostgresStatements(this.connection, name, onClock)
        : dialect === 'mysql'
          ? new MysqlStatements(this.connection, name, onClock)
          : new SqliteStatements(this.connection, name, onClock);
  }

  /**
   * Checks the server and the table, creating the table and its `expiry`
   * index if missing (unless `createTable` is false), and measures the
   * server's clock. Runs by itself before the first store call, and at
   * bootstrap when the interface is a Nest provider ({@link onModuleInit}).
   * Rejects with a `SessionConfigurationError` for a table that is missing
   * (with `createTable: false`) or is not Flask-Session's; on a connection
   * failure it rejects too, and the next call tries again.
   */
  ready(): Promise<void> {
    if (this.isSetUp) return Promise.resolve();
    this.setup ??= this.setUp().then(
      () => {
        this.isSetUp = true;
      },
      (error: unknown) => {
        this.setup = undefined;
        throw error;
      },
    );
    return this.setup;
  }

  /**
   * Nest calls this at bootstrap (when the interface is a provider, as
   * `SessionModule.forRoot` makes it): a table that is missing or wrong fails
   * the bootstrap; a database that cannot be reached, or does not answer
   * within 5 × `storeTimeout`, is only logged (session requests answer 503
   * until it does).
   */
  async onModuleInit(): Promise<void> {
    await this.checkAtBootstrap(this.connection.address, () => this.ready());
  }

  /**
   * Deletes the expired sessions (and rows without an expiry), in batches of
   * 1000 rows per statement so that no statement holds locks for long;
   * resolves with how many rows went. Flask-Session's `flask
   * session_cleanup`. Uses the `expiry` index. Not bounded by `storeTimeout`.
   *
   * @example
   * // Every hour, with @nestjs/schedule (ScheduleModule.forRoot() imported once):
   * \@Injectable()
   * export class SessionCleanup {
   *   private readonly logger = new Logger(SessionCleanup.name);
   *   constructor(private readonly sessions: SessionInterface) {}
   *
   *   \@Cron(CronExpression.EVERY_HOUR)
   *   async deleteExpiredSessions() {
   *     const deleted = await (this.sessions as SqlSessionInterface).deleteExpired();
   *     this.logger.log(`Deleted ${deleted} expired sessions`);
   *   }
   * }
   */
  async deleteExpired(): Promise<number> {
    await this.ready();
    let deleted = 0;
    for (;;) {
      const batch = await this.statements.deleteExpiredBatch(CLEANUP_BATCH);
      deleted += batch;
      if (batch < CLEANUP_BATCH) return deleted;
      // Lets other work in (better-sqlite3 runs each batch synchronously).
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Flask-Session's SESSION_CLEANUP_N_REQUESTS, drawn when a request opens its session. */
  override openSession(app: SessionApp, request: CookieReadableRequest): Promise<SessionMixin> {
    if (this.cleanupNRequests !== undefined && randomInt(this.cleanupNRequests + 1) === 0) this.cleanUpInBackground();
    return super.openSession(app, request);
  }

  protected async readRecord(storeId: string, call: StoreCall): Promise<StoredRecord | null> {
    if (!this.isSetUp) await this.ready();
    const value = await this.statements.read(storeId, call.deadline);
    return value ? { value } : null;
  }

  protected async swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome> {
    if (!this.isSetUp) await this.ready();
    this.checkSize(value);
    if (this.queue && expected) return this.queue.swap(storeId, expected.value, value, ttlSeconds, call.deadline);
    const reply = await this.write(call, (deadlines) =>
      expected ? this.statements.swap(storeId, expected.value, value, ttlSeconds, deadlines) : this.statements.insertIfAbsent(storeId, value, ttlSeconds, deadlines),
    );
    this.queue?.forget(storeId);
    return reply.written ? { swapped: true } : { swapped: false, current: reply.current ? { value: reply.current } : null };
  }

  protected async replaceRecord(storeId: string, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<void> {
    if (!this.isSetUp) await this.ready();
    this.checkSize(value);
    try {
      await this.write(call, (deadlines) => this.statements.replace(storeId, value, ttlSeconds, deadlines));
    } finally {
      this.queue?.forget(storeId);
    }
  }

  protected async deleteRecord(storeId: string, call: StoreCall): Promise<void> {
    if (!this.isSetUp) await this.ready();
    try {
      await this.write(call, (deadlines) => this.statements.remove(storeId, deadlines));
    } finally {
      this.queue?.forget(storeId);
    }
  }

  protected async refreshRecord(storeId: string, ttlSeconds: number, call: StoreCall): Promise<void> {
    if (!this.isSetUp) await this.ready();
    await this.write(call, (deadlines) => this.statements.refresh(storeId, ttlSeconds, deadlines));
  }

  /** One batch of the write queue: a compare-and-set by the earliest deadline of its requests. */
  private async writeBatch(storeId: string, batch: BatchWrite): Promise<BatchOutcome> {
    for (let attempt = 0; ; attempt++) {
      const local = batch.deadline - this.margin;
      let reply: WriteReply;
      try {
        reply = await this.statements.swap(storeId, batch.expected, batch.value, batch.ttl, { local, server: local + this.serverClock.offset });
      } catch (error) {
        if (error instanceof NotSentError) return { written: false, late: true };
        throw error;
      }
      if (reply.written) return { written: true };
      if (!reply.late) return { written: false, current: reply.current ?? null };
      // Refused as late while our clock says there was time: the offset, just measured again, was off.
      if (attempt > 0 || Date.now() >= local) return { written: false, late: true };
    }
  }

  /**
   * Runs a write with the request's deadline, less the margin, in both
   * clocks. A refusal as too late while our own clock says there was time
   * left means the offset was off: it has just been measured again, and the
   * write is tried once more.
   */
  private async write(call: StoreCall, run: (deadlines: Deadlines) => Promise<WriteReply>): Promise<WriteReply> {
    for (let attempt = 0; ; attempt++) {
      const local = call.deadline - this.margin;
      const reply = await run({ local, server: local + this.serverClock.offset });
      if (!reply.late) return reply;
      if (attempt > 0 || Date.now() >= local) throw this.lateError();
    }
  }

  private lateError(): Error {
    return new Error(
      `the write reached ${this.storeName} after the request's deadline and was refused there (storeTimeout ${this.storeTimeout} ms; ${this.connection.address})`,
    );
  }

  /**
   * What the server refused is a configuration mistake, answered 500 with a
   * message saying what to fix: the user (a wrong password, a missing
   * privilege: the grant is named) or one of the store's own statements (the
   * table dropped or altered under the running application). Anything else
   * (a connection that failed, a server that cannot serve now) is an outage:
   * 503.
   */
  protected override configurationFailure(error: unknown): SessionConfigurationError | undefined {
    const denial = this.connection.accessDenial(error);
    if (denial) return this.accessError(error, denial, 'statements');
    if (this.connection.isStatementError(error)) {
      return SessionConfigurationError.create(
        'table',
        `${this.connection.address} refused the store's statement on ${this.statements.tableLabel}: ${(error as Error).message}. Was the table dropped or changed? It is checked (and created, with createTable) when the application starts.`,
        'SqlSessionInterface',
      );
    }
    return undefined;
  }

  /**
   * A refused login needs no hint; a refusal while the table was prepared
   * (`during`) names CREATE; the store's statements need the grants of
   * {@link SessionStatements.grantHint}.
   */
  private accessError(error: unknown, denial: AccessDenial, during: SetUpStep): SessionConfigurationError {
    const refused = `${this.connection.address} refused the connection's user: ${(error as Error).message}.`;
    if (denial === 'login' || during === 'login') return SessionConfigurationError.create('client', refused, 'SqlSessionInterface');
    if (during === 'table' && this.createTable) {
      return SessionConfigurationError.create(
        'createTable',
        `${refused} Creating ${this.statements.tableLabel} or its index on expiry needs the CREATE privilege (for the index: INDEX on MySQL, owning the table on PostgreSQL): grant it, or create them yourself (see the README) and pass createTable: false. If the table exists, the user lacks privileges on it (MySQL shows a table only to a user with some): ${this.statements.grantHint()}.`,
        'SqlSessionInterface',
      );
    }
    return SessionConfigurationError.create('client', `${refused} The store needs ${this.statements.grantHint()}.`, 'SqlSessionInterface');
  }

  private checkSize(value: Buffer): void {
    if (this.maxDataBytes !== undefined && value.length > this.maxDataBytes) {
      // A 500, not a 503: trying again cannot help.
      throw new SessionError(
        `the session is ${value.length} bytes, more than the ${this.maxDataBytes} that ${this.statements.tableLabel}.data holds; ` +
          `widen the column (MySQL: ALTER TABLE … MODIFY data MEDIUMBLOB) or store less in the session`,
      );
    }
  }

  private async setUp(): Promise<void> {
    const connection = this.connection;
    let report;
    let during: SetUpStep = 'login';
    try {
      const { version } = await this.statements.probe();
      if (/mariadb/i.test(version)) this.storeName = 'MariaDB';
      during = 'table';
      report = await this.statements.prepareTable(this.createTable);
      during = 'statements';
      await this.statements.checkAccess();
    } catch (error) {
      if (error instanceof SessionConfigurationError) throw error;
      const denial = connection.accessDenial(error);
      if (denial) throw this.accessError(error, denial, during);
      // The server refused a statement (no such schema, a table it cannot read): a mistake, not an outage.
      if (connection.isStatementError(error)) {
        throw SessionConfigurationError.create(
          this.schema !== undefined && /schema|database/i.test((error as Error).message) ? 'schema' : 'table',
          `preparing ${this.statements.tableLabel} on ${connection.address} failed: ${(error as Error).message}`,
          'SqlSessionInterface',
        );
      }
      throw error;
    }
    this.maxDataBytes = report.maxDataBytes !== undefined && report.maxDataBytes < 16 * 1024 * 1024 ? report.maxDataBytes : undefined;
    if (report.created) this.logger.log(`Created the session table ${this.statements.tableLabel} (${connection.address}).`);
    if (report.indexCreated) this.logger.log(`Created an index on ${this.statements.tableLabel}.expiry, used to delete expired sessions.`);
    if (report.missingExpiryIndex) {
      this.logger.warn(`${this.statements.tableLabel}.expiry has no index: deleting expired sessions scans the whole table. CREATE INDEX ON ${this.statements.tableLabel} (expiry).`);
    }
  }

  private cleanUpInBackground(): void {
    if (this.cleanupRunning) return;
    this.cleanupRunning = true;
    // Not within the request: after it (SQLite would run the first batch right here otherwise).
    setImmediate(() => {
      this.deleteExpired()
        .then((deleted) => this.logger.debug?.(`cleanupNRequests: deleted ${deleted} expired sessions.`))
        .catch((error: unknown) => this.logger.warn(`cleanupNRequests: deleting expired sessions failed: ${(error as Error).message}`))
        .finally(() => {
          this.cleanupRunning = false;
        });
    });
  }
}

/** A table or schema name: 1 to 63 characters, no control characters (it is quoted, so anything else is safe). */
function identifier(option: string, value: unknown, fail: (option: string, problem: string) => never): string {
  if (typeof value !== 'string') return fail(option, `expected a string, got ${describe(value)}.`);
  if (value.length === 0 || value.length > MAX_IDENTIFIER) return fail(option, `expected 1 to ${MAX_IDENTIFIER} characters, got ${value.length}.`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return fail(option, `${JSON.stringify(value)} contains a control character.`);
  if (value.trim() !== value) return fail(option, `${JSON.stringify(value)} starts or ends with a space.`);
  return value;
}
