import { createRequire } from 'node:module';
import { request } from 'node:http';
import { join } from 'node:path';
import { freePort } from './loopback-servers.js';
import { ManagedServer, type ServerCommand } from './managed-server.js';

/** Options of {@link DynaliteServer.start}. */
export interface DynaliteOptions {
  /**
   * Keep tables and items in LevelDB files in the server's folder, so they
   * survive {@link ManagedServer.stop} and a new start, as DynamoDB's would.
   * `false` keeps them in memory (lost on stop). Default: `true`.
   */
  persistent?: boolean;
  /** How long a new table stays CREATING before it is ACTIVE. Default: 500 (dynalite's own default). */
  createTableMs?: number;
}

/**
 * DynamoDB for tests: `dynalite` (npm, a devDependency) in a child Node
 * process on 127.0.0.1 and a free port, so it can be paused, killed and
 * started again on the same port like the database servers (and so a
 * synchronous Python peer can reach it while the test waits).
 *
 * Connect with {@link clientConfig} (`new DynamoDBClient(…)`) or
 * {@link boto3Config} (`boto3.resource("dynamodb", **config)`). dynalite
 * checks that requests are signed but not the signature: any credentials do.
 * It has no UpdateTimeToLive (it answers UnknownOperationException) and
 * never expires items.
 */
export class DynaliteServer extends ManagedServer {
  protected readonly name = 'dynalite';
  protected readonly debianPackage = 'nodejs';
  readonly region = 'us-east-1';
  readonly credentials = { accessKeyId: 'nest-session-test', secretAccessKey: 'nest-session-test' } as const;
  private readonly cli: string;

  /** Starts a new server; its data goes when {@link close} is called. */
  static async start(options: DynaliteOptions = {}): Promise<DynaliteServer> {
    return ManagedServer.started(new DynaliteServer(await freePort(), options));
  }

  private constructor(
    port: number,
    private readonly options: DynaliteOptions,
  ) {
    super(port);
    try {
      this.cli = createRequire(import.meta.url).resolve('dynalite/cli.js');
    } catch {
      throw new Error('These tests need the dynalite package (a devDependency): run "npm install".');
    }
  }

  /** `http://127.0.0.1:port`. */
  get endpoint(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** Configuration for `@aws-sdk/client-dynamodb`'s `DynamoDBClient`. */
  get clientConfig(): { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } } {
    return { endpoint: this.endpoint, region: this.region, credentials: { ...this.credentials } };
  }

  /** Keyword arguments for boto3's `resource("dynamodb", …)` / `client("dynamodb", …)`. */
  get boto3Config(): { endpoint_url: string; region_name: string; aws_access_key_id: string; aws_secret_access_key: string } {
    return {
      endpoint_url: this.endpoint,
      region_name: this.region,
      aws_access_key_id: this.credentials.accessKeyId,
      aws_secret_access_key: this.credentials.secretAccessKey,
    };
  }

  protected async initialise(): Promise<void> {}

  protected command(): ServerCommand {
    const args = [this.cli, '--host', this.host, '--port', String(this.port)];
    if (this.options.persistent !== false) args.push('--path', join(this.dir, 'leveldb'));
    if (this.options.createTableMs !== undefined) args.push('--createTableMs', String(this.options.createTableMs));
    return { command: process.execPath, args };
  }

  /** Any HTTP answer (dynalite refuses an unsigned request with a 400) means it is serving. */
  protected ready(): Promise<boolean> {
    return new Promise((resolve) => {
      const probe = request({ host: this.host, port: this.port, method: 'POST', path: '/', timeout: 2000 }, (response) => {
        response.resume();
        resolve(true);
      });
      probe.once('error', () => resolve(false));
      probe.once('timeout', () => probe.destroy());
      probe.end();
    });
  }
}
