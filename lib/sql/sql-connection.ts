/**
 * The one seam between the SQL store and a driver: run a statement with
 * positional parameters, get rows and an affected-row count. One tiny adapter
 * per driver (`pg` Pool, `mysql2` pool, `better-sqlite3` Database), and a
 * TypeORM `DataSource` resolves to the adapter of the pool it holds. No driver
 * is imported: the user's objects are called through the few members below.
 */

/** The SQL the store writes: `postgres` (PostgreSQL), `mysql` (MySQL and MariaDB), `sqlite`. */
export type SqlDialect = 'postgres' | 'mysql' | 'sqlite';

/**
 * A TypeORM `DataSource` of type `'postgres'`, `'mysql'`, `'mariadb'` or
 * `'better-sqlite3'`, as `@nestjs/typeorm` injects it. Typed by the members the
 * store reads, so that no TypeORM types are needed to compile against it.
 *
 * @publicApi
 */
export interface SqlDataSource {
  readonly options: { readonly type: string };
  readonly isInitialized: boolean;
  readonly driver: object;
}

/** A `pg` (node-postgres 8) `Pool`: `new pg.Pool(config)`. @publicApi */
export interface SqlPgPool {
  connect: (...args: never[]) => unknown;
  readonly totalCount: number;
  readonly idleCount: number;
}

/** A `mysql2` (3) pool, from `mysql2`'s `createPool` (callback API) or `mysql2/promise`'s (promise API). @publicApi */
export interface SqlMysqlPool {
  getConnection: (...args: never[]) => unknown;
}

/** A `better-sqlite3` (12) `Database`, opened for writing. @publicApi */
export interface SqlSqliteDatabase {
  prepare: (...args: never[]) => unknown;
  readonly open: boolean;
  readonly name: string;
}

/**
 * The connection the application already has: a TypeORM `DataSource`, a `pg`
 * Pool, a `mysql2` pool (callback or promise API) or a `better-sqlite3`
 * Database.
 *
 * @publicApi
 */
export type SqlClient = SqlDataSource | SqlPgPool | SqlMysqlPool | SqlSqliteDatabase;

/** What a statement gave: its rows (a SELECT, or PostgreSQL's CTEs) and how many rows it affected. */
export interface SqlResult {
  readonly rows: ReadonlyArray<Record<string, unknown>>;
  readonly affected: number;
  /** MySQL's OK-packet text ("Rows matched: 1  Changed: 0 …", "Records: 1  Duplicates: 0 …"); '' elsewhere. */
  readonly info: string;
}

/** The seam. */
export interface SqlConnection {
  readonly dialect: SqlDialect;
  /** For messages: `PostgreSQL at 127.0.0.1:5432`, `SQLite file /srv/app.db`. */
  readonly address: string;
  /**
   * Runs one statement. With `deadline` (ms since the epoch, this host's
   * clock), a statement not sent by then is not sent at all: a pooled
   * connection that became free too late is handed back unused.
   */
  run(sql: string, params: readonly unknown[], deadline?: number): Promise<SqlResult>;
  /**
   * Whether an error is the server refusing a statement (bad SQL, a missing
   * table, a constraint), as opposed to the connection failing: the first is
   * a mistake to report, the second an outage to retry later.
   */
  isStatementError(error: unknown): boolean;
  /**
   * Whether the server refused the connection's user: `'login'` (a wrong
   * password, an unknown or locked user), `'privilege'` (no privilege on the
   * table, a read-only SQLite database); undefined for anything else. The
   * developer's configuration to fix, never an outage to wait out.
   */
  accessDenial(error: unknown): AccessDenial | undefined;
  /**
   * Whether the server rolled the statement back to break a deadlock (or a
   * serialization failure): it changed nothing, and running it again is the
   * cure the databases prescribe.
   */
  isDeadlock(error: unknown): boolean;
}

/** How the server refused the connection's user: logging in, or a statement it may not run. */
export type AccessDenial = 'login' | 'privilege';

/** Why a client cannot be used; the store turns it into a configuration error naming `client`. */
export class UnsupportedClientError extends Error {}

