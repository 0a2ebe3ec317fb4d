/**
 * The statements of the SQL store, one class per dialect, on Flask-Session's
 * table (`id` integer key, `session_id` varchar(255) unique, `data` bytes,
 * `expiry` naive UTC timestamp).
 *
 * How a write is shaped, on every dialect:
 * - A row that exists is changed by UPDATE only: a change is a compare-and-set
 *   (`UPDATE … WHERE session_id = ? AND data = <the bytes read> AND <live>`),
 *   a refresh moves `expiry` of a live row and nothing else (so it never
 *   recreates a row deleted meanwhile).
 * - Only a row that does not exist is INSERTed, by a statement that is atomic
 *   on its own (`ON CONFLICT` / `ON DUPLICATE KEY UPDATE`), never a SELECT
 *   followed by an INSERT. A replace is update-or-insert: one statement on
 *   PostgreSQL (a CTE whose INSERT runs only when its UPDATE found no row) and
 *   SQLite (an upsert), an UPDATE then, only when it found no row, an
 *   `INSERT … ON DUPLICATE KEY UPDATE` on MySQL.
 *
 *   Why not one upsert for every write, as issue 9 first asked:
 *   PostgreSQL's `INSERT … ON CONFLICT DO UPDATE` and MySQL's `INSERT … ON
 *   DUPLICATE KEY UPDATE` take a value from the `id` sequence /
 *   AUTO_INCREMENT even when they update an existing row. Flask-Session's
 *   `id` is a 32-bit integer, and a session is written on every change and
 *   every refresh: a busy site would run out of ids within months, after
 *   which no new session could be stored. With the shapes above, ids are
 *   taken only by rows that are really inserted (measured in
 *   test/sql/sql-backend.ts, "no id is taken").
 * - Every write carries the request's deadline in the server's clock and does
 *   nothing when the server runs it later than that (a server that was paused
 *   runs what it had received when it wakes): a write the client was told
 *   failed (503) never lands. SQLite runs in this process, synchronously: the
 *   deadline is checked just before.
 * - Expiry is computed from the database server's clock (SQLite: this
 *   process's), in UTC, whatever the time zone of the server, its session or
 *   this process: no JavaScript `Date` is ever sent or read.
 */
import { SessionConfigurationError } from '../session.errors.js';
import { driverCause, type SqlConnection, type SqlResult } from './sql-connection.js';

/** Where the sessions live: `schema.table`. */
export interface TableName {
  readonly table: string;
  readonly schema?: string;
}

/** The request's deadline (ms since the epoch) in this host's clock and in the server's. */
export interface Deadlines {
  readonly local: number;
  readonly server: number;
}

/**
 * What a write did: `written`, or refused as `late` (the server ran it after
 * the deadline), or neither: a compare-and-set that found the record changed
 * (`current`, its bytes now) or gone (`current` null), or a refresh/delete
 * that found no live row.
 */
export interface WriteReply {
  readonly written: boolean;
  readonly late: boolean;
  readonly current?: Buffer | null;
}

/** Reports the server's clock (ms since the epoch) as read by a statement sent at `sentAt` and answered at `receivedAt`. */
export type ClockSample = (serverNow: number, sentAt: number, receivedAt: number) => void;

/** What preparing the table found or did. */
export interface TableReport {
  readonly created: boolean;
  readonly indexCreated: boolean;
  /** No index on `expiry`, and none was created (`createTable: false`). */
  readonly missingExpiryIndex: boolean;
  /** The most bytes the `data` column holds, where it is small enough to matter (MySQL's BLOB: 65,535). */
  readonly maxDataBytes?: number;
}

/** Rows deleted per statement by deleteExpired(): short statements, short locks. */
export const CLEANUP_BATCH = 1000;

interface Column {
  readonly name: string;
  /** Has a default or is generated (an id that needs no value on INSERT). */
  readonly generated: boolean;
  readonly maxBytes?: number;
}
interface Index {
  readonly unique: boolean;
  readonly columns: readonly string[];
}
interface Layout {
  readonly columns: readonly Column[];
  readonly indexes: readonly Index[];
}

export abstract class SessionStatements {
  /** The quoted, schema-qualified table. */
  protected readonly qualified: string;
  /** Name of the index on `expiry` created with the table: SQLAlchemy's `ix_<table>_expiry`, cut to 63 characters. */
  protected readonly indexName: string;

  constructor(
    protected readonly db: SqlConnection,
    protected readonly name: TableName,
    protected readonly onClock: ClockSample,
  ) {
    this.qualified = name.schema === undefined ? this.quote(name.table) : `${this.quote(name.schema)}.${this.quote(name.table)}`;
    this.indexName = `ix_${name.table}_expiry`.slice(0, 63);
  }

