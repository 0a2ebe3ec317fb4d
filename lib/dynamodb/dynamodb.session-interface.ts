import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { OnModuleInit } from '@nestjs/common';
import {
  ServerSideSessionInterface,
  type ServerSideSessionOptions,
  type StoreCall,
  type StoredRecord,
  type SwapOutcome,
} from '../server-side/server-side.session-interface.js';
import { SwapQueue } from '../server-side/swap-queue.js';
import { SessionConfigurationError, describeOptionValue as describe } from '../session.errors.js';

/** @publicApi */
export interface DynamoDBSessionOptions extends ServerSideSessionOptions {
  /**
   * An AWS SDK v3 `DynamoDBClient` (`@aws-sdk/client-dynamodb`), or a
   * `DynamoDBDocumentClient` built on one (it shares the client's
   * configuration and middleware, and the interface sends only low-level
   * commands through it, so its marshalling options play no part). The
   * interface never destroys it. Flask-Session: `SESSION_DYNAMODB` (a boto3
   * resource there). Required.
   */
  client: DynamoDBClient;
  /** The table. Default `'Sessions'` (Flask-Session's `SESSION_DYNAMODB_TABLE`). */
  tableName?: string;
  /**
   * Create the table at first use if it is missing (hash key `id` of type S,
   * on-demand billing), wait until it is active, and enable TTL on
   * `expiration`; a service that refuses TTL (dynalite, or missing IAM rights)
   * is logged and the interface goes on. `false` expects the table to exist:
   * a missing table fails the bootstrap, naming it (one deleted later fails
   * each session request with a 500 saying so).
   * Default `false` (Flask-Session 0.8 always tries to create it; its
   * development branch's `SESSION_DYNAMODB_TABLE_EXISTS` is the opposite
   * switch).
   */
  createTable?: boolean;
}

type Sdk = typeof import('@aws-sdk/client-dynamodb');
type Item = Record<string, AttributeValue>;
/** What the interface needs of a command: the SDK's middleware stack, to fail fast on a refused connection. */
type SendableCommand = { middlewareStack: { add(middleware: unknown, options: object): void } };
type SendOptions = { abortSignal: AbortSignal };
type Sender = { send(command: SendableCommand, options: SendOptions): Promise<unknown> };

/**
 * Node's codes for a connection that cannot be made at all: the SDK would
 * retry them with back-off, which only delays the 503.
 */
/** "Only if absent" tries again this often when the item vanishes between its write and its read. */
const MAX_ABSENT_ATTEMPTS = 10;
/** What DynamoDB answers to credentials it does not accept, or that may not use the table. */
const REFUSED_CREDENTIALS = new Set(['AccessDeniedException', 'UnrecognizedClientException', 'InvalidSignatureException', 'MissingAuthenticationTokenException']);

/** Each command of the table set-up (createTable) gives up after this long; the next request tries again. */
const SETUP_COMMAND_TIMEOUT_MS = 30_000;
/** How long the set-up waits for a new table to become active. */
const SETUP_ACTIVE_TIMEOUT_MS = 5 * 60_000;

const CANNOT_CONNECT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND']);

/**
 * Placed in each command's middleware stack at the deserialize step, which
 * runs once per attempt inside the SDK's retry loop: a connection that cannot
 * be made becomes an error the retry strategy classes as not retryable (no
 * `code`, no `cause`), so the request fails at once with the address.
 */
const FAIL_FAST_ON_REFUSAL = {
  middleware: (next: (args: unknown) => Promise<unknown>) => async (args: unknown) => {
    try {
      return await next(args);
    } catch (error) {
      const code = (error as { code?: string })?.code;
      if (!code || !CANNOT_CONNECT.has(code)) throw error;
      throw Object.assign(new Error(`DynamoDB cannot be reached: ${(error as Error).message}`), { name: 'DynamoDBUnreachable' });
    }
  },
  options: { step: 'deserialize', name: 'nestSessionFailFastOnRefusal', priority: 'high', override: true },
};

