import { NullSession, NullSessionError, SecureCookieSession, SessionMixin } from '../../lib/index.js';

function fresh(data: Record<string, unknown> = {}) {
  return new SecureCookieSession(data);
}

describe('SessionMixin flags', () => {
  it('starts unmodified and not accessed', () => {
    const s = fresh({ a: 1 });
    expect([s.new, s.modified, s.accessed]).toEqual([false, false, false]);
  });

  it.each<[string, (s: SessionMixin) => unknown]>([
    ['get', (s) => s.get('a')],
    ['has', (s) => s.has('a')],
    ['keys', (s) => s.keys()],
    ['values', (s) => s.values()],
    ['entries', (s) => s.entries()],
    ['size', (s) => s.size],
    ['toJSON', (s) => s.toJSON()],
    ['permanent', (s) => s.permanent],
  ])('%s marks accessed only', (_name, read) => {
    const s = fresh({ a: 1 });
    read(s);
    expect(s.accessed).toBe(true);
    expect(s.modified).toBe(false);
  });

  it('set marks modified and accessed and returns the session', () => {
    const s = fresh();
    expect(s.set('a', 1)).toBe(s);
    expect([s.modified, s.accessed]).toEqual([true, true]);
  });

  it('get returns the fallback for a missing key only', () => {
    const s = fresh({ a: 0 });
    expect(s.get('a', 5)).toBe(0);
    expect(s.get('b', 5)).toBe(5);
    expect(s.get('b')).toBeUndefined();
  });

  it.each<[string, (s: SessionMixin) => unknown, boolean]>([
    ['delete of a missing key', (s) => s.delete('missing'), false],
    ['delete of a present key', (s) => s.delete('a'), true],
    ['pop of a missing key', (s) => s.pop('missing', 1), false],
    ['pop of a present key', (s) => s.pop('a'), true],
    ['setDefault of a present key', (s) => s.setDefault('a', 2), false],
    ['setDefault of a missing key', (s) => s.setDefault('b', 2), true],
    ['update', (s) => s.update({}), true],
    ['clear', (s) => s.clear(), true],
  ])('%s: modified = %s', (_name, write, modified) => {
    const s = fresh({ a: 1 });
    write(s);
    expect(s.modified).toBe(modified);
    expect(s.accessed).toBe(true);
  });

  it('pop and setDefault return what Python returns', () => {
    const s = fresh({ a: 1 });
    expect(s.pop('a')).toBe(1);
    expect(s.pop('a', 9)).toBe(9);
    expect(s.setDefault('b', 2)).toBe(2);
    expect(s.setDefault('b', 3)).toBe(2);
  });

  it('stores permanent as _permanent and marks modified when set', () => {
    const s = fresh();
    s.permanent = true;
    expect(s.modified).toBe(true);
    expect(s.toJSON()).toEqual({ _permanent: true });
    expect(new SecureCookieSession({ _permanent: true }).permanent).toBe(true);
  });

  it('does not see nested changes until modified is set by hand', () => {
    const s = fresh({ cart: { items: [] as string[] } });
    (s.get('cart') as { items: string[] }).items.push('apple');
    expect(s.modified).toBe(false);
    s.modified = true;
    expect(s.modified).toBe(true);
  });

  it('is a custom session base class', () => {
    class MySession extends SessionMixin<{ userId?: number }> {
      get userId() {
        return this.get('userId');
      }
    }
    const s = new MySession({ userId: 3 });
    expect(s.userId).toBe(3);
    expect([...s]).toEqual([['userId', 3]]);
  });
});

describe('NullSession', () => {
  it('reads as an empty session', () => {
    const s = new NullSession();
    expect(s.get('a')).toBeUndefined();
    expect(s.size).toBe(0);
    expect(s.permanent).toBe(false);
  });

  it.each<[string, (s: NullSession) => unknown]>([
    ['set', (s) => s.set('a', 1)],
    ['delete', (s) => s.delete('a')],
    ['pop', (s) => s.pop('a')],
    ['setDefault', (s) => s.setDefault('a', 1)],
    ['update', (s) => s.update({ a: 1 })],
    ['clear', (s) => s.clear()],
    ['permanent', (s) => (s.permanent = true)],
  ])('%s throws the no-secret-key error', (_name, write) => {
    expect(() => write(new NullSession())).toThrow(NullSessionError);
    expect(() => write(new NullSession())).toThrow(/no secret key was set\.  Set the secretKey option/);
  });
});