  /** The table's name as messages show it. */
  get tableLabel(): string {
    return this.name.schema === undefined ? this.name.table : `${this.name.schema}.${this.name.table}`;
  }

  /** An identifier, quoted for this dialect. */
  protected abstract quote(identifier: string): string;
  /** The server's version and clock; first statement of a store. */
  abstract probe(): Promise<{ version: string }>;
  /** The live record's bytes, or null (missing, expired, or a `session_id` that differs in case only). */
  abstract read(storeId: string, deadline: number): Promise<Buffer | null>;
  abstract swap(storeId: string, expected: Buffer, value: Buffer, ttl: number, deadlines: Deadlines): Promise<WriteReply>;
  /** Writes `value` only if there is no live record. */
  abstract insertIfAbsent(storeId: string, value: Buffer, ttl: number, deadlines: Deadlines): Promise<WriteReply>;
  abstract replace(storeId: string, value: Buffer, ttl: number, deadlines: Deadlines): Promise<WriteReply>;
  abstract refresh(storeId: string, ttl: number, deadlines: Deadlines): Promise<WriteReply>;
  abstract remove(storeId: string, deadlines: Deadlines): Promise<WriteReply>;
  /** Deletes up to `limit` expired rows (and rows without an expiry, which Flask-Session also treats as expired). */
  abstract deleteExpiredBatch(limit: number): Promise<number>;
  protected abstract createTable(): Promise<void>;
  protected abstract createExpiryIndex(): Promise<void>;
  /** The table's columns and indexes, or undefined when it does not exist. */
  protected abstract describe(): Promise<Layout | undefined>;

  /**
   * Creates the table and its `expiry` index if missing (when `create`),
   * then checks that the table has what the statements need, failing with a
   * configuration error that says what is wrong.
   */
  async prepareTable(create: boolean): Promise<TableReport> {
    let created = false;
    if (create && !(await this.describe())) {
      await this.createTable();
      created = true;
    }
    const layout = await this.describe();
    if (!layout) {
      throw this.layoutError(
        `${this.db.address} has no table ${this.tableLabel}, and createTable is false: create it with Flask-Session's layout (see the README), or leave createTable on.`,
      );
    }
    const byName = new Map(layout.columns.map((column) => [column.name.toLowerCase(), column]));
    const missing = ['id', 'session_id', 'data', 'expiry'].filter((name) => !byName.has(name));
    if (missing.length > 0) {
      throw this.layoutError(`${this.tableLabel} lacks the column(s) ${missing.join(', ')}: it is not Flask-Session's session table (id, session_id, data, expiry).`);
    }
    if (!byName.get('id')!.generated) {
      throw this.layoutError(
        `${this.tableLabel}.id has no default: the table was made with a separate sequence (Flask-Session's SESSION_SQLALCHEMY_SEQUENCE), which this store does not fill in.`,
      );
    }
    const first = (index: Index) => index.columns[0]?.toLowerCase();
    if (!layout.indexes.some((index) => index.unique && index.columns.length === 1 && first(index) === 'session_id')) {
      throw this.layoutError(`${this.tableLabel}.session_id is not UNIQUE on its own: new sessions are inserted atomically against that constraint, as Flask-Session's table has it.`);
    }
    let indexCreated = false;
    const indexed = layout.indexes.some((index) => first(index) === 'expiry');
    if (!indexed && create) {
      await this.createExpiryIndex();
      indexCreated = true;
    }
    return { created, indexCreated, missingExpiryIndex: !indexed && !create, maxDataBytes: byName.get('data')!.maxBytes };
  }

  /**
   * Runs, once at setup, a statement of each kind the store uses (SELECT,
   * INSERT, UPDATE, DELETE) on no row: each fails at once when the
   * connection's user lacks the privilege (or the SQLite file is read-only),
   * so a missing grant fails the bootstrap instead of the first write.
   */
  async checkAccess(): Promise<void> {
    const t = this.qualified;
    await this.db.run(`SELECT data FROM ${t} WHERE 1 = 0`, []);
    await this.db.run(`INSERT INTO ${t} (session_id, data, expiry) SELECT session_id, data, expiry FROM ${t} WHERE 1 = 0`, []);
    await this.db.run(`UPDATE ${t} SET data = data, expiry = expiry WHERE 1 = 0`, []);
    await this.db.run(`DELETE FROM ${t} WHERE 1 = 0`, []);
  }

  /** What to grant the connection's user, for messages: `GRANT … ON "sessions" TO <user>`. */
  grantHint(): string {
    return `GRANT SELECT, INSERT, UPDATE, DELETE ON ${this.qualified} TO <the connection's user>`;
  }

