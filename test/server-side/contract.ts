/**
 * The contract every server-side store passes, run against a real store by
 * each store's spec: `describeStoreContract(name, harness)`.
 */
import { Controller, Get, Query, Res, Sse, StreamableFile, type INestApplication, type MessageEvent } from '@nestjs/common';
import { Readable } from 'node:stream';
import { interval, map, take, type Observable } from 'rxjs';
import request from 'supertest';
import {
  ServerSideSessionInterface,
  Session,
  SessionInterface,
  SessionModule,
  type ServerSideSessionOptions,
  type SessionMixin,
} from '../../lib/index.js';
import { PLATFORMS, cookiePair, createApp, sessionCookie, setCookies, type Platform } from '../support/apps.js';

export interface StoreHarness {
  /** A fresh interface on the store, with these options. */
  create(options: ServerSideSessionOptions): Promise<ServerSideSessionInterface> | ServerSideSessionInterface;
  /** The raw record stored under `storeId`, or null. */
  read(storeId: string): Promise<Buffer | null>;
  /** Makes the store fail, then work again; absent for a store that cannot fail (process memory). */
  breakStore?(): Promise<void>;
  repairStore?(): Promise<void>;
}

type Calls = Record<'readRecord' | 'swapRecord' | 'replaceRecord' | 'deleteRecord' | 'refreshRecord', number>;

/** Counts the store calls an interface makes. */
function countCalls(sessions: ServerSideSessionInterface): Calls {
  const calls: Calls = { readRecord: 0, swapRecord: 0, replaceRecord: 0, deleteRecord: 0, refreshRecord: 0 };
  const target = sessions as unknown as Record<keyof Calls, (...args: unknown[]) => Promise<unknown>>;
  for (const name of Object.keys(calls) as Array<keyof Calls>) {
    const original = target[name].bind(sessions);
    target[name] = (...args: unknown[]) => {
      calls[name]++;
      return original(...args);
    };
  }
  return calls;
}

@Controller()
class StoreController {
  constructor(private readonly sessions: SessionInterface) {}

  @Get('set')
  set(@Session() session: SessionMixin, @Query('value') value = 'x') {
    session.set('value', value);
    return { sid: (session as unknown as { sid: string }).sid };
  }

  @Get('remember')
  remember(@Session() session: SessionMixin) {
    session.permanent = true;
    session.set('value', 'remembered');
    return { sid: (session as unknown as { sid: string }).sid };
  }

  @Get('put')
  put(@Session() session: SessionMixin, @Query('key') key: string, @Query('value') value: string) {
    session.set(key, value);
    return '';
  }

  @Get('all')
  all(@Session() session: SessionMixin) {
    return { data: session.toJSON(), new: session.new };
  }

  @Get('get')
  get(@Session() session: SessionMixin) {
    return { value: session.get('value') ?? null, new: session.new, sid: (session as unknown as { sid: string }).sid };
  }

  @Get('cart')
  cart(@Session() session: SessionMixin) {
    const cart = session.setDefault('cart', { items: [] as string[] }) as { items: string[] };
    cart.items.push('apple');
    session.modified = true;
    return cart;
  }

  @Get('types')
  types(@Session() session: SessionMixin) {
    session.update({ when: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)), bytes: Buffer.from([1, 2, 255]), nested: { a: [1, { b: null }] } });
    return '';
  }

  @Get('types/get')
  getTypes(@Session() session: SessionMixin) {
    const when = session.get('when');
    const bytes = session.get('bytes');
    return { when: when instanceof Date ? when.toISOString() : when, bytes: Buffer.isBuffer(bytes) ? [...bytes] : bytes, nested: session.get('nested') };
  }

  @Get('clear')
  clear(@Session() session: SessionMixin) {
    session.clear();
    return '';
  }

  @Get('login')
  async login(@Session() session: SessionMixin) {
    await (this.sessions as ServerSideSessionInterface).regenerate(session);
    session.set('user', 'alice');
    return { sid: (session as unknown as { sid: string }).sid };
  }

  @Get('bad')
  bad(@Session() session: SessionMixin) {
    session.set('callback', (() => 1) as never);
    return 'never saved';
  }

  @Get('none')
  none() {
    return 'none';
  }

  @Get('stream/file')
  file(@Session() session: SessionMixin) {
    session.set('value', 'file');
    return new StreamableFile(Readable.from([Buffer.from('file body')]));
  }

  @Sse('stream/sse')
  sse(@Session() session: SessionMixin): Observable<MessageEvent> {
    session.set('value', 'sse');
    return interval(1).pipe(
      take(2),
      map((i) => ({ data: { i } })),
    );
  }

  /** Writes the body itself, in chunks: Express's `res`, or Fastify's `reply.raw`. */
  @Get('stream/write')
  write(@Session() session: SessionMixin, @Res() res: { raw?: NodeJS.WritableStream; write?(chunk: string): void; end?(chunk: string): void }) {
    session.set('value', 'write');
    const out = (res.raw ?? res) as NodeJS.WritableStream;
    out.write('first ');
    setTimeout(() => out.end('last'), 10);
  }
}

