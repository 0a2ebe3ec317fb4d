import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Python peers that read and write sessions the way Flask-Session 0.8's
 * SQLAlchemy and DynamoDB backends do (test/compat/flask_session_*_peer.py),
 * against the real servers the tests start. Asynchronous, unlike flask.ts: a
 * test may need its event loop (a pool's keep-alive, an in-process server)
 * while Python runs.
 */

/** Debian's interpreter: the python3-* packages install for it, not for other pythons on the PATH. */
const PYTHON = process.env.FLASK_PYTHON ?? '/usr/bin/python3';

const PEERS = {
  sql: fileURLToPath(new URL('../compat/flask_session_sql_peer.py', import.meta.url)),
  dynamodb: fileURLToPath(new URL('../compat/flask_session_dynamodb_peer.py', import.meta.url)),
};

/** The Debian package that provides each Python module the peers import. */
const DEBIAN_PACKAGES: Record<string, string> = {
  sqlalchemy: 'python3-sqlalchemy',
  psycopg2: 'python3-psycopg2',
  pymysql: 'python3-pymysql',
  msgpack: 'python3-msgpack',
  boto3: 'python3-boto3',
  botocore: 'python3-boto3',
};

/** A session value with describe_value's $-markers ({$bytes}, {$date}) for the types JSON lacks. */
export type DescribedSession = Record<string, unknown>;

interface RecordOptions {
  /** Flask-Session's SESSION_KEY_PREFIX. Default: 'session:'. */
  key_prefix?: string;
}

interface WriteOptions extends RecordOptions {
  sid: string;
  /** Flask-Session's SESSION_SERIALIZATION_FORMAT. Default: 'msgpack'. */
  format?: 'msgpack' | 'json';
  /** What to store; default: the peers' sample session (with a date and bytes in msgpack). */
  session?: DescribedSession;
  /** Seconds until expiry (negative: already expired). Default: 31 days, Flask's PERMANENT_SESSION_LIFETIME. */
  lifetime?: number;
}

interface ReadOptions extends RecordOptions {
  sid: string;
  /** The format tried first. Default: 'msgpack'. */
  format?: 'msgpack' | 'json';
}

/** Which table, for every SQL command. */
export interface SqlTarget {
  /** An SQLAlchemy URL: the servers' `sqlalchemyUrl`, or `sqlite:////absolute/path.db`. */
  url: string;
  /** Flask-Session's SESSION_SQLALCHEMY_TABLE. Default: 'sessions'. */
  table?: string;
  /** SESSION_SQLALCHEMY_SCHEMA. Default: none. */
  schema?: string;
  /** SESSION_SQLALCHEMY_SEQUENCE. Default: none. */
  sequence?: string;
}

export type SqlPeerCommand =
  | ({ op: 'create' } & SqlTarget)
  | ({ op: 'write' } & SqlTarget & WriteOptions)
  | ({ op: 'read' } & SqlTarget & ReadOptions)
  | ({ op: 'cleanup' } & SqlTarget)
  | ({ op: 'inspect' } & SqlTarget);

export interface SqlPeerResults {
  create: { ok: true };
  /** The expiry written, naive UTC as Flask-Session stores it (ISO 8601, six fractional digits). */
  write: { expiry: string };
  read: { session: DescribedSession | null; row: { id: number; expiry: string } | null; deleted_expired: boolean };
  cleanup: { deleted: number };
  inspect: {
    columns: Array<{ name: string; type: string; nullable: boolean }>;
    primary_key: string[];
    unique: string[][];
    indexes: Array<{ columns: string[]; unique: boolean }>;
  };
}

/** Which table, for every DynamoDB command. */
export interface DynamoDBTarget {
  /** boto3.resource("dynamodb", **config): a DynaliteServer's `boto3Config`. */
  config: { endpoint_url: string; region_name: string; aws_access_key_id: string; aws_secret_access_key: string };
  /** Flask-Session's SESSION_DYNAMODB_TABLE. Default: 'Sessions'. */
  table?: string;
}

export type DynamoDBPeerCommand =
  | ({ op: 'create' } & DynamoDBTarget)
  | ({ op: 'write' } & DynamoDBTarget & WriteOptions)
  | ({ op: 'read' } & DynamoDBTarget & ReadOptions);

export interface DynamoDBPeerResults {
  create: { created: boolean };
  /** The `expiration` number written (epoch seconds with a fraction, as Decimal(float) prints it). */
  write: { expiration: string };
  read: { session: DescribedSession | null; expiration: string | null; types: Record<string, string> };
}

/** Runs one command against Flask-Session 0.8's SQLAlchemy record code. */
export function flaskSessionSql<C extends SqlPeerCommand>(command: C): Promise<SqlPeerResults[C['op']]> {
  return python('sql', command);
}

/**
 * Runs one command against Flask-Session 0.8's DynamoDB record code. Python
 * runs with TZ=UTC: 0.8.0 computes `expiration` from a naive UTC datetime's
 * timestamp(), which is off by the machine's UTC offset otherwise.
 */
export function flaskSessionDynamoDB<C extends DynamoDBPeerCommand>(command: C): Promise<DynamoDBPeerResults[C['op']]> {
  return python('dynamodb', command, { TZ: 'UTC' });
}

function python<T>(peer: keyof typeof PEERS, command: object, env: NodeJS.ProcessEnv = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [PEERS[peer]], { env: { ...process.env, ...env }, timeout: 60_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'ENOENT'
          ? new Error(`The Flask-Session peers need Debian's python3 at ${PYTHON}: run "sudo apt-get install python3" (or set FLASK_PYTHON).`)
          : error,
      );
    });
    child.once('close', (code, signal) => {
      if (code === 0) {
        resolve(JSON.parse(stdout) as T);
        return;
      }
      const missing = /No module named '([\w.]+)'/.exec(stderr)?.[1]?.split('.')[0];
      if (missing && DEBIAN_PACKAGES[missing]) {
        reject(
          new Error(
            `The Flask-Session ${peer} peer needs Python's ${missing}: run "sudo apt-get install ${DEBIAN_PACKAGES[missing]}" ` +
              `(or set FLASK_PYTHON to a python3 that has it).\n${stderr}`,
          ),
        );
        return;
      }
      reject(new Error(`The Flask-Session ${peer} peer failed (${signal ?? `exit ${code}`}): ${stderr}`));
    });
    child.stdin.end(JSON.stringify(command));
  });
}