/** The dialect of a client, or why it is not one the store takes (checked at construction, without any I/O). */
export function dialectOf(client: unknown): SqlDialect {
  if (client === undefined || client === null) {
    throw new UnsupportedClientError(
      'required: a TypeORM DataSource, a pg Pool, a mysql2 pool or a better-sqlite3 Database, e.g. new pg.Pool({ connectionString: process.env.DATABASE_URL }).',
    );
  }
  if (typeof client === 'string') {
    throw new UnsupportedClientError(
      `expected a connection object, got the string ${JSON.stringify(client.replace(/\/\/[^@/]*@/, '//…@'))}: pass a pool made from it, e.g. new pg.Pool({ connectionString }) or mysql2's createPool(uri).`,
    );
  }
  if (typeof client !== 'object') throw new UnsupportedClientError(`expected a connection object, got ${typeof client}.`);
  const candidate = client as Record<string, unknown>;
  if (isDataSource(candidate)) {
    const type = (candidate.options as { type: unknown }).type;
    if (type === 'postgres') return 'postgres';
    if (type === 'mysql' || type === 'mariadb') {
      if ((candidate.options as { replication?: unknown }).replication) {
        throw new UnsupportedClientError('a TypeORM DataSource with replication is not supported: pass the primary\'s mysql2 pool instead.');
      }
      return 'mysql';
    }
    if (type === 'better-sqlite3') return 'sqlite';
    throw new UnsupportedClientError(
      `a TypeORM DataSource of type ${JSON.stringify(type)} is not supported; the types are 'postgres', 'mysql', 'mariadb' and 'better-sqlite3'.`,
    );
  }
  if (typeof candidate.query === 'function' && typeof candidate.execute === 'function' && 'config' in candidate && typeof candidate.getConnection !== 'function') {
    throw new UnsupportedClientError('this looks like a single mysql2 connection; pass a pool (mysql2\'s createPool), so that a failed connection is replaced.');
  }
  if (typeof candidate.connect === 'function' && typeof candidate.query === 'function') {
    if ('totalCount' in candidate && 'idleCount' in candidate) return 'postgres';
    throw new UnsupportedClientError(
      'this looks like a pg Client (one connection); pass a pg Pool: one connection queues every query behind the one before, and a query queued past its request would still run.',
    );
  }
  if (typeof candidate.getConnection === 'function') {
    if (typeof candidate.of === 'function') throw new UnsupportedClientError('a mysql2 PoolCluster is not supported: pass the primary\'s pool.');
    if (mysqlCorePool(candidate)) return 'mysql';
  }
  if (typeof candidate.prepare === 'function' && typeof candidate.pragma === 'function' && 'open' in candidate) {
    if (candidate.readonly === true) throw new UnsupportedClientError('the better-sqlite3 Database was opened readonly; sessions are written.');
    return 'sqlite';
  }
  if (typeof (candidate as { exec?: unknown }).exec === 'function' && typeof (candidate as { run?: unknown }).run === 'function') {
    throw new UnsupportedClientError('this looks like a sqlite3 (callback) Database; pass a better-sqlite3 Database.');
  }
  return unsupported(candidate);
}

function unsupported(candidate: object): never {
  const name = candidate.constructor?.name;
  throw new UnsupportedClientError(
    `expected a TypeORM DataSource, a pg Pool, a mysql2 pool or a better-sqlite3 Database${name && name !== 'Object' ? `, got a ${name}` : ''}.`,
  );
}

/** Makes the seam for a client {@link dialectOf} accepted. */
export function connect(client: object): SqlConnection {
  return new DeadlockRetrying(driverConnection(client));
}

function driverConnection(client: object): SqlConnection {
  const candidate = client as Record<string, unknown>;
  if (isDataSource(candidate)) return new DataSourceConnection(candidate as unknown as DataSourceShape);
  const dialect = dialectOf(client);
  if (dialect === 'postgres') return new PgConnection(candidate as unknown as PgPool);
  if (dialect === 'mysql') return new MysqlConnection(mysqlCorePool(candidate)!);
  return new SqliteConnection(candidate as unknown as SqliteDatabase);
}

/** How many times in all a statement is run while the server keeps choosing it as a deadlock's victim. */
const DEADLOCK_ATTEMPTS = 4;

/**
 * Runs a statement again when the server rolled it back to break a deadlock
 * (InnoDB does so between two single-row statements on one session, say a
 * logout and a change: its row and index locks are taken in different
 * orders). Every statement runs alone and commits alone, so the victim
 * changed nothing; each attempt keeps the request's deadline, and every
 * write compares it with the server's clock again.
 */
