/**
 * The DynamoDB test server: dynalite in a child process on a free loopback
 * port, reached by @aws-sdk/client-dynamodb, that can be paused, resumed,
 * stopped and started again on the same port.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  ListTablesCommand,
  PutItemCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { DynaliteServer } from '../support/dynalite-server.js';
import { settlesWithin } from '../support/managed-server.js';

let server: DynaliteServer;
let client: DynamoDBClient;
beforeAll(async () => {
  server = await DynaliteServer.start({ createTableMs: 0 });
  client = new DynamoDBClient(server.clientConfig);
  await client.send(
    new CreateTableCommand({
      TableName: 'Sessions',
      AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
}, 60_000);
afterAll(async () => {
  client?.destroy();
  await server?.close();
});

const getItem = (id: string) => client.send(new GetItemCommand({ TableName: 'Sessions', Key: { id: { S: id } }, ConsistentRead: true }));

test('the SDK creates a table, writes an item and reads it back', async () => {
  const table = await client.send(new DescribeTableCommand({ TableName: 'Sessions' }));
  expect(table.Table?.TableStatus).toBe('ACTIVE');
  await client.send(new PutItemCommand({ TableName: 'Sessions', Item: { id: { S: 'session:a' }, val: { B: Buffer.from([1, 2, 3]) }, expiration: { N: '1700000000' } } }));
  const { Item } = await getItem('session:a');
  expect(Item).toEqual({ id: { S: 'session:a' }, val: { B: new Uint8Array([1, 2, 3]) }, expiration: { N: '1700000000' } });
});

test('dynalite refuses UpdateTimeToLive (the stores must log it and go on)', async () => {
  const ttl = client.send(new UpdateTimeToLiveCommand({ TableName: 'Sessions', TimeToLiveSpecification: { Enabled: true, AttributeName: 'expiration' } }));
  await expect(ttl).rejects.toMatchObject({ name: 'UnknownOperationException' });
});

test('pause makes requests hang; resume completes them', async () => {
  await client.send(new PutItemCommand({ TableName: 'Sessions', Item: { id: { S: 'session:p' }, val: { B: Buffer.from('x') } } }));
  server.pause();
  let read: ReturnType<typeof getItem>;
  try {
    read = getItem('session:p');
    expect(await settlesWithin(read, 500)).toBe(false);
  } finally {
    server.resume();
  }
  expect((await read).Item?.id).toEqual({ S: 'session:p' });
});

test('stop refuses connections; start on the same port finds the tables and items', async () => {
  const port = server.port;
  await server.stop();
  expect(server.running).toBe(false);
  // One attempt: the SDK would otherwise retry with back-off.
  const once = new DynamoDBClient({ ...server.clientConfig, maxAttempts: 1 });
  await expect(once.send(new ListTablesCommand({}))).rejects.toThrow(/ECONNREFUSED/);
  once.destroy();

  await server.start();
  expect(server.port).toBe(port);
  expect((await client.send(new ListTablesCommand({}))).TableNames).toEqual(['Sessions']);
  expect((await getItem('session:a')).Item?.val).toEqual({ B: new Uint8Array([1, 2, 3]) });
});

test('an in-memory server starts empty again after a stop', async () => {
  const memory = await DynaliteServer.start({ persistent: false, createTableMs: 0 });
  const memoryClient = new DynamoDBClient(memory.clientConfig);
  try {
    await memoryClient.send(
      new CreateTableCommand({
        TableName: 'Sessions',
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    await memory.stop();
    await memory.start();
    expect((await memoryClient.send(new ListTablesCommand({}))).TableNames).toEqual([]);
  } finally {
    memoryClient.destroy();
    await memory.close();
  }
});