  /** Runs a statement that reads the server's clock into `now` (ms), reporting it with its timing. */
  protected async timed(sql: string, params: readonly unknown[], deadline?: number): Promise<SqlResult> {
    const sentAt = Date.now();
    const result = await this.db.run(sql, params, deadline);
    const now = result.rows[0]?.now;
    if (now !== undefined && now !== null) this.onClock(this.clockValue(now), sentAt, Date.now());
    return result;
  }

  /** The `now` column as ms since the epoch. */
  protected clockValue(now: unknown): number {
    return Number(now);
  }

  private layoutError(problem: string): SessionConfigurationError {
    return SessionConfigurationError.create('table', problem, 'SqlSessionInterface');
  }
}

/** A row's `data` as bytes (a NULL one counts as no record). */
function bytes(value: unknown): Buffer | null {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return Buffer.from(String(value), 'utf8');
}

/** `YYYY-MM-DD HH:MM:SS.ffffff`, naive UTC: how SQLAlchemy writes a DateTime as text (SQLite) and what MySQL reads as a DATETIME(6). */
export function utcText(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2024-01-02T03:04:05.678Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}000`;
}

// --- PostgreSQL -----------------------------------------------------------------

/**
 * `g`: the server's clock read once per statement (`clock_timestamp()`, the
 * time the statement runs, not the time it was sent), as UTC without a time
 * zone (`utc`, what `expiry` holds) and whether it is before the deadline
 * given in parameter `$n` (ms since the epoch, server clock).
 */
const pgClock = (n: number) =>
  `g AS (SELECT c.at, c.at AT TIME ZONE 'UTC' AS utc, c.at < to_timestamp($${n}::float8 / 1000) AS ok FROM (SELECT clock_timestamp() AS at) AS c)`;
const PG_NOW = 'extract(epoch FROM g.at)::float8 * 1000 AS now';

export class PostgresStatements extends SessionStatements {
  private readonly sql = this.statements();

  protected quote(identifier: string): string {
    return `"${identifier.replaceAll('"', '""')}"`;
  }

  private statements() {
    const t = this.qualified;
    const live = (row: string) => `${row}.expiry > g.utc`;
    const expiry = (n: number) => `g.utc + $${n}::float8 * interval '1 second'`;
    return {
      read: `SELECT data FROM ${t} WHERE session_id = $1 AND expiry > (now() AT TIME ZONE 'UTC')`,
      // $1 id, $2 new bytes, $3 ttl, $4 expected bytes, $5 deadline. The live row is locked first (c), which reads
      // its latest version even when a concurrent write committed after this statement began: the current record
      // comes back as it is (when nothing was written), not as the statement's snapshot saw it.
      swap: `WITH ${pgClock(5)},
  c AS (SELECT s.id, s.data FROM ${t} AS s, g WHERE g.ok AND s.session_id = $1::varchar AND ${live('s')} FOR UPDATE OF s),
  w AS (UPDATE ${t} AS s SET data = $2::bytea, expiry = ${expiry(3)} FROM g, c WHERE s.id = c.id AND c.data = $4::bytea RETURNING 1)
SELECT g.ok, ${PG_NOW}, (SELECT count(*) FROM w)::int AS n,
  CASE WHEN g.ok AND NOT EXISTS (SELECT 1 FROM w) THEN (SELECT c.data FROM c) END AS current
FROM g`,
      // $1 id, $2 bytes, $3 ttl, $4 deadline. Inserts, or replaces an expired row; a live one is left and returned.
      insertIfAbsent: `WITH ${pgClock(4)},
  i AS (INSERT INTO ${t} AS s (session_id, data, expiry) SELECT $1::varchar, $2::bytea, ${expiry(3)} FROM g WHERE g.ok
        ON CONFLICT (session_id) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry
        WHERE s.expiry IS NULL OR s.expiry <= EXCLUDED.expiry - $3::float8 * interval '1 second'
        RETURNING 1)
SELECT g.ok, ${PG_NOW}, (SELECT count(*) FROM i)::int AS n,
  CASE WHEN g.ok AND NOT EXISTS (SELECT 1 FROM i)
    THEN (SELECT r.data FROM ${t} AS r WHERE r.session_id = $1::varchar AND ${live('r')}) END AS current
FROM g`,
      // $1 id, $2 bytes, $3 ttl, $4 deadline. The INSERT (and its nextval) runs only when the UPDATE found no row;
      // ON CONFLICT covers a row inserted concurrently in between.
      replace: `WITH ${pgClock(4)},
  u AS (UPDATE ${t} AS s SET data = $2::bytea, expiry = ${expiry(3)} FROM g WHERE g.ok AND s.session_id = $1::varchar RETURNING 1),
  i AS (INSERT INTO ${t} (session_id, data, expiry) SELECT $1::varchar, $2::bytea, ${expiry(3)} FROM g
        WHERE g.ok AND NOT EXISTS (SELECT 1 FROM u)
        ON CONFLICT (session_id) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry RETURNING 1)
SELECT g.ok, ${PG_NOW}, ((SELECT count(*) FROM u) + (SELECT count(*) FROM i))::int AS n FROM g`,
      // $1 id, $2 ttl, $3 deadline.
      refresh: `WITH ${pgClock(3)},
  w AS (UPDATE ${t} AS s SET expiry = ${expiry(2)} FROM g WHERE g.ok AND s.session_id = $1::varchar AND ${live('s')} RETURNING 1)
SELECT g.ok, ${PG_NOW}, (SELECT count(*) FROM w)::int AS n FROM g`,
      // $1 id, $2 deadline.
      remove: `WITH ${pgClock(2)},
  w AS (DELETE FROM ${t} AS s USING g WHERE g.ok AND s.session_id = $1::varchar RETURNING 1)
SELECT g.ok, ${PG_NOW}, (SELECT count(*) FROM w)::int AS n FROM g`,
      deleteExpired: `DELETE FROM ${t} WHERE id IN (SELECT id FROM ${t} WHERE expiry <= (now() AT TIME ZONE 'UTC') OR expiry IS NULL LIMIT $1)`,
    };
  }

  async probe(): Promise<{ version: string }> {
    const { rows } = await this.timed(`SELECT version() AS version, extract(epoch FROM clock_timestamp())::float8 * 1000 AS now`, []);
    return { version: String(rows[0]!.version) };
  }

  async read(storeId: string, deadline: number): Promise<Buffer | null> {
    const { rows } = await this.db.run(this.sql.read, [storeId], deadline);
    return rows.length > 0 ? bytes(rows[0]!.data) : null;
  }

  swap(storeId: string, expected: Buffer, value: Buffer, ttl: number, deadlines: Deadlines): Promise<WriteReply> {
    return this.write(this.sql.swap, [storeId, value, ttl, expected, deadlines.server], deadlines, true);
  }

  insertIfAbsent(storeId: string, value: Buffer, ttl: number, deadlines: Deadlines): Promise<WriteReply> {
    return this.write(this.sql.insertIfAbsent, [storeId, value, ttl, deadlines.server], deadlines, true);
  }

  replace(storeId: string, value: Buffer, ttl: number, deadlines: Deadlines): Promise<WriteReply> {
    return this.write(this.sql.replace, [storeId, value, ttl, deadlines.server], deadlines, false);
  }

  refresh(storeId: string, ttl: number, deadlines: Deadlines): Promise<WriteReply> {
    return this.write(this.sql.refresh, [storeId, ttl, deadlines.server], deadlines, false);
  }

  remove(storeId: string, deadlines: Deadlines): Promise<WriteReply> {
    return this.write(this.sql.remove, [storeId, deadlines.server], deadlines, false);
  }

  async deleteExpiredBatch(limit: number): Promise<number> {
    return (await this.db.run(this.sql.deleteExpired, [limit])).affected;
  }

  private async write(sql: string, params: readonly unknown[], deadlines: Deadlines, withCurrent: boolean): Promise<WriteReply> {
    const { rows } = await this.timed(sql, params, deadlines.local);
    const row = rows[0]!;
    if (!row.ok) return { written: false, late: true };
    const written = Number(row.n) > 0;
    return withCurrent && !written ? { written, late: false, current: bytes(row.current) } : { written, late: false };
  }

  /**
   * Also the sequence of a serial id (SQLAlchemy's): an INSERT on no row never
   * calls nextval(), so its privilege is asked for. An identity column's
   * sequence needs no privilege of its own.
   */
  override async checkAccess(): Promise<void> {
    await super.checkAccess();
    const { rows } = await this.db.run(
      `SELECT pg_get_serial_sequence($1, 'id') AS sequence,
              (SELECT a.attidentity <> '' FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attname = 'id') AS identity`,
      [this.qualified],
    );
    const sequence = rows[0]?.sequence as string | null | undefined;
    if (!sequence || rows[0]?.identity) return;
    const { rows: granted } = await this.db.run(`SELECT has_sequence_privilege($1, 'USAGE, UPDATE') AS ok`, [sequence]);
    if (!granted[0]?.ok) {
      throw SessionConfigurationError.create(
        'client',
        `the connection's user may not use the sequence ${sequence} that numbers ${this.tableLabel}.id, so no session could be created: GRANT USAGE ON SEQUENCE ${sequence} TO <the connection's user>.`,
        'SqlSessionInterface',
      );
    }
  }

  override grantHint(): string {
    return `${super.grantHint()} (and USAGE on the sequence of its id)`;
  }

  protected async createTable(): Promise<void> {
    // What SQLAlchemy creates for Flask-Session's model (serial = int4 with a sequence); the index follows.
    await this.createRacing(
      `CREATE TABLE IF NOT EXISTS ${this.qualified} (id SERIAL NOT NULL, session_id VARCHAR(255), data BYTEA, expiry TIMESTAMP WITHOUT TIME ZONE, PRIMARY KEY (id), UNIQUE (session_id))`,
    );
  }

  protected async createExpiryIndex(): Promise<void> {
    await this.createRacing(`CREATE INDEX IF NOT EXISTS ${this.quote(this.indexName)} ON ${this.qualified} (expiry)`);
  }

  /**
   * `IF NOT EXISTS` is not atomic on PostgreSQL: when processes create the same object at once, the losers fail with a
   * catalog collision (23505), "relation exists" (42P07) or "type exists" (42710, the table's row type). Once the
   * winner has committed the statement is a no-op, so it is run again, a few times.
   */
  private async createRacing(sql: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.db.run(sql, []);
        return;
      } catch (error) {
        if (attempt >= CREATE_ATTEMPTS || !isPgCode(error, '23505', '42P07', '42710')) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
      }
    }
  }

  protected async describe(): Promise<Layout | undefined> {
    const relation = this.qualified;
    const { rows: columns } = await this.db.run(
      `SELECT a.attname AS name, (a.attidentity <> '' OR d.adbin IS NOT NULL) AS generated
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
      [relation],
    );
    if (columns.length === 0) return undefined;
    const { rows: indexes } = await this.db.run(
      `SELECT i.indisunique AS "unique", ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n) AS columns
         FROM pg_index i WHERE i.indrelid = to_regclass($1) AND i.indpred IS NULL AND i.indexprs IS NULL`,
      [relation],
    );
    return {
      columns: columns.map((c) => ({ name: String(c.name), generated: Boolean(c.generated) })),
      indexes: indexes.map((i) => ({ unique: Boolean(i.unique), columns: i.columns as string[] })),
    };
  }
}

/** How many times a racing `CREATE … IF NOT EXISTS` is tried on PostgreSQL. */
const CREATE_ATTEMPTS = 5;

function isPgCode(error: unknown, ...codes: string[]): boolean {
  return codes.includes(String((driverCause(error) as { code?: unknown })?.code));
}

// --- MySQL and MariaDB -----------------------------------------------------------

/** The server's clock in µs since the epoch, independent of time zones. */
const MYSQL_NOW = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))";

export class MysqlStatements extends SessionStatements {
  private readonly sql = this.statements();

  protected quote(identifier: string): string {
    return `\`${identifier.replaceAll('`', '``')}\``;
  }

  protected override clockValue(now: unknown): number {
    return Number(now) / 1000;
  }

  private statements() {
    const t = this.qualified;
    // A table Flask-Session made has the server's default collation, case-insensitive on Debian's MariaDB
    // (utf8mb4_general_ci): the index finds the id, the binary comparison makes it exact.
    const id = 'session_id = ? AND CAST(session_id AS BINARY) = CAST(? AS BINARY)';
    const live = 'expiry > UTC_TIMESTAMP(6)';
    const inTime = 'UTC_TIMESTAMP(6) < ?';
    const expiry = 'UTC_TIMESTAMP(6) + INTERVAL ? SECOND';
    return {
      read: `SELECT session_id, data, ${MYSQL_NOW} AS now FROM ${t} WHERE session_id = ? AND ${live}`,
      /** The clock, and the live record's bytes (NULL when there is none): after a write that changed nothing. */
      current: `SELECT ${MYSQL_NOW} AS now, (SELECT data FROM ${t} WHERE ${id} AND ${live}) AS current`,
      clock: `SELECT ${MYSQL_NOW} AS now`,
      swap: `UPDATE ${t} SET data = ?, expiry = ${expiry} WHERE ${id} AND data = ? AND ${live} AND ${inTime}`,
      update: `UPDATE ${t} SET data = ?, expiry = ${expiry} WHERE ${id} AND ${inTime}`,
      // Only reached when the UPDATE found no row; ON DUPLICATE KEY covers a row inserted concurrently in between.
      insert: `INSERT INTO ${t} (session_id, data, expiry) SELECT ?, ?, ${expiry} FROM DUAL WHERE ${inTime}
        ON DUPLICATE KEY UPDATE data = ?, expiry = ${expiry}`,
      // Inserts, or replaces an expired row (expiry is still the old one when data's condition is evaluated, and in its own).
      insertIfAbsent: `INSERT INTO ${t} (session_id, data, expiry) SELECT ?, ?, ${expiry} FROM DUAL WHERE ${inTime}
        ON DUPLICATE KEY UPDATE data = IF(expiry IS NULL OR expiry <= UTC_TIMESTAMP(6), ?, data),
                                expiry = IF(expiry IS NULL OR expiry <= UTC_TIMESTAMP(6), ${expiry}, expiry)`,
      refresh: `UPDATE ${t} SET expiry = ${expiry} WHERE ${id} AND ${live} AND ${inTime}`,
      remove: `DELETE FROM ${t} WHERE ${id} AND ${inTime}`,
      deleteExpired: `DELETE FROM ${t} WHERE expiry <= UTC_TIMESTAMP(6) OR expiry IS NULL LIMIT ?`,
    };
  }

  async probe(): Promise<{ version: string }> {
    const { rows } = await this.timed(`SELECT VERSION() AS version, ${MYSQL_NOW} AS now`, []);
    return { version: String(rows[0]!.version) };
  }

  async read(storeId: string, deadline: number): Promise<Buffer | null> {
    const { rows } = await this.timed(this.sql.read, [storeId], deadline);
    const row = rows.find((r) => r.session_id === storeId);
    return row ? bytes(row.data) : null;
  }

  async swap(storeId: string, expected: Buffer, value: Buffer, ttl: number, deadlines: Deadlines): Promise<WriteReply> {
    const result = await this.db.run(this.sql.swap, [value, ttl, storeId, storeId, expected, utcText(deadlines.server)], deadlines.local);
    if (matchedRows(result) > 0) return { written: true, late: false };
    return this.unwritten(storeId, deadlines);
  }

  async insertIfAbsent(storeId: string, value: Buffer, ttl: number, deadlines: Deadlines): Promise<WriteReply> {
    const result = await this.db.run(this.sql.insertIfAbsent, [storeId, value, ttl, utcText(deadlines.server), value, ttl], deadlines.local);
    if (insertCounts(result).records === 0) return { written: false, late: true };
    // An expired row replaced counts 2. An insert counts 1, and so does a live row left as it was (with
    // CLIENT_FOUND_ROWS, mysql2's default): the row says which. It ran in time either way.
    if (result.affected === 2) return { written: true, late: false };
    const { rows } = await this.timed(this.sql.current, [storeId, storeId]);
    const current = bytes(rows[0]!.current);
    return current?.equals(value) ? { written: true, late: false } : { written: false, late: false, current };
  }

  async replace(storeId: string, value: Buffer, ttl: number, deadlines: Deadlines): Promise<WriteReply> {
    const updated = await this.db.run(this.sql.update, [value, ttl, storeId, storeId, utcText(deadlines.server)], deadlines.local);
    if (matchedRows(updated) > 0) return { written: true, late: false };
    const inserted = await this.db.run(this.sql.insert, [storeId, value, ttl, utcText(deadlines.server), value, ttl], deadlines.local);
    return insertCounts(inserted).records === 0 ? { written: false, late: true } : { written: true, late: false };
  }

  async refresh(storeId: string, ttl: number, deadlines: Deadlines): Promise<WriteReply> {
    const result = await this.db.run(this.sql.refresh, [ttl, storeId, storeId, utcText(deadlines.server)], deadlines.local);
    if (matchedRows(result) > 0) return { written: true, late: false };
    return { written: false, late: await this.pastDeadline(deadlines) };
  }

  async remove(storeId: string, deadlines: Deadlines): Promise<WriteReply> {
    const result = await this.db.run(this.sql.remove, [storeId, storeId, utcText(deadlines.server)], deadlines.local);
    if (result.affected > 0) return { written: true, late: false };
    return { written: false, late: await this.pastDeadline(deadlines) };
  }

  async deleteExpiredBatch(limit: number): Promise<number> {
    return (await this.db.run(this.sql.deleteExpired, [limit])).affected;
  }

  /**
   * Why a write changed no row, which MySQL does not say: too late, or the
   * record changed or gone (then its bytes now). An UPDATE cannot return the
   * clock it compared, so a second statement reads it; being later, it can
   * only call late a write that was in time, never the other way round.
   */
  private async unwritten(storeId: string, deadlines: Deadlines): Promise<WriteReply> {
    const { rows } = await this.timed(this.sql.current, [storeId, storeId]);
    const row = rows[0]!;
    if (this.clockValue(row.now) >= deadlines.server) return { written: false, late: true };
    return { written: false, late: false, current: bytes(row.current) };
  }

  private async pastDeadline(deadlines: Deadlines): Promise<boolean> {
    const { rows } = await this.timed(this.sql.clock, []);
    return this.clockValue(rows[0]!.now) >= deadlines.server;
  }

  protected async createTable(): Promise<void> {
    // Flask-Session's columns, three types chosen (SQLAlchemy reads them all as it reads its own):
    // session_id compared byte for byte (utf8mb4_bin: sids are case-sensitive, the server's default collation is not);
    // data MEDIUMBLOB (16 MiB; SQLAlchemy's BLOB holds 64 KiB, which a session can outgrow);
    // expiry DATETIME(6) (SQLAlchemy's DATETIME keeps whole seconds only).
    await this.db.run(
      `CREATE TABLE IF NOT EXISTS ${this.qualified} (
        id INTEGER NOT NULL AUTO_INCREMENT,
        session_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
        data MEDIUMBLOB,
        expiry DATETIME(6),
        PRIMARY KEY (id),
        UNIQUE (session_id)
      )`,
      [],
    );
  }

  protected async createExpiryIndex(): Promise<void> {
    try {
      await this.db.run(`CREATE INDEX ${this.quote(this.indexName)} ON ${this.qualified} (expiry)`, []);
    } catch (error) {
      // ER_DUP_KEYNAME: another process created it meanwhile.
      if ((error as { errno?: unknown })?.errno !== 1061) throw error;
    }
  }

  protected async describe(): Promise<Layout | undefined> {
    const where = 'TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?';
    const params = [this.name.schema ?? null, this.name.table];
    const { rows: columns } = await this.db.run(
      `SELECT COLUMN_NAME AS name, EXTRA AS extra, COLUMN_DEFAULT AS dflt, DATA_TYPE AS type, CHARACTER_MAXIMUM_LENGTH AS length
         FROM information_schema.COLUMNS WHERE ${where}`,
      params,
    );
    if (columns.length === 0) return undefined;
    const { rows: statistics } = await this.db.run(
      `SELECT INDEX_NAME AS name, NON_UNIQUE AS non_unique, COLUMN_NAME AS col
         FROM information_schema.STATISTICS WHERE ${where} ORDER BY INDEX_NAME, SEQ_IN_INDEX`,
      params,
    );
    const indexes = new Map<string, { unique: boolean; columns: string[] }>();
    for (const row of statistics) {
      const name = String(row.name);
      if (!indexes.has(name)) indexes.set(name, { unique: Number(row.non_unique) === 0, columns: [] });
      indexes.get(name)!.columns.push(String(row.col));
    }
    return {
      columns: columns.map((c) => ({
        name: String(c.name),
        generated: /auto_increment/i.test(String(c.extra ?? '')) || c.dflt !== null,
        // BLOB 65,535, MEDIUMBLOB 16,777,215: the server refuses (strict mode) or cuts (otherwise) anything longer.
        maxBytes: /blob|binary/i.test(String(c.type)) && c.length !== null ? Number(c.length) : undefined,
      })),
      indexes: [...indexes.values()],
    };
  }
}