/**
 * Sessions in DynamoDB, in Flask-Session's layout: one item per session in
 * `tableName`, hash key `id` (S) = `keyPrefix + sid`, `val` (B) the msgpack
 * or JSON of the session dict, `expiration` (N) its expiry in Unix epoch
 * seconds, the attribute DynamoDB's TTL deletes by.
 *
 * - `expiration` is written in whole seconds (the expiry rounded up, from this
 *   host's UTC clock). Flask-Session 0.8.0 writes `Decimal(naive_utc.timestamp())`:
 *   a fraction with ~30 digits, and off by the host's UTC offset unless it
 *   runs with TZ=UTC. Both are read here.
 * - DynamoDB's TTL deletes expired items up to days late, so every read
 *   checks `expiration` itself; reads are strongly consistent.
 * - A changed session is written by compare-and-set (a condition on `val`),
 *   a refresh only if the item is still there and live, so a logout (a
 *   delete) is never undone and a refresh never brings a session back.
 *
 * Failures: each command carries an `AbortSignal` set to the request's
 * deadline, so nothing is sent, retried or waited on past it, and a refused
 * connection fails at once instead of after the SDK's retries. DynamoDB's
 * conditions cannot read the server's clock, so a write that had already
 * reached the service before the deadline cannot be refused there: a service
 * that holds it (a paused dynalite; a stall) applies it when it resumes, even
 * though the client got a 503 (see the README).
 *
 * @example
 * const client = new DynamoDBClient({ region: 'eu-west-1' });
 * SessionModule.forRoot({ interface: new DynamoDBSessionInterface({ client }), secretKey })
 *
 * @publicApi
 */
export class DynamoDBSessionInterface extends ServerSideSessionInterface implements OnModuleInit {
  protected readonly storeName = 'DynamoDB';
  readonly client: DynamoDBClient;
  readonly tableName: string;
  readonly createTable: boolean;
  /** The SDK's command classes, loaded at first use (the entry imports only types, so it never loads the SDK itself). */
  private sdk?: Promise<Sdk>;
  /** The table set up (createTable), once; cleared on failure so that a later request tries again. */
  private tableReady?: Promise<void>;
  private readonly swaps = new SwapQueue();
  /** A write is not sent with less of the budget left than this: it could not be answered in time, yet DynamoDB would apply it. */
  private readonly margin: number;

  constructor(options: DynamoDBSessionOptions) {
    super(options, ['client', 'tableName', 'createTable']);
    const fail = SessionConfigurationError.thrower('DynamoDBSessionInterface');
    const client = options.client as unknown;
    if (!isDynamoDBClient(client)) fail('client', expectedClient(client));
    const tableName = options.tableName ?? 'Sessions';
    // DynamoDB's own rule for table names.
    if (typeof tableName !== 'string' || !/^[A-Za-z0-9_.-]{3,255}$/.test(tableName)) {
      fail('tableName', `expected a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -), got ${describe(tableName)}.`);
    }
    const createTable = options.createTable ?? false;
    if (typeof createTable !== 'boolean') fail('createTable', `expected true or false, got ${describe(createTable)}.`);
    this.client = options.client;
    this.tableName = tableName;
    this.createTable = createTable;
    this.margin = Math.min(100, Math.max(5, this.storeTimeout / 10));
  }

  /**
   * Nest calls this at bootstrap (when the interface is a provider, as
   * `SessionModule.forRoot` makes it). Without `createTable`, one read of a
   * key no session has checks that the table exists and that the credentials
   * are accepted: either failing fails the bootstrap, naming the option; a
   * DynamoDB that cannot be reached within 5 × `storeTimeout` is only logged.
   */
  async onModuleInit(): Promise<void> {
    if (this.createTable) return; // made, if missing, at first use
    const check = (sdk: Sdk) => new sdk.GetItemCommand({ TableName: this.tableName, Key: this.key(`${this.keyPrefix}bootstrap-check`) });
    await this.checkAtBootstrap('DynamoDB', (deadline) => this.send({ deadline }, check, 'read'));
  }

  protected async readRecord(storeId: string, call: StoreCall): Promise<StoredRecord | null> {
    const read = (sdk: Sdk) => new sdk.GetItemCommand({ TableName: this.tableName, Key: this.key(storeId), ConsistentRead: true });
    const { Item } = (await this.send(call, read, 'read')) as { Item?: Item };
    return liveRecord(Item);
  }