class DeadlockRetrying implements SqlConnection {
  readonly dialect: SqlDialect;

  constructor(private readonly connection: SqlConnection) {
    this.dialect = connection.dialect;
  }

  /** Read each time: a TypeORM DataSource's address is known once it is initialized. */
  get address(): string {
    return this.connection.address;
  }

  async run(sql: string, params: readonly unknown[], deadline?: number): Promise<SqlResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.connection.run(sql, params, deadline);
      } catch (error) {
        if (attempt >= DEADLOCK_ATTEMPTS || !this.connection.isDeadlock(error)) throw error;
      }
    }
  }

  isStatementError(error: unknown): boolean {
    return this.connection.isStatementError(error);
  }

  accessDenial(error: unknown): AccessDenial | undefined {
    return this.connection.accessDenial(error);
  }

  isDeadlock(error: unknown): boolean {
    return this.connection.isDeadlock(error);
  }
}

function isDataSource(candidate: Record<string, unknown>): boolean {
  const options = candidate.options as { type?: unknown } | undefined;
  return typeof options?.type === 'string' && 'isInitialized' in candidate && typeof candidate.createQueryRunner === 'function';
}

/** mysql2's callback pool; a promise pool wraps one (`.pool`), which is used directly. */
function mysqlCorePool(candidate: Record<string, unknown>): MysqlPool | undefined {
  const isCore = (pool: Record<string, unknown> | undefined) =>
    pool !== undefined && typeof pool.getConnection === 'function' && typeof (pool.config as { connectionConfig?: unknown } | undefined)?.connectionConfig === 'object';
  if (isCore(candidate)) return candidate as unknown as MysqlPool;
  const inner = candidate.pool as Record<string, unknown> | undefined;
  return isCore(inner) ? (inner as unknown as MysqlPool) : undefined;
}

/** The statement was not sent: its request's budget ran out first (waiting for a pooled connection). */
export class NotSentError extends Error {
  constructor() {
    super("the request's store budget ran out before the statement could be sent (waiting for a pooled connection); it was not sent");
  }
}

/** `cause (address)`, unless the driver already named the address. */
function withAddress(error: unknown, address: string, host: string): Error {
  const failure = error instanceof Error ? error : new Error(String(error));
  if (!failure.message.includes(host)) failure.message = `${failure.message} (${address})`;
  return failure;
}

// --- node-postgres -------------------------------------------------------

interface PgQueryResult {
  rows: Array<Record<string, unknown>>;
  rowCount: number | null;
}
interface PgPoolClient {
  query(text: string, values: unknown[], callback: (error: Error | null, result: PgQueryResult) => void): void;
  release(destroy?: Error | boolean): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
}
interface PgPool {
  connect(callback: (error: Error | undefined, client: PgPoolClient | undefined) => void): void;
  options: { host?: string; port?: number; connectionString?: string };
}

class PgConnection implements SqlConnection {
  readonly dialect = 'postgres';
  readonly address: string;
  private readonly host: string;

  constructor(private readonly pool: PgPool) {
    const { host, port } = endpoint(pool.options, 5432);
    this.host = host;
    this.address = `PostgreSQL at ${host}:${port}`;
  }

  /** With node-postgres's callbacks (as pool.query() uses them): this runs on every session request. */
  run(sql: string, params: readonly unknown[], deadline?: number): Promise<SqlResult> {
    return new Promise((resolve, reject) => {
      this.pool.connect((failure, client) => {
        if (failure || !client) return reject(withAddress(failure, this.address, this.host));
        watchForErrors(client);
        if (deadline !== undefined && Date.now() >= deadline) {
          client.release(brokenClients.get(client));
          return reject(new NotSentError());
        }
        // The text and values apart, not a config object: node-postgres copies a config object on every query.
        client.query(sql, params as unknown[], (error, result) => {
          // A connection that failed (rather than a statement the server refused) is not given back to the pool.
          client.release((error && !isPgServerError(error) ? error : undefined) ?? brokenClients.get(client));
          if (error) reject(withAddress(error, this.address, this.host));
          else resolve({ rows: result.rows, affected: result.rowCount ?? 0, info: '' });
        });
      });
    });
  }