/** Rows an UPDATE matched ("Rows matched: 1  Changed: 0"), whatever the CLIENT_FOUND_ROWS flag makes affectedRows. */
function matchedRows(result: SqlResult): number {
  const matched = /Rows matched: (\d+)/.exec(result.info);
  return matched ? Number(matched[1]) : result.affected;
}

/** An INSERT … SELECT's rows selected ("Records: 0" when its deadline condition was false). */
function insertCounts(result: SqlResult): { records: number } {
  const records = /Records: (\d+)/.exec(result.info);
  // Without the info text: 1 inserted, 2 updated, 0 nothing selected (or, without CLIENT_FOUND_ROWS, an update to the same values).
  return { records: records ? Number(records[1]) : result.affected > 0 ? 1 : 0 };
}

// --- SQLite ---------------------------------------------------------------------

/**
 * SQLite runs in this process: its clock is ours, and a statement runs within
 * the call (better-sqlite3 is synchronous), so the deadline is checked by the
 * connection just before. Expiry is text, as SQLAlchemy stores a DateTime
 * there (`YYYY-MM-DD HH:MM:SS.ffffff`, naive UTC), so text comparison orders
 * it. Upserts take no id here: a rowid table without AUTOINCREMENT numbers a
 * new row max(id) + 1 and keeps no counter.
 */
