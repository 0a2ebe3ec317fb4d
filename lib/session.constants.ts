/** DI token of the options given to `SessionModule.forRoot()` / `forRootAsync()`. Internal. */
export const SESSION_MODULE_OPTIONS = 'SESSION_MODULE_OPTIONS';
/** Metadata on a handler whose parameters take the session: the interceptor opens it before the handler. */
export const OPENS_SESSION_METADATA = 'nest-session:opens-session';