  protected swapRecord(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome> {
    return this.swaps.run(storeId, expected, value, call, () => this.conditionalWrite(storeId, expected, value, ttlSeconds, call));
  }

  /** The compare-and-set itself: UpdateItem on `val` as expected, or PutItem only if absent. */
  private async conditionalWrite(storeId: string, expected: StoredRecord | null, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<SwapOutcome> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (expected) {
          await this.send(call, (sdk) =>
            new sdk.UpdateItemCommand({
              TableName: this.tableName,
              Key: this.key(storeId),
              UpdateExpression: 'SET #val = :val, #expiration = :expiration',
              ConditionExpression: '#val = :expected AND (attribute_not_exists(#expiration) OR #expiration > :now)',
              ExpressionAttributeNames: { '#val': 'val', '#expiration': 'expiration' },
              ExpressionAttributeValues: { ':val': { B: value }, ':expiration': expiration(ttlSeconds), ':expected': { B: expected.value }, ':now': now() },
              ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            }),
          );
        } else {
          // "Only if absent": no item, or one that is not live (expired, TTL not having deleted it yet).
          await this.send(call, (sdk) =>
            new sdk.PutItemCommand({
              TableName: this.tableName,
              Item: this.item(storeId, value, ttlSeconds),
              ConditionExpression: 'attribute_not_exists(#val) OR #expiration <= :now',
              ExpressionAttributeNames: { '#val': 'val', '#expiration': 'expiration' },
              ExpressionAttributeValues: { ':now': now() },
              ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            }),
          );
        }
        return { swapped: true };
      } catch (error) {
        if ((error as Error)?.name !== 'ConditionalCheckFailedException') throw error;
        // DynamoDB returns the item that failed the condition; dynalite does not, so it is read then.
        const returned = (error as { Item?: Item }).Item;
        const current = returned ? liveRecord(returned) : await this.readRecord(storeId, call);
        // Absent again (deleted or expired meanwhile): "only if absent" tries again.
        if (current === null && expected === null && attempt < MAX_ABSENT_ATTEMPTS) continue;
        return { swapped: false, current };
      }
    }
  }

  protected async replaceRecord(storeId: string, value: Buffer, ttlSeconds: number, call: StoreCall): Promise<void> {
    await this.send(call, (sdk) => new sdk.PutItemCommand({ TableName: this.tableName, Item: this.item(storeId, value, ttlSeconds) }));
  }

  protected async deleteRecord(storeId: string, call: StoreCall): Promise<void> {
    await this.send(call, (sdk) => new sdk.DeleteItemCommand({ TableName: this.tableName, Key: this.key(storeId) }));
  }

  protected async refreshRecord(storeId: string, ttlSeconds: number, call: StoreCall): Promise<void> {
    try {
      await this.send(call, (sdk) =>
        new sdk.UpdateItemCommand({
          TableName: this.tableName,
          Key: this.key(storeId),
          UpdateExpression: 'SET #expiration = :expiration',
          // Only a live item: an UpdateItem without a condition would create one holding just id and expiration.
          ConditionExpression: 'attribute_exists(#id) AND (attribute_not_exists(#expiration) OR #expiration > :now)',
          ExpressionAttributeNames: { '#id': 'id', '#expiration': 'expiration' },
          ExpressionAttributeValues: { ':expiration': expiration(ttlSeconds), ':now': now() },
        }),
      );
    } catch (error) {
      if ((error as Error)?.name !== 'ConditionalCheckFailedException') throw error;
    }
  }

  private key(storeId: string): Item {
    return { id: { S: storeId } };
  }

  private item(storeId: string, value: Buffer, ttlSeconds: number): Item {
    return { id: { S: storeId }, val: { B: value }, expiration: expiration(ttlSeconds) };
  }

  /**
   * Sends one command within the request's budget: the table first if asked
   * (`createTable`), then the command with an `AbortSignal` that fires at the
   * deadline (the SDK then sends no further attempt and waits out no back-off),
   * failing at once on a refused connection. A write is not sent at all
   * within {@link margin} of the deadline.
   */
  private async send(call: StoreCall, build: (sdk: Sdk) => SendableCommand, kind: 'read' | 'write' = 'write'): Promise<unknown> {
    const sdk = await this.loadSdk();
    if (this.createTable) await (this.tableReady ??= this.setUpTable(sdk));
    const left = call.deadline - Date.now();
    // The request was already answered (a 503), or soon will be: nothing may be sent for it now.
    if (left <= 0) throw new Error("the request's store budget ran out before the command was sent");
    if (kind === 'write' && left <= this.margin) {
      throw new Error(`only ${left} ms of the request's store budget were left, too little to send a write (it would be answered late but applied)`);
    }
    const command = build(sdk);
    command.middlewareStack.add(FAIL_FAST_ON_REFUSAL.middleware, FAIL_FAST_ON_REFUSAL.options);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), left);
    try {
      return await (this.client as unknown as Sender).send(command, { abortSignal: controller.signal });
    } catch (error) {
      throw this.explain(error);
    } finally {
      clearTimeout(timer);
    }
  }

  private loadSdk(): Promise<Sdk> {
    return (this.sdk ??= import('@aws-sdk/client-dynamodb').catch((error: unknown) => {
      this.sdk = undefined;
      throw new Error(`DynamoDBSessionInterface needs the @aws-sdk/client-dynamodb package (npm install @aws-sdk/client-dynamodb): ${(error as Error)?.message}`);
    }));
  }

  /**
   * Errors a log reader can act on; the rest pass as they are. A missing
   * table and credentials DynamoDB refuses are the developer's to fix: a
   * configuration error (500, or a failed bootstrap), never a 503.
   */
  private explain(error: unknown): unknown {
    const name = (error as Error)?.name;
    if (name === 'ResourceNotFoundException') {
      return SessionConfigurationError.create(
        'tableName',
        `the DynamoDB table "${this.tableName}" does not exist: create it (hash key "id" of type S) or pass createTable: true`,
        'DynamoDBSessionInterface',
      );
    }
    if (REFUSED_CREDENTIALS.has(name)) {
      return SessionConfigurationError.create(
        'client',
        `DynamoDB refused the client's credentials (${name}: ${(error as Error).message}); the store needs GetItem, PutItem, UpdateItem and DeleteItem on "${this.tableName}"`,
        'DynamoDBSessionInterface',
      );
    }
    if (name === 'AbortError') return new Error("the DynamoDB request was cancelled at the request's deadline");
    return error;
  }

  /**
   * Creates the table if it is missing and waits until it is active, then
   * enables TTL on `expiration`. Runs once, not bound to a request (a new
   * table takes seconds; the requests meanwhile wait within their own budgets).
   */
  private async setUpTable(sdk: Sdk): Promise<void> {
    try {
      try {
        await this.sendSetUp(
          new sdk.CreateTableCommand({
            TableName: this.tableName,
            AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
            KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
            BillingMode: 'PAY_PER_REQUEST',
          }),
        );
        this.logger.log(`Created the DynamoDB table "${this.tableName}".`);
      } catch (error) {
        if ((error as Error)?.name !== 'ResourceInUseException') throw error;
      }
      const giveUp = Date.now() + SETUP_ACTIVE_TIMEOUT_MS;
      for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
        const { Table } = (await this.sendSetUp(new sdk.DescribeTableCommand({ TableName: this.tableName }))) as { Table?: { TableStatus?: string } };
        if (Table?.TableStatus === 'ACTIVE') break;
        if (Date.now() > giveUp) throw new Error(`the table is still ${Table?.TableStatus} after ${SETUP_ACTIVE_TIMEOUT_MS / 1000} s`);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
      await this.enableTtl(sdk);
    } catch (error) {
      this.tableReady = undefined;
      // Credentials DynamoDB refuses: a configuration error (500), as for every command.
      if (REFUSED_CREDENTIALS.has((error as Error)?.name)) throw this.explain(error);
      throw new Error(`setting up the DynamoDB table "${this.tableName}" (createTable) failed: ${(error as Error)?.name}: ${(error as Error)?.message}`);
    }
  }

  /** A set-up command: not bound to a request, but not waited on forever either. */
  private async sendSetUp(command: SendableCommand): Promise<unknown> {
    command.middlewareStack.add(FAIL_FAST_ON_REFUSAL.middleware, FAIL_FAST_ON_REFUSAL.options);
    return (this.client as unknown as Sender).send(command, { abortSignal: AbortSignal.timeout(SETUP_COMMAND_TIMEOUT_MS) });
  }

  private async enableTtl(sdk: Sdk): Promise<void> {
    try {
      const { TimeToLiveDescription: ttl } = (await this.sendSetUp(new sdk.DescribeTimeToLiveCommand({ TableName: this.tableName }))) as {
        TimeToLiveDescription?: { TimeToLiveStatus?: string; AttributeName?: string };
      };
      const status = ttl?.TimeToLiveStatus;
      if ((status === 'ENABLED' || status === 'ENABLING') && ttl?.AttributeName === 'expiration') return;
      if (status === 'ENABLED' || status === 'ENABLING') {
        this.logger.warn(`The DynamoDB table "${this.tableName}" has TTL on "${ttl?.AttributeName}", not on "expiration": expired sessions are not deleted by DynamoDB (they are never read).`);
        return;
      }
      await this.sendSetUp(
        new sdk.UpdateTimeToLiveCommand({ TableName: this.tableName, TimeToLiveSpecification: { Enabled: true, AttributeName: 'expiration' } }),
      );
      this.logger.log(`Enabled TTL on "expiration" of the DynamoDB table "${this.tableName}".`);
    } catch (error) {
      this.logger.warn(
        `Could not enable TTL on "expiration" of the DynamoDB table "${this.tableName}" (${(error as Error)?.name}: ${(error as Error)?.message}); ` +
          'going on: expired sessions are never read, but stay in the table until TTL is enabled.',
      );
    }
  }
}