  isStatementError(error: unknown): boolean {
    // Some of the server's errors report a server that cannot serve now (starting up, shutting down, out of connections), not a mistake.
    if (!isPgServerError(error)) return false;
    const { code, severity } = error as { code: string; severity: string };
    // A FATAL error ends the connection: the server's doing (an idle timeout, a restart), unless it refused the login or the database.
    return !PG_OUTAGE.test(code) && !(/^(FATAL|PANIC)$/.test(severity) && !/^(28|3D)/.test(code));
  }

  accessDenial(error: unknown): AccessDenial | undefined {
    if (!isPgServerError(error)) return undefined;
    const code = (error as { code: string }).code;
    // 28: invalid authorization (password, role); 3D000: no such database; 42501: insufficient privilege.
    return code.startsWith('28') || code === '3D000' ? 'login' : code === '42501' ? 'privilege' : undefined;
  }

  isDeadlock(error: unknown): boolean {
    // deadlock_detected, serialization_failure (a server whose default isolation is SERIALIZABLE).
    const code = (error as { code?: unknown })?.code;
    return isPgServerError(error) && (code === '40P01' || code === '40001');
  }
}

/** node-postgres's DatabaseError: the server's ErrorResponse, with its severity and SQLSTATE. */
function isPgServerError(error: unknown): boolean {
  return typeof (error as { severity?: unknown })?.severity === 'string' && typeof (error as { code?: unknown }).code === 'string';
}

/**
 * SQLSTATEs of a server that cannot serve now: connection exceptions (08), a
 * read-only transaction on a standby (25006), deadlock or serialization
 * failures (40), insufficient resources (53), lock not available (55P03),
 * operator intervention (57: starting up, shutting down, cancelled), system
 * errors (58).
 */
const PG_OUTAGE = /^(08|25006|40|53|55P03|57|58)/;

/** Clients whose connection reported an error event: released with it, so the pool drops them. */
const brokenClients = new WeakMap<PgPoolClient, Error>();
const watchedClients = new WeakSet<PgPoolClient>();

/**
 * A checked-out client reports its connection's end as an 'error' event
 * after failing the query; node-postgres leaves that event to whoever holds
 * the client, and an unheard 'error' ends the process. One listener per
 * client, for its life (the pool's own listener handles it while idle).
 */
function watchForErrors(client: PgPoolClient): void {
  if (watchedClients.has(client)) return;
  watchedClients.add(client);
  client.on('error', (error) => brokenClients.set(client, error));
}

/** Host and port from a pg Pool's options (or its connection string); the libpq defaults otherwise. */
function endpoint(options: { host?: string; port?: number; connectionString?: string }, defaultPort: number): { host: string; port: number } {
  let host = options.host;
  let port = options.port;
  if (options.connectionString) {
    try {
      const url = new URL(options.connectionString);
      host ??= decodeURIComponent(url.hostname) || undefined;
      port ??= url.port ? Number(url.port) : undefined;
    } catch {
      // Not a URL (a key=value string): the driver will say what it makes of it.
    }
  }
  return { host: host ?? process.env.PGHOST ?? 'localhost', port: port ?? (Number(process.env.PGPORT) || defaultPort) };
}

// --- mysql2 ---------------------------------------------------------------

type MysqlCallback<T> = (error: (Error & { fatal?: boolean }) | null, result: T) => void;
interface MysqlPoolConnection {
  query(sql: string, values: unknown[], callback: MysqlCallback<unknown>): void;
  release(): void;
  destroy(): void;
}
interface MysqlPool {
  getConnection(callback: MysqlCallback<MysqlPoolConnection>): void;
  config: { connectionConfig: { host?: string; port?: number; socketPath?: string } };
}

class MysqlConnection implements SqlConnection {
  readonly dialect = 'mysql';
  readonly address: string;
  private readonly host: string;

  constructor(private readonly pool: MysqlPool) {
    const { host = 'localhost', port = 3306, socketPath } = pool.config.connectionConfig;
    this.host = socketPath ?? host;
    this.address = socketPath ? `MySQL at ${socketPath}` : `MySQL at ${host}:${port}`;
  }

  run(sql: string, params: readonly unknown[], deadline?: number): Promise<SqlResult> {
    return new Promise((resolve, reject) => {
      this.pool.getConnection((error, connection) => {
        if (error) return reject(withAddress(error, this.address, this.host));
        if (deadline !== undefined && Date.now() >= deadline) {
          connection.release();
          return reject(new NotSentError());
        }
        connection.query(sql, params as unknown[], (failure, result) => {
          // A fatal error ends the connection: it must not go back to the pool.
          if (failure?.fatal) connection.destroy();
          else connection.release();
          if (failure) reject(withAddress(failure, this.address, this.host));
          else resolve(mysqlResult(result));
        });
      });
    });
  }

