import { HttpException } from '@nestjs/common';

/**
 * Base class of the errors nest-session raises itself: each carries the HTTP
 * status a request that meets it gets, so Nest's exception filters answer it
 * (a store that is down is a 503, a cookie attribute built from a bad request
 * a 400, anything else a 500). The client sees only the status and a short
 * public message; `message` has the detail, for logs. Configuration mistakes
 * are raised at bootstrap and never reach a client.
 *
 * @publicApi
 */
export class SessionError extends HttpException {
  constructor(
    /** The detail, for logs and the developer. */
    message: string,
    status = 500,
    /** What the client is told; Nest's own "Internal server error" unless the client can act on more. */
    publicMessage = 'Internal server error',
  ) {
    super({ statusCode: status, message: publicMessage }, status);
    this.message = message;
  }
}

/** A `SessionModule` or store option is invalid. Raised at bootstrap, naming the option. */
export class SessionConfigurationError extends SessionError {
  /** `owner`: whose option it is, e.g. `'RedisSessionInterface'`. */
  static create(option: string, problem: string, owner = 'SessionModule'): SessionConfigurationError {
    return new SessionConfigurationError(`Invalid ${owner} option "${option}": ${problem}`);
  }

  /** A function that throws {@link create}'s error for `owner`: the option checks of a constructor call it. */
  static thrower(owner: string): (option: string, problem: string) => never {
    return (option, problem) => {
      throw SessionConfigurationError.create(option, problem, owner);
    };
  }
}

/** A value as an option error quotes it: a string in quotes, an object by its class, else its type and value. */
export function describeOptionValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object') return value === null ? 'null' : `a ${value.constructor?.name ?? 'object'}`;
  return `${typeof value} ${String(value)}`;
}

/**
 * A session value cannot be serialized (a function, a symbol, a cycle, a Map,
 * NaN...). The request fails with a 500 and nothing is written, so no data is
 * silently dropped; the log names the key.
 */
export class SessionSerializationError extends SessionError {
  constructor(
    /** Where the value sits in the session, e.g. `cart.items[2]`. */
    readonly key: string,
    problem: string,
  ) {
    super(`Cannot serialize the session value at "${key}": ${problem}`);
  }

  /** The error for the value reached through `path` (keys and indexes from the root). */
  static at(path: ReadonlyArray<string | number>, problem: string): SessionSerializationError {
    const key = path.reduce<string>(
      (text, part) => (typeof part === 'number' ? `${text}[${part}]` : text ? `${text}.${part}` : part),
      '',
    );
    return new SessionSerializationError(key || '(root)', problem);
  }
}

/** A write to the {@link NullSession} used when no secret key is configured. */
export class NullSessionError extends SessionError {
  constructor() {
    super(
      'The session is unavailable because no secret key was set.  Set the secretKey option of ' +
        'SessionModule.forRoot({ secretKey }) to something unique and secret.',
    );
  }
}

/**
 * A write to a session that cannot be saved where it was opened, for example a
 * signed-cookie session in a WebSocket message handler: there is no response
 * to carry the cookie. The message says why.
 */
export class SessionReadOnlyError extends SessionError {
  constructor(reason: string) {
    super(`This session is read-only: ${reason}`);
  }
}

/** `@Session()` or `getSession()` was used where no session can be found. */
export class SessionNotInitializedError extends SessionError {
  static create(detail?: string): SessionNotInitializedError {
    return new SessionNotInitializedError(
      `No session is available${detail ? ` (${detail})` : ''}. Potential solutions: import SessionModule.forRoot() ` +
        'once in the root module of the application; sessions work in HTTP handlers (Express and Fastify), ' +
        "GraphQL resolvers and WebSocket gateways on the application's own server.",
    );
  }
}

/**
 * The session store could not be reached, answered with an error, or did not
 * answer within the request's `storeTimeout`: the request gets a 503 with a
 * message the client can act on; routes that do not use the session are
 * unaffected. Nothing of the request was stored.
 *
 * @publicApi
 */
export class SessionStoreUnavailableError extends SessionError {
  constructor(storeName: string, cause: string) {
    super(`The session store (${storeName}) failed: ${cause}`, 503, `The session store (${storeName}) is unavailable; try again shortly.`);
  }
}

/**
 * A cookie attribute returned at run time by an overridden `getCookie*()`
 * (for example a domain taken from the Host header) would break the
 * Set-Cookie header. It is never written; when the session's change needs the
 * cookie to take effect, the request fails with a 400 rather than claim it.
 *
 * @publicApi
 */
export class SessionCookieRejectedError extends SessionError {
  constructor(detail: string) {
    super(`The session cookie was not set: ${detail}`, 400, 'The session cookie could not be set for this request.');
  }
}