export class SqliteStatements extends SessionStatements {
  private readonly sql = this.statements();

  protected quote(identifier: string): string {
    return `"${identifier.replaceAll('"', '""')}"`;
  }

  private statements() {
    const t = this.qualified;
    return {
      read: `SELECT data FROM ${t} WHERE session_id = ? AND expiry > ?`,
      swap: `UPDATE ${t} SET data = ?, expiry = ? WHERE session_id = ? AND data = ? AND expiry > ?`,
      insertIfAbsent: `INSERT INTO ${t} (session_id, data, expiry) VALUES (?, ?, ?)
        ON CONFLICT (session_id) DO UPDATE SET data = excluded.data, expiry = excluded.expiry WHERE expiry IS NULL OR expiry <= ?`,
      replace: `INSERT INTO ${t} (session_id, data, expiry) VALUES (?, ?, ?)
        ON CONFLICT (session_id) DO UPDATE SET data = excluded.data, expiry = excluded.expiry`,
      refresh: `UPDATE ${t} SET expiry = ? WHERE session_id = ? AND expiry > ?`,
      remove: `DELETE FROM ${t} WHERE session_id = ?`,
      deleteExpired: `DELETE FROM ${t} WHERE id IN (SELECT id FROM ${t} WHERE expiry <= ? OR expiry IS NULL LIMIT ?)`,
    };
  }

