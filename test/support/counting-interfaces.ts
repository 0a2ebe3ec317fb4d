import { SecureCookieSessionInterface, type SessionInterface, type SessionApp, type SessionMixin } from '../../lib/index.js';
import { FileSystemSessionInterface } from '../../lib/filesystem/index.js';

/** A concrete interface (the abstract SessionInterface has no openSession to call). */
interface Concrete {
  openSession(app: SessionApp, req: never): ReturnType<SessionInterface['openSession']>;
  saveSession(app: SessionApp, session: SessionMixin, res: never): ReturnType<SessionInterface['saveSession']>;
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type InterfaceClass = new (...args: any[]) => Concrete;

/**
 * The interface `Base` counting its opens and saves, to prove that each
 * request opens and saves once and that untouched routes never reach it.
 */
export function counting<T extends InterfaceClass>(Base: T) {
  return class Counting extends Base {
    opens = 0;
    saves = 0;
    override openSession(app: SessionApp, req: never) {
      this.opens++;
      return super.openSession(app, req);
    }
    override saveSession(app: SessionApp, session: SessionMixin, res: never) {
      this.saves++;
      return super.saveSession(app, session, res);
    }
  };
}

/** Signed cookies, counted: open and save are synchronous. */
export const CountingCookieInterface = counting(SecureCookieSessionInterface);
export type CountingCookieInterface = InstanceType<typeof CountingCookieInterface>;
/** The filesystem store, counted: open and save are asynchronous. */
export const CountingFileSystemInterface = counting(FileSystemSessionInterface);
export type CountingFileSystemInterface = InstanceType<typeof CountingFileSystemInterface>;
export type Counting = CountingCookieInterface | CountingFileSystemInterface;