  isStatementError(error: unknown): boolean {
    const failure = error as { fatal?: unknown; sqlState?: unknown; errno?: unknown } | undefined;
    return !failure?.fatal && typeof failure?.sqlState === 'string' && typeof failure.errno === 'number' && !MYSQL_OUTAGE.has(failure.errno);
  }

  accessDenial(error: unknown): AccessDenial | undefined {
    // A refused login fails the handshake (fatal); a refused statement does not.
    const errno = (error as { errno?: unknown })?.errno as number;
    return MYSQL_LOGIN_REFUSED.has(errno) ? 'login' : MYSQL_PRIVILEGE_REFUSED.has(errno) ? 'privilege' : undefined;
  }

  isDeadlock(error: unknown): boolean {
    return (error as { errno?: unknown })?.errno === 1213; // ER_LOCK_DEADLOCK
  }
}

/**
 * ER_ACCESS_DENIED_ERROR (user or password), ER_BAD_DB_ERROR (no such database), ER_HOST_NOT_PRIVILEGED,
 * ER_ACCESS_DENIED_NO_PASSWORD_ERROR, ER_MUST_CHANGE_PASSWORD(_LOGIN),
 * ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL), ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB).
 */
const MYSQL_LOGIN_REFUSED = new Set([1045, 1049, 1130, 1698, 1820, 1862, 3118, 4151]);
/**
 * ER_DBACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR,
 * ER_COLUMNACCESS_DENIED_ERROR, ER_SPECIFIC_ACCESS_DENIED_ERROR.
 */
const MYSQL_PRIVILEGE_REFUSED = new Set([1044, 1142, 1143, 1227]);
/**
 * A server that cannot serve now, not a mistake: read-only (--read-only,
 * super_read_only, a read-only transaction: a replica or a failover),
 * a lock wait timeout, a deadlock, shutting down, a killed connection, a
 * statement timeout (MySQL's, MariaDB's).
 */
const MYSQL_OUTAGE = new Set([1290, 1836, 1792, 1205, 1213, 1053, 1927, 3024, 1969]);

function mysqlResult(result: unknown): SqlResult {
  if (Array.isArray(result)) return { rows: result as Array<Record<string, unknown>>, affected: 0, info: '' };
  const header = result as { affectedRows?: number; info?: string; message?: string };
  return { rows: [], affected: header.affectedRows ?? 0, info: header.info ?? header.message ?? '' };
}

// --- better-sqlite3 -------------------------------------------------------

interface SqliteStatement {
  readonly reader: boolean;
  all(...params: unknown[]): Array<Record<string, unknown>>;
  run(...params: unknown[]): { changes: number };
}
interface SqliteDatabase {
  prepare(sql: string): SqliteStatement;
  readonly name: string;
  readonly open: boolean;
}

const SQLITE_PRIVILEGE_REFUSED = new Set(['SQLITE_READONLY', 'SQLITE_READONLY_DIRECTORY', 'SQLITE_READONLY_DBMOVED', 'SQLITE_PERM', 'SQLITE_AUTH']);

/** Prepared statements, per Database (several interfaces may share one). */
const prepared = new WeakMap<SqliteDatabase, Map<string, SqliteStatement>>();

/**
 * better-sqlite3 is synchronous: a statement runs (or fails) within the call,
 * so its outcome is known before the request's timer can fire; the deadline is
 * checked just before.
 */
class SqliteConnection implements SqlConnection {
  readonly dialect = 'sqlite';
  readonly address: string;

  constructor(private readonly db: SqliteDatabase) {
    this.address = `SQLite file ${db.name}`;
  }