  async probe(): Promise<{ version: string }> {
    const { rows } = await this.db.run('SELECT sqlite_version() AS version', []);
    return { version: `SQLite ${String(rows[0]!.version)}` };
  }

  async read(storeId: string, deadline: number): Promise<Buffer | null> {
    const { rows } = await this.db.run(this.sql.read, [storeId, utcText(Date.now())], deadline);
    return rows.length > 0 ? bytes(rows[0]!.data) : null;
  }

  async swap(storeId: string, expected: Buffer, value: Buffer, ttl: number, deadlines: Deadlines): Promise<WriteReply> {
    const now = Date.now();
    const result = await this.db.run(this.sql.swap, [value, utcText(now + ttl * 1000), storeId, expected, utcText(now)], deadlines.local);
    if (result.affected > 0) return { written: true, late: false };
    return { written: false, late: false, current: await this.read(storeId, Infinity) };
  }

  async insertIfAbsent(storeId: string, value: Buffer, ttl: number, deadlines: Deadlines): Promise<WriteReply> {
    const now = Date.now();
    const result = await this.db.run(this.sql.insertIfAbsent, [storeId, value, utcText(now + ttl * 1000), utcText(now)], deadlines.local);
    if (result.affected > 0) return { written: true, late: false };
    return { written: false, late: false, current: await this.read(storeId, Infinity) };
  }

