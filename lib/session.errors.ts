/**
 * Base class of the errors nest-session raises itself.
 *
 * @publicApi
 */
export class SessionError extends Error {
  override readonly name: string = this.constructor.name;
}

/** A `SessionModule` option is invalid. Raised at bootstrap, naming the option. */
export class SessionConfigurationError extends SessionError {
  static create(option: string, problem: string): SessionConfigurationError {
    return new SessionConfigurationError(`Invalid SessionModule option "${option}": ${problem}`);
  }
}

/**
 * A session value cannot be serialized (a function, a symbol, a cycle, a Map,
 * NaN...). The request fails with this error (a 500 through Nest's exception
 * filter) and nothing is written, so no data is silently dropped.
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

/** `@Session()` or `getSession()` was used in an application that does not import `SessionModule`. */
export class SessionNotInitializedError extends SessionError {
  static create(): SessionNotInitializedError {
    return new SessionNotInitializedError(
      'No session is available for this request. Potential solutions: import SessionModule.forRoot() ' +
        'once in the root module of the application; sessions work in HTTP contexts only.',
    );
  }
}