/** The record of an item, or null when there is none or it has expired (TTL deletes expired items up to days late). */
function liveRecord(item: Item | undefined): StoredRecord | null {
  const value = item?.val?.B;
  if (!value) return null;
  const expiry = item.expiration?.N;
  if (expiry !== undefined && !(Number(expiry) > Date.now() / 1000)) return null;
  return { value: Buffer.from(value.buffer, value.byteOffset, value.byteLength) };
}

/** The expiry `ttlSeconds` from now, in whole Unix seconds, rounded up so that a session never ends early. */
function expiration(ttlSeconds: number): AttributeValue {
  return { N: String(Math.ceil(Date.now() / 1000) + ttlSeconds) };
}

/** Now in Unix seconds, for conditions: `expiration` compares against it. */
function now(): AttributeValue {
  return { N: String(Date.now() / 1000) };
}

function isDynamoDBClient(client: unknown): boolean {
  const candidate = client as { send?: unknown; config?: { serviceId?: unknown } } | null;
  return (
    candidate !== null &&
    typeof candidate === 'object' &&
    typeof candidate.send === 'function' &&
    typeof candidate.config === 'object' &&
    candidate.config?.serviceId === 'DynamoDB'
  );
}

function expectedClient(client: unknown): string {
  if (client === undefined) return "required: a DynamoDBClient from @aws-sdk/client-dynamodb, e.g. new DynamoDBClient({ region: 'eu-west-1' }).";
  if (typeof client === 'string') return `expected a DynamoDBClient, got the string ${JSON.stringify(client)}: pass new DynamoDBClient({ endpoint: ${JSON.stringify(client)} }).`;
  const candidate = client as { send?: unknown; config?: { serviceId?: unknown }; meta?: unknown } | null;
  if (candidate && typeof candidate.send === 'function' && typeof candidate.config?.serviceId === 'string') {
    return `expected a DynamoDB client, got a client of ${candidate.config.serviceId}.`;
  }
  if (candidate && typeof candidate === 'object' && 'putItem' in candidate && !('send' in candidate)) {
    return 'this looks like an AWS SDK v2 client; DynamoDBSessionInterface takes an SDK v3 DynamoDBClient (@aws-sdk/client-dynamodb).';
  }
  return 'expected a DynamoDBClient (or a DynamoDBDocumentClient) from the AWS SDK v3 (@aws-sdk/client-dynamodb).';
}