  async replace(storeId: string, value: Buffer, ttl: number, deadlines: Deadlines): Promise<WriteReply> {
    await this.db.run(this.sql.replace, [storeId, value, utcText(Date.now() + ttl * 1000)], deadlines.local);
    return { written: true, late: false };
  }

  async refresh(storeId: string, ttl: number, deadlines: Deadlines): Promise<WriteReply> {
    const now = Date.now();
    const result = await this.db.run(this.sql.refresh, [utcText(now + ttl * 1000), storeId, utcText(now)], deadlines.local);
    return { written: result.affected > 0, late: false };
  }

  async remove(storeId: string, deadlines: Deadlines): Promise<WriteReply> {
    const result = await this.db.run(this.sql.remove, [storeId], deadlines.local);
    return { written: result.affected > 0, late: false };
  }

  async deleteExpiredBatch(limit: number): Promise<number> {
    return (await this.db.run(this.sql.deleteExpired, [utcText(Date.now()), limit])).affected;
  }

  protected async createTable(): Promise<void> {
    // Exactly what SQLAlchemy creates (id is the rowid).
    await this.db.run(
      `CREATE TABLE IF NOT EXISTS ${this.qualified} (id INTEGER NOT NULL, session_id VARCHAR(255), data BLOB, expiry DATETIME, PRIMARY KEY (id), UNIQUE (session_id))`,
      [],
    );
  }