  run(sql: string, params: readonly unknown[], deadline?: number): Promise<SqlResult> {
    try {
      if (deadline !== undefined && Date.now() >= deadline) throw new NotSentError();
      if (!this.db.open) throw new Error(`the better-sqlite3 Database was closed (${this.address})`);
      let statements = prepared.get(this.db);
      if (!statements) prepared.set(this.db, (statements = new Map()));
      let statement = statements.get(sql);
      if (!statement) statements.set(sql, (statement = this.db.prepare(sql)));
      if (statement.reader) return Promise.resolve({ rows: statement.all(...params), affected: 0, info: '' });
      return Promise.resolve({ rows: [], affected: statement.run(...params).changes, info: '' });
    } catch (error) {
      return Promise.reject(error instanceof Error && !error.message.includes(this.db.name) ? withAddress(error, this.address, this.db.name) : error);
    }
  }

  isStatementError(error: unknown): boolean {
    const code = (error as { code?: unknown })?.code;
    // Busy and locked are another connection holding the file, the others passing states of the file: an outage, not a mistake.
    return typeof code === 'string' && code.startsWith('SQLITE_') && !/^SQLITE_(BUSY|LOCKED|IOERR|CANTOPEN|FULL|PROTOCOL|READONLY_(RECOVERY|ROLLBACK|CANTINIT|CANTLOCK))/.test(code);
  }

  accessDenial(error: unknown): AccessDenial | undefined {
    // A read-only database (PRAGMA query_only, a file or folder the process may not write); not the
    // passing kinds (READONLY_RECOVERY, _ROLLBACK, _CANTINIT, _CANTLOCK).
    return SQLITE_PRIVILEGE_REFUSED.has(String((error as { code?: unknown })?.code)) ? 'privilege' : undefined;
  }

  isDeadlock(): boolean {
    return false; // one writer at a time: a lock held elsewhere is SQLITE_BUSY, waited for within the busy timeout
  }
}

// --- TypeORM ----------------------------------------------------------------

interface DataSourceShape {
  options: { type: string };
  isInitialized: boolean;
  driver: { master?: PgPool; pool?: MysqlPool; databaseConnection?: SqliteDatabase };
}

/**
 * A TypeORM DataSource runs the store's statements on the pool it holds
 * (`driver.master` for PostgreSQL, `driver.pool` for MySQL, the
 * `databaseConnection` of better-sqlite3): the application's own connections,
 * none opened for sessions. Looked up on each call, so a DataSource
 * initialized after the interface was made, or destroyed and initialized
 * again, is followed.
 */
class DataSourceConnection implements SqlConnection {
  readonly dialect: SqlDialect;
  private inner?: { handle: object; connection: SqlConnection };

  constructor(private readonly dataSource: DataSourceShape) {
    this.dialect = dialectOf(dataSource);
  }

  get address(): string {
    return this.inner?.connection.address ?? `TypeORM DataSource (${this.dataSource.options.type})`;
  }

  run(sql: string, params: readonly unknown[], deadline?: number): Promise<SqlResult> {
    let connection: SqlConnection;
    try {
      connection = this.current();
    } catch (error) {
      return Promise.reject(error);
    }
    return connection.run(sql, params, deadline);
  }

  isStatementError(error: unknown): boolean {
    return this.inner?.connection.isStatementError(driverCause(error)) ?? false;
  }

  accessDenial(error: unknown): AccessDenial | undefined {
    return this.inner?.connection.accessDenial(driverCause(error));
  }

  isDeadlock(error: unknown): boolean {
    return this.inner?.connection.isDeadlock(driverCause(error)) ?? false;
  }

  private current(): SqlConnection {
    if (!this.dataSource.isInitialized) {
      throw new Error(`the TypeORM DataSource (${this.dataSource.options.type}) is not initialized: call dataSource.initialize() first`);
    }
    const driver = this.dataSource.driver;
    const handle = this.dialect === 'postgres' ? driver.master : this.dialect === 'mysql' ? driver.pool : driver.databaseConnection;
    if (!handle) throw new Error(`the TypeORM DataSource (${this.dataSource.options.type}) has no connection pool`);
    if (this.inner?.handle !== handle) {
      const connection =
        this.dialect === 'postgres'
          ? new PgConnection(handle as PgPool)
          : this.dialect === 'mysql'
            ? new MysqlConnection(handle as MysqlPool)
            : new SqliteConnection(handle as SqliteDatabase);
      this.inner = { handle, connection };
    }
    return this.inner.connection;
  }
}

/** The driver's own error: TypeORM wraps it (`driverError`); the drivers' errors come as they are. */
export function driverCause(error: unknown): unknown {
  return (error as { driverError?: unknown })?.driverError ?? error;
}