export function describeStoreContract(name: string, harness: StoreHarness): void {
  describe.each(PLATFORMS)(`${name}: the server-side store contract on %s`, (platform: Platform) => {
    let app: INestApplication;
    let sessions: ServerSideSessionInterface;
    let calls: Calls;

    async function start(options: ServerSideSessionOptions = {}, moduleOptions: Record<string, unknown> = {}) {
      await app?.close();
      sessions = await harness.create({ storeTimeout: 500, ...options });
      calls = countCalls(sessions);
      app = await createApp({
        imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k', ...moduleOptions })],
        controllers: [StoreController],
      }, false, platform);
      return app.getHttpServer();
    }
    const server = () => app.getHttpServer();
    afterEach(() => app?.close());

    it('creates a record under keyPrefix + sid and reads it back', async () => {
      await start();
      const set = await request(server()).get('/set?value=42').expect(200);
      const { sid } = set.body;
      expect(sid).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(sessionCookie(set)!.value).toBe(sid);
      expect(sessionCookie(set)!.expires).toBeInstanceOf(Date); // permanent by default
      expect(await harness.read(`session:${sid}`)).not.toBeNull();
      const got = await request(server()).get('/get').set('Cookie', cookiePair(set)).expect(200);
      expect(got.body).toEqual({ value: '42', new: false, sid });
    });

    it('loses no update when concurrent requests change different keys of one session', async () => {
      await start({ storeTimeout: 10_000 });
      const set = await request(server()).get('/set?value=first');
      const cookie = cookiePair(set);
      const writers = 64;
      const responses = await Promise.all(
        Array.from({ length: writers }, (_, i) => request(server()).get(`/put?key=k${i}&value=${i}`).set('Cookie', cookie)),
      );
      expect(responses.map((r) => r.status)).toEqual(Array(writers).fill(200));
      const { data } = (await request(server()).get('/all').set('Cookie', cookie)).body;
      const kept = Array.from({ length: writers }, (_, i) => data[`k${i}`]).filter((v, i) => v === String(i));
      expect(kept).toHaveLength(writers);
      expect(data.value).toBe('first');
    });

    it('a logout is never undone by a concurrent write', async () => {
      await start({ storeTimeout: 10_000 });
      for (let round = 0; round < 8; round++) {
        const set = await request(server()).get('/set?value=logged-in');
        const cookie = cookiePair(set);
        await Promise.all([
          request(server()).get('/clear').set('Cookie', cookie).expect(200),
          request(server()).get('/put?key=late&value=write').set('Cookie', cookie).expect(200),
        ]);
        expect(await harness.read(`session:${set.body.sid}`)).toBeNull();
      }
    });

    it('regenerate() wins over a concurrent write to the old sid', async () => {
      await start({ storeTimeout: 10_000 });
      for (let round = 0; round < 4; round++) {
        const set = await request(server()).get('/set?value=kept');
        const cookie = cookiePair(set);
        const [login] = await Promise.all([
          request(server()).get('/login').set('Cookie', cookie).expect(200),
          request(server()).get('/put?key=late&value=write').set('Cookie', cookie).expect(200),
        ]);
        expect(await harness.read(`session:${set.body.sid}`)).toBeNull();
        const after = await request(server()).get('/all').set('Cookie', cookiePair(login));
        expect(after.body.data).toMatchObject({ value: 'kept', user: 'alice' });
      }
    });

    it.each<[string, Record<string, unknown>, string]>([
      ['a misspelled option', { keyprefix: 'x' }, 'did you mean "keyPrefix"'],
      ['storeTimeout as text', { storeTimeout: '2s' }, '"storeTimeout"'],
      ['a negative storeTimeout', { storeTimeout: -5 }, '"storeTimeout"'],
      ['a negative refreshAfter', { refreshAfter: -1 }, '"refreshAfter"'],
      ['a serializationFormat Flask-Session does not have', { serializationFormat: 'pickle' }, '"serializationFormat"'],
      ['useSigner as text', { useSigner: 'yes' }, '"useSigner"'],
      ['a fractional nonPermanentLifetime', { nonPermanentLifetime: 0.5 }, '"nonPermanentLifetime"'],
    ])('fails at construction on %s, naming the option', async (_case, options, named) => {
      await expect((async () => harness.create(options as ServerSideSessionOptions))()).rejects.toThrow(named);
    });

    it.each(['file', 'sse', 'write'])('a streamed response (%s) that creates a session carries its cookie, and the record is there', async (kind) => {
      await start();
      const response = await request(server())
        .get(`/stream/${kind}`)
        .buffer(true)
        .parse((res, done) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk));
          res.on('end', () => done(null, text));
        })
        .expect(200);
      expect(response.body.length).toBeGreaterThan(0);
      const cookie = cookiePair(response);
      await new Promise((resolve) => setTimeout(resolve, 100)); // a write that went on after the headers
      const got = await request(server()).get('/get').set('Cookie', cookie).expect(200);
      expect(got.body).toMatchObject({ value: kind, new: false });
    });

    it('keeps nested changes when modified is set', async () => {
      await start();
      const first = await request(server()).get('/cart');
      const second = await request(server()).get('/cart').set('Cookie', cookiePair(first));
      expect(second.body).toEqual({ items: ['apple', 'apple'] });
    });

    it('round-trips dates, bytes and nested values', async () => {
      await start();
      const set = await request(server()).get('/types');
      const got = await request(server()).get('/types/get').set('Cookie', cookiePair(set));
      expect(got.body).toEqual({ when: '2024-01-02T03:04:05.000Z', bytes: [1, 2, 255], nested: { a: [1, { b: null }] } });
    });

    it('deletes the record and the cookie when the session is cleared', async () => {
      await start();
      const set = await request(server()).get('/set');
      const cleared = await request(server()).get('/clear').set('Cookie', cookiePair(set));
      expect(sessionCookie(cleared)!.header).toContain('Max-Age=0');
      expect(await harness.read(`session:${set.body.sid}`)).toBeNull();
    });

    it('never adopts a sid the store does not know', async () => {
      await start();
      const unknown = 'A'.repeat(43);
      const got = await request(server()).get('/set').set('Cookie', `session=${unknown}`);
      expect(got.body.sid).not.toBe(unknown);
      expect(await harness.read(`session:${unknown}`)).toBeNull();
      expect(calls.readRecord).toBe(1);
    });

    it.each(['short', 'A'.repeat(44), `${'A'.repeat(42)}$`, '../../etc/passwd'.padEnd(43, 'x')])(
      'answers a malformed sid (%s) with a fresh session and no store call',
      async (bad) => {
        await start();
        const got = await request(server()).get('/get').set('Cookie', `session=${encodeURIComponent(bad)}`).expect(200);
        expect(got.body.new).toBe(true);
        expect(calls.readRecord).toBe(0);
      },
    );

    it('regenerate() gives a new sid, keeps the data and deletes the old record', async () => {
      await start();
      const set = await request(server()).get('/set?value=kept');
      const login = await request(server()).get('/login').set('Cookie', cookiePair(set));
      expect(login.body.sid).not.toBe(set.body.sid);
      expect(sessionCookie(login)!.value).toBe(login.body.sid);
      expect(await harness.read(`session:${set.body.sid}`)).toBeNull();
      const got = await request(server()).get('/get').set('Cookie', cookiePair(login));
      expect(got.body.value).toBe('kept');
    });

    it('only refreshes the TTL of an unchanged session, and touches nothing on a route without it', async () => {
      await start({ refreshAfter: 0 });
      const set = await request(server()).get('/set');
      const before = { ...calls };
      await request(server()).get('/get').set('Cookie', cookiePair(set));
      expect(calls.readRecord - before.readRecord).toBe(1);
      expect(calls.refreshRecord - before.refreshRecord).toBe(1);
      expect(calls.swapRecord - before.swapRecord + calls.replaceRecord - before.replaceRecord).toBe(0);
      const untouched = { ...calls };
      await request(server()).get('/none').set('Cookie', cookiePair(set)).expect(200);
      expect(calls).toEqual(untouched);
    });

    it('refreshes an unchanged record at most once per refreshAfter, still re-sending the cookie', async () => {
      await start({ refreshAfter: 1 });
      const set = await request(server()).get('/set');
      const read = async () => {
        const before = { ...calls };
        const got = await request(server()).get('/get').set('Cookie', cookiePair(set)).expect(200);
        expect(sessionCookie(got)!.value).toBe(set.body.sid);
        return { reads: calls.readRecord - before.readRecord, refreshes: calls.refreshRecord - before.refreshRecord };
      };
      expect(await read()).toEqual({ reads: 1, refreshes: 0 }); // just written
      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect(await read()).toEqual({ reads: 1, refreshes: 1 });
      expect(await read()).toEqual({ reads: 1, refreshes: 0 }); // just refreshed
    });

    it('refreshes a record this process has not stored', async () => {
      await start();
      const set = await request(server()).get('/set');
      await start(); // a new interface: another process, as far as it knows
      const before = calls.refreshRecord;
      await request(server()).get('/get').set('Cookie', cookiePair(set)).expect(200);
      expect(calls.refreshRecord - before).toBe(1);
    });

    it('does not refresh when refreshEachRequest is off', async () => {
      await start({}, { refreshEachRequest: false });
      const set = await request(server()).get('/set');
      const got = await request(server()).get('/get').set('Cookie', cookiePair(set));
      expect(calls.refreshRecord).toBe(0);
      expect(setCookies(got)).toEqual([]);
    });

    it('expires records after permanentSessionLifetime', async () => {
      await start({}, { permanentSessionLifetime: 1 });
      const set = await request(server()).get('/set');
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const got = await request(server()).get('/get').set('Cookie', cookiePair(set));
      expect(got.body).toMatchObject({ value: null, new: true });
    });

    it('nonPermanentLifetime: an abandoned browser session goes early, a permanent one stays', async () => {
      await start({ permanent: false, nonPermanentLifetime: 1 }, { permanentSessionLifetime: 60 });
      const browser = await request(server()).get('/set?value=anonymous');
      const remembered = await request(server()).get('/remember');
      expect(sessionCookie(browser)!.expires).toBeUndefined();
      expect(sessionCookie(remembered)!.expires).toBeInstanceOf(Date);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      expect((await request(server()).get('/get').set('Cookie', cookiePair(browser))).body).toMatchObject({ value: null, new: true });
      expect((await request(server()).get('/get').set('Cookie', cookiePair(remembered))).body).toMatchObject({ value: 'remembered', new: false });
    });

    it('signs the sid with useSigner; a bad signature costs no store call; fallback keys verify', async () => {
      await start({ useSigner: true }, { secretKey: 'old' });
      const set = await request(server()).get('/set?value=signed');
      const cookie = sessionCookie(set)!.value!;
      expect(cookie).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{27}$/);
      const forged = `${cookie.slice(0, -1)}${cookie.endsWith('A') ? 'B' : 'A'}`;
      const before = calls.readRecord;
      expect((await request(server()).get('/get').set('Cookie', `session=${forged}`)).body.new).toBe(true);
      expect(calls.readRecord).toBe(before);
      const stored = set.body.sid;
      await app.close();
      app = await createApp({
        imports: [SessionModule.forRoot({ interface: await harness.create({ useSigner: true }), secretKey: 'new', secretKeyFallbacks: ['old'] })],
        controllers: [StoreController],
      }, false, platform);
      const got = await request(server()).get('/get').set('Cookie', `session=${cookie}`);
      expect(got.body).toMatchObject({ value: 'signed', sid: stored });
    });

    it('refuses useSigner without a secretKey at bootstrap', async () => {
      await expect(start({ useSigner: true }, { secretKey: undefined })).rejects.toThrow('"secretKey"');
    });

    it.each(['msgpack', 'json'] as const)('stores %s and reads either format', async (format) => {
      await start({ serializationFormat: format });
      const set = await request(server()).get('/set?value=fmt');
      const raw = (await harness.read(`session:${set.body.sid}`))!;
      if (format === 'json') expect(JSON.parse(raw.toString())).toEqual({ _permanent: true, value: 'fmt' });
      else expect(raw[0] & 0xf0).toBe(0x80); // a msgpack fixmap
      await app.close();
      const other = format === 'json' ? 'msgpack' : 'json';
      app = await createApp({
        imports: [SessionModule.forRoot({ interface: await harness.create({ serializationFormat: other }), secretKey: 'k' })],
        controllers: [StoreController],
      }, false, platform);
      expect((await request(server()).get('/get').set('Cookie', cookiePair(set))).body.value).toBe('fmt');
    });

    it('fails a request whose value cannot be stored, naming the key, and keeps the record', async () => {
      await start();
      const set = await request(server()).get('/set?value=before');
      const bad = await request(server()).get('/bad').set('Cookie', cookiePair(set));
      expect(bad.status).toBe(500);
      const got = await request(server()).get('/get').set('Cookie', cookiePair(set));
      expect(got.body.value).toBe('before');
    });

    const { breakStore, repairStore } = harness;
    if (!breakStore || !repairStore) return;
    it('answers 503 while the store is down, leaves other routes alone, and recovers', async () => {
      await start();
      const set = await request(server()).get('/set?value=survives');
      await breakStore();
      try {
        const down = await request(server()).get('/get').set('Cookie', cookiePair(set));
        expect(down.status).toBe(503);
        expect(down.body.message).toMatch(/session store .* is unavailable/);
        await request(server()).get('/none').expect(200, 'none');
      } finally {
        await repairStore();
      }
      const back = await request(server()).get('/set?value=again');
      expect(back.status).toBe(200);
    });
  });
}
