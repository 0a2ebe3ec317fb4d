/**
 * A MongoDB wire-protocol RESPONDER on a loopback port, for tests of the real
 * driver where no MongoDB server can be had: not a server. It answers the
 * handshake (`hello`, as the legacy OP_QUERY or as OP_MSG, offering SCRAM),
 * and each command with what the test's `answer` returns, so that a test can
 * make it refuse a login (`saslStart`) or a command with the error document
 * MongoDB sends. Unanswered commands get the least a server would say:
 * `createIndexes` succeeds, `find` returns no document, `ping` and
 * `endSessions` succeed, `connectionStatus` shows no login, `listIndexes`
 * finds no collection (26), anything else is CommandNotFound (59).
 */
import { BSON, type Document } from 'mongodb';
import { createServer, type Server, type Socket } from 'node:net';

const OP_REPLY = 1;
const OP_QUERY = 2004;
const OP_MSG = 2013;

export type Answer = (name: string, command: Document) => Document | undefined;

export class WireResponder {
  /** The commands received, by name, in order (the handshake's `hello` included). */
  readonly commands: string[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly answer: Answer,
  ) {}

  static async start(answer: Answer = () => undefined): Promise<WireResponder> {
    let responder: WireResponder | undefined;
    const server = createServer((socket) => responder!.accept(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    responder = new WireResponder(server, (server.address() as { port: number }).port, answer);
    return responder;
  }

  /** A connection string to it: one server, no discovery. */
  url(credentials = '', options = ''): string {
    return `mongodb://${credentials ? `${credentials}@` : ''}127.0.0.1:${this.port}/?directConnection=true&serverSelectionTimeoutMS=2000${options}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4 && pending.length >= pending.readInt32LE(0)) {
        const length = pending.readInt32LE(0);
        this.receive(socket, pending.subarray(0, length));
        pending = pending.subarray(length);
      }
    });
  }

  private receive(socket: Socket, message: Buffer): void {
    const requestId = message.readInt32LE(4);
    const opCode = message.readInt32LE(12);
    let command: Document;
    if (opCode === OP_QUERY) {
      // flags, then the collection's name (a C string), numberToSkip, numberToReturn, the query.
      const start = message.indexOf(0, 20) + 1 + 8;
      command = BSON.deserialize(message.subarray(start, start + message.readInt32LE(start)));
    } else if (opCode === OP_MSG) {
      // flagBits, then sections: kind 0 is the command's body (kind 1, document sequences, is not needed here).
      command = {};
      for (let at = 20; at < message.length; ) {
        const kind = message[at++];
        const size = message.readInt32LE(at);
        if (kind === 0) command = { ...BSON.deserialize(message.subarray(at, at + size)), ...command };
        at += size;
      }
    } else {
      return;
    }
    const name = Object.keys(command)[0]!;
    this.commands.push(name);
    const reply = this.answer(name, command) ?? this.defaultAnswer(name, command);
    socket.write(opCode === OP_QUERY ? opReply(requestId, reply) : opMsg(requestId, reply));
  }

  private defaultAnswer(name: string, command: Document): Document {
    switch (name) {
      case 'hello':
      case 'isMaster':
      case 'ismaster':
        return {
          helloOk: true,
          ismaster: true,
          isWritablePrimary: true,
          maxBsonObjectSize: 16 * 1024 * 1024,
          maxMessageSizeBytes: 48_000_000,
          maxWriteBatchSize: 100_000,
          localTime: new Date(),
          logicalSessionTimeoutMinutes: 30,
          minWireVersion: 0,
          maxWireVersion: 21,
          ...(command.saslSupportedMechs ? { saslSupportedMechs: ['SCRAM-SHA-256', 'SCRAM-SHA-1'] } : {}),
          ok: 1,
        };
      case 'ping':
      case 'endSessions':
        return { ok: 1 };
      case 'connectionStatus':
        return { authInfo: { authenticatedUsers: [], authenticatedUserRoles: [], authenticatedUserPrivileges: [] }, ok: 1 };
      case 'createIndexes':
        return { ok: 1, numIndexesBefore: 1, numIndexesAfter: 1, note: 'all indexes already exist' };
      case 'listIndexes': // of a collection that does not exist
        return { ok: 0, errmsg: `ns does not exist: ${command.$db}.${command.listIndexes}`, code: 26, codeName: 'NamespaceNotFound' };
      case 'find':
        return { ok: 1, cursor: { id: BSON.Long.fromNumber(0), ns: `${command.$db}.${command.find}`, firstBatch: [] } };
      default:
        return { ok: 0, errmsg: `no such command: '${name}'`, code: 59, codeName: 'CommandNotFound' };
    }
  }
}

function header(length: number, requestId: number, opCode: number): Buffer {
  const bytes = Buffer.alloc(16);
  bytes.writeInt32LE(length, 0);
  bytes.writeInt32LE(0, 4);
  bytes.writeInt32LE(requestId, 8); // responseTo
  bytes.writeInt32LE(opCode, 12);
  return bytes;
}

function opReply(requestId: number, document: Document): Buffer {
  const body = BSON.serialize(document);
  const fields = Buffer.alloc(20); // responseFlags 0, cursorID 0, startingFrom 0, numberReturned 1
  fields.writeInt32LE(1, 16);
  return Buffer.concat([header(16 + 20 + body.length, requestId, OP_REPLY), fields, body]);
}

function opMsg(requestId: number, document: Document): Buffer {
  const body = BSON.serialize(document);
  const fields = Buffer.alloc(5); // flagBits 0, section kind 0
  return Buffer.concat([header(16 + 5 + body.length, requestId, OP_MSG), fields, body]);
}