  protected async createExpiryIndex(): Promise<void> {
    // In SQLite the index's name carries the schema, the table's does not.
    const index = this.name.schema === undefined ? this.quote(this.indexName) : `${this.quote(this.name.schema)}.${this.quote(this.indexName)}`;
    await this.db.run(`CREATE INDEX IF NOT EXISTS ${index} ON ${this.quote(this.name.table)} (expiry)`, []);
  }

  protected async describe(): Promise<Layout | undefined> {
    const schema = this.name.schema ?? 'main';
    const { rows: columns } = await this.db.run('SELECT name, type, pk FROM pragma_table_info(?, ?)', [this.name.table, schema]);
    if (columns.length === 0) return undefined;
    const { rows: indexes } = await this.db.run(
      `SELECT l."unique" AS uniq, (SELECT json_group_array(i.name) FROM (SELECT name FROM pragma_index_info(l.name, ?) ORDER BY seqno) AS i) AS cols
         FROM pragma_index_list(?, ?) AS l WHERE l.partial = 0`,
      [schema, this.name.table, schema],
    );
    return {
      // An INTEGER PRIMARY KEY is the rowid: SQLite numbers it.
      columns: columns.map((c) => ({ name: String(c.name), generated: String(c.name).toLowerCase() !== 'id' || (Number(c.pk) === 1 && /^integer$/i.test(String(c.type))) })),
      indexes: indexes.map((i) => ({ unique: Number(i.uniq) === 1, columns: JSON.parse(String(i.cols)) as string[] })),
    };
  }
}
