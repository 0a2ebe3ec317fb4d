/** DI token of the options given to `SessionModule.forRoot()` / `forRootAsync()`. Internal. */
export const SESSION_MODULE_OPTIONS = 'SESSION_MODULE_OPTIONS';
