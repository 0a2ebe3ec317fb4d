import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { RequestSessionState } from '../request-state.js';

/**
 * Sessions over WebSockets come from the handshake: the HTTP request that
 * opened the connection carries the session cookie.
 *
 * - socket.io (`@nestjs/platform-socket.io`) keeps it as `client.request`.
 * - ws (`@nestjs/platform-ws`) does not keep it: the upgrade requests of the
 *   application's HTTP server are noted here, by their socket, which the
 *   client keeps.
 */

/** Upgrade requests by their socket; a socket and its request go together when the connection closes. */
const upgradeRequests = new WeakMap<Socket, IncomingMessage>();
const CAPTURED = Symbol('nest-session.capturesUpgrades');

type UpgradeServer = {
  prependListener(event: 'upgrade', listener: (request: IncomingMessage, socket: Socket) => void): unknown;
  listenerCount(event: 'upgrade'): number;
  [CAPTURED]?: true;
};

/** Notes the upgrade requests of `server` (the application's HTTP server), once per server. */
export function captureWebSocketHandshakes(server: object): void {
  const upgrades = server as UpgradeServer;
  if (typeof upgrades.prependListener !== 'function' || upgrades[CAPTURED]) return;
  upgrades[CAPTURED] = true;
  upgrades.prependListener('upgrade', (request, socket) => {
    upgradeRequests.set(socket, request);
    // Node destroys an upgrade nobody listens to; with this listener alone it would hang.
    if (upgrades.listenerCount('upgrade') === 1) socket.destroy();
  });
}

/** A WebSocket client as the two Nest adapters give it to handlers. */
export type WebSocketClient = { request?: IncomingMessage; _socket?: Socket };

/** The handshake request of a gateway's client, or undefined for something that is not one. */
export function handshakeRequest(client: unknown): IncomingMessage | undefined {
  const candidate = client as WebSocketClient | null | undefined;
  if (!candidate || typeof candidate !== 'object') return undefined;
  if (candidate.request && typeof candidate.request === 'object' && 'headers' in candidate.request) return candidate.request; // socket.io
  return candidate._socket ? upgradeRequests.get(candidate._socket) : undefined; // ws
}

/**
 * Each WebSocket message opens its own session (so it sees what HTTP requests
 * stored meanwhile) and saves it when its handler completes. A guard, the
 * interceptor and `@Session()` of one message find that message's state by
 * its payload when the payload is an object (Nest hands all three the same
 * payload), else by the client: a client whose messages carry primitive
 * payloads and overlap in time shares the latest message's session.
 */
const messageStates = new WeakMap<object, RequestSessionState>();

function messageKey(client: object, payload: unknown): object {
  return payload !== null && typeof payload === 'object' ? payload : client;
}

export function messageState(client: object, payload: unknown): RequestSessionState | undefined {
  return messageStates.get(messageKey(client, payload));
}

export function setMessageState(client: object, payload: unknown, state: RequestSessionState): void {
  messageStates.set(messageKey(client, payload), state);
}

/** Forgets a message's state once it was saved, so that the client's next message opens afresh. */
export function forgetMessageState(client: object, payload: unknown, state: RequestSessionState): void {
  const key = messageKey(client, payload);
  if (messageStates.get(key) === state) messageStates.delete(key);
}
