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

/** Why a gateway's client has no session: said by the errors of both ways of reaching it. */
export const FOREIGN_SERVER =
  "this WebSocket client's handshake did not come through the application's HTTP server; a gateway on a port of its own " +
  '(@WebSocketGateway(port)) cannot reach the sessions: declare it without a port, to share the server the session cookie is set on';

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
 * stored meanwhile) and saves it when its handler replies and completes.
 *
 * Guards and interceptors of one message get the same arguments array from
 * Nest (`context.getArgs()`), made afresh for each message: the message's
 * state is kept by it, so a message a guard refused leaves nothing behind for
 * the next one. Parameter decorators get a copy of that array, so for
 * `@Session()` the interceptor also files the state under the payload when it
 * is an object (Nest hands the guards, the interceptors and the handler the
 * same payload), else under the client: a client whose messages carry
 * primitive payloads and overlap in time shares the latest message's session
 * in `@Session()`.
 */
const messageStates = new WeakMap<object, RequestSessionState>();
const handlerStates = new WeakMap<object, RequestSessionState>();

/** The state of the message whose guards and interceptors get `args` (`context.getArgs()`). */
export function messageState(args: object): RequestSessionState | undefined {
  return messageStates.get(args);
}

export function setMessageState(args: object, state: RequestSessionState): void {
  messageStates.set(args, state);
}

function handlerKey(client: object, payload: unknown): object {
  return payload !== null && typeof payload === 'object' ? payload : client;
}

/** The state `@Session()` reads in a message handler, filed by the interceptor. */
export function handlerState(client: object, payload: unknown): RequestSessionState | undefined {
  return handlerStates.get(handlerKey(client, payload));
}

export function setHandlerState(client: object, payload: unknown, state: RequestSessionState): void {
  handlerStates.set(handlerKey(client, payload), state);
}

/** Forgets a message's state once its handler is done. */
export function forgetHandlerState(client: object, payload: unknown, state: RequestSessionState): void {
  const key = handlerKey(client, payload);
  if (handlerStates.get(key) === state) handlerStates.delete(key);
}
