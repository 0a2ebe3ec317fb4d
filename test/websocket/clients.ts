import { BaseWsExceptionFilter } from '@nestjs/websockets';
import { io, type Socket as IoSocket } from 'socket.io-client';
import { WebSocket } from 'ws';

export const ADAPTERS = ['socket.io', 'ws'] as const;
export type AdapterName = (typeof ADAPTERS)[number];

/**
 * A real client of a gateway, socket.io's or a plain WebSocket, seen through
 * one small interface: send an event and wait for the reply of the same
 * name, or for the `exception` that Nest's WebSocket exception filter sends.
 */
export interface GatewayClient {
  /** Sends `event` with `data`; resolves with the data of the next `event` reply, or rejects with an `exception` reply. */
  ask<T = unknown>(event: string, data?: unknown): Promise<T>;
  close(): void;
}

/** What Nest's exception filter sent the client instead of a reply. */
export class ExceptionReply extends Error {
  constructor(readonly data: { status?: string; message?: string; cause?: unknown }) {
    super(`exception reply: ${JSON.stringify(data)}`);
  }
}

const TIMEOUT_MS = 5000;

/** NestJS 12's exception filter sends through `emitMessage` (native WebSockets get `send`); 11's has no such method. */
const filterSendsToWebSockets = typeof (BaseWsExceptionFilter.prototype as unknown as { emitMessage?: unknown }).emitMessage === 'function';

/**
 * Whether Nest's exception filter reaches a client of this adapter. NestJS 11
 * sends its `exception` with the socket's `emit`, which on a `ws` socket is
 * Node's EventEmitter and stays on the server: the client hears nothing (NestJS
 * 12 sends it with `send`). scripts/test-nestjs-11.sh runs on 11.
 */
export function exceptionsReach(adapter: AdapterName): boolean {
  return adapter !== 'ws' || filterSendsToWebSockets;
}

/**
 * Connects to `url` (http://127.0.0.1:port) sending `cookie` with the
 * handshake, as a browser sends the site's cookies with it.
 * `transports` applies to socket.io only: by default it starts with HTTP
 * long-polling and upgrades, as the browser client does.
 */
export async function connect(
  adapter: AdapterName,
  url: string,
  cookie?: string,
  transports?: Array<'polling' | 'websocket'>,
): Promise<GatewayClient> {
  const headers = cookie ? { Cookie: cookie } : undefined;
  return adapter === 'socket.io' ? connectIo(url, headers, transports) : connectWs(url, headers);
}

async function connectIo(url: string, extraHeaders: Record<string, string> | undefined, transports?: Array<'polling' | 'websocket'>): Promise<GatewayClient> {
  const socket: IoSocket = io(url, { extraHeaders, transports, reconnection: false, forceNew: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket.io did not connect to ${url}`)), TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('connect_error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  return {
    ask<T>(event: string, data?: unknown) {
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => done(() => reject(new Error(`no reply to ${event}`))), TIMEOUT_MS);
        const onReply = (reply: T) => done(() => resolve(reply));
        const onException = (exception: ExceptionReply['data']) => done(() => reject(new ExceptionReply(exception)));
        const done = (settle: () => void) => {
          clearTimeout(timer);
          socket.off(event, onReply);
          socket.off('exception', onException);
          settle();
        };
        socket.on(event, onReply);
        socket.on('exception', onException);
        socket.emit(event, data);
      });
    },
    close: () => socket.close(),
  };
}

async function connectWs(url: string, headers: Record<string, string> | undefined): Promise<GatewayClient> {
  const socket = new WebSocket(url.replace(/^http/, 'ws'), { headers });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ws did not connect to ${url}`)), TIMEOUT_MS);
    socket.once('open', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  return {
    ask<T>(event: string, data?: unknown) {
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => done(() => reject(new Error(`no reply to ${event}`))), TIMEOUT_MS);
        const onMessage = (raw: Buffer) => {
          const message = JSON.parse(raw.toString()) as { event: string; data: unknown };
          if (message.event === event) done(() => resolve(message.data as T));
          else if (message.event === 'exception') done(() => reject(new ExceptionReply(message.data as ExceptionReply['data'])));
        };
        const done = (settle: () => void) => {
          clearTimeout(timer);
          socket.off('message', onMessage);
          settle();
        };
        socket.on('message', onMessage);
        socket.send(JSON.stringify({ event, data }));
      });
    },
    close: () => socket.close(),
  };
}
