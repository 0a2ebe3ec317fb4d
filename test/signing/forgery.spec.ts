/**
 * Forgery property: a signed token (cookie token, signed sid) verifies in its
 * exact spelling and in no other. The generators live in forgery-cases.mjs,
 * shared with stress/forgery.mjs, which runs them 10^6 times on the build.
 */
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { createCache } from 'cache-manager';
import { parseCookie } from 'cookie';
import fc from 'fast-check';
import request from 'supertest';
import { CacheManagerSessionInterface } from '../../lib/cache-manager/index.js';
import * as lib from '../../lib/index.js';
import { BadData, BadTimeSignature, Session, SessionModule, Signer, TaggedJsonSerializer, UrlSafeTimedSerializer, type SessionMixin } from '../../lib/index.js';
import { cookiePair, createApp } from '../support/apps.js';
import {
  BASE64URL_ALPHABET,
  buildHeader,
  caseKind,
  forgeryCase,
  isCorrect,
  makeTargets,
  mutate,
  runCase,
  signerTarget,
  timedTarget,
  type ForgeryResult,
  type ForgeryTarget,
} from './forgery-cases.mjs';

const CASES = 10_000;

const TOKEN_MUTATIONS = [
  'substitute', 'substituteMany', 'insert', 'delete', 'truncate', 'dropPrefix', 'append', 'prepend', 'padPart', 'caseFlip', 'spareBits',
  'permuteParts', 'duplicatePart', 'dropPart', 'splice', 'foreignSignature', 'moveSeparator', 'replaceSeparator', 'compressionFlip',
  'percentRaw', 'loneSurrogate', 'resignedAlias',
];
const HEADER_CHANGES = [
  'plain', 'percentEncode', 'percentEncodeAll', 'sameLowBytePercent', 'doubleEncode', 'overlongUtf8', 'brokenPercent', 'quoted',
  'whitespace', 'forgedFirst', 'forgedLast', 'otherCookies', 'nameCase', 'encodedName', 'semicolon',
].map((kind) => `header:${kind}`);

/** A failure message that shows what was sent and what happened. */
function describeResult(result: ForgeryResult): string {
  const { error, ...rest } = result;
  return JSON.stringify({ ...rest, error: error === undefined ? undefined : String(error) });
}

describe('forgery property (lib sources)', () => {
  const targets = makeTargets(lib);

  it('every target verifies in its own spelling (the property is not vacuous)', () => {
    for (const target of targets) expect(() => target.verify(target.token)).not.toThrow();
  });

  it(`refuses every changed token and accepts the original, over ${CASES.toLocaleString('en')} cases`, () => {
    const kinds = new Map<string, number>();
    let changed = 0;
    let identical = 0;
    fc.assert(
      fc.property(forgeryCase(targets), (forgery) => {
        const result = runCase(targets, forgery);
        const kind = caseKind(forgery).replace(/\+.*/, '');
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
        result.identical ? identical++ : changed++;
        if (!isCorrect(result)) throw new Error(`Wrong outcome: ${describeResult(result)}`);
        // The original still verifies after each case (timed ones from the verified-token cache).
        targets[forgery.target].verify(targets[forgery.target].token);
      }),
      { numRuns: CASES },
    );
    // Every kind of mutation and header ran, most cases changed the token, some (re-encodings) did not.
    expect([...kinds.keys()].sort()).toEqual([...TOKEN_MUTATIONS, ...HEADER_CHANGES].sort());
    for (const [kind, count] of kinds) expect([kind, count >= 20]).toEqual([kind, true]);
    expect(changed).toBeGreaterThan(CASES * 0.8);
    expect(identical).toBeGreaterThan(50);
  });

  it('refuses every character of every token replaced by each other UTF-16 character with the same low byte', () => {
    let tried = 0;
    const accepted: string[] = [];
    for (const target of targets) {
      for (let at = 0; at < target.token.length; at++) {
        const low = target.token.charCodeAt(at) & 0xff;
        for (let high = 0; high < 256; high++) {
          const changed = target.token.slice(0, at) + String.fromCharCode((high << 8) | low) + target.token.slice(at + 1);
          if (changed === target.token) continue;
          tried++;
          try {
            target.verify(changed);
            accepted.push(`${target.name}: ${JSON.stringify(changed)}`);
          } catch (error) {
            if (!(error instanceof BadData)) throw error;
          }
        }
      }
      expect(() => target.verify(target.token)).not.toThrow();
    }
    expect(accepted).toEqual([]);
    // 255 other characters at every position: none skipped.
    expect(tried).toBe(targets.reduce((sum, target) => sum + target.token.length * 255, 0));
  });
});

describe('canonical spellings', () => {
  const serializer = (keys: string | string[], now = () => 1795317842) =>
    new UrlSafeTimedSerializer(keys, { salt: 'cookie-session', serializer: new TaggedJsonSerializer(), now });
  const value = { user: 'alice' };
  const lastCharacter = (text: string) => BASE64URL_ALPHABET.indexOf(text.at(-1)!);

  it.each([
    ['sha1', 2],
    ['sha256', 2],
    ['md5', 4],
    ['sha512', 4],
  ])('%s: refuses the signature with other spare bits in its last character (%i spare bits)', (digestMethod, spare) => {
    const signer = new Signer('k', { salt: 's', digestMethod });
    const token = signer.sign('value');
    const signature = token.slice(token.indexOf('.') + 1);
    expect(lastCharacter(signature) % (1 << spare)).toBe(0);
    for (let low = 1; low < 1 << spare; low++) {
      const alias = signature.slice(0, -1) + BASE64URL_ALPHABET[lastCharacter(signature) + low];
      expect(Buffer.from(alias, 'base64url')).toEqual(Buffer.from(signature, 'base64url')); // the same digest bytes
      expect(signer.verifySignature('value', alias)).toBe(false);
    }
    expect(signer.verifySignature('value', signature)).toBe(true);
  });

  it('refuses padding, the standard alphabet, stray characters and wrong lengths in a signature', () => {
    const signer = new Signer('k', { salt: 's' });
    const signature = signer.getSignature('value');
    const standard = Buffer.from(signature, 'base64url').toString('base64');
    const spellings = [
      signature + '=',
      signature + '==',
      standard,
      standard.replace(/=+$/, ''),
      signature.slice(0, 10) + '\n' + signature.slice(10),
      ' ' + signature,
      signature + '\0',
      signature.slice(0, -1),
      signature + 'A',
      signer.getSignature('value').slice(0, 20),
      '',
    ];
    for (const spelling of spellings.filter((text) => text !== signature)) {
      expect([spelling, signer.verifySignature('value', spelling)]).toEqual([spelling, false]);
    }
  });

  it('refuses a value with a lone surrogate, which UTF-8 would sign as U+FFFD', () => {
    const signer = new Signer('k', { salt: 's' });
    const token = signer.sign('caf\ufffd');
    expect(signer.unsign(token)).toBe('caf\ufffd');
    expect(() => signer.unsign(token.replace('\ufffd', '\ud800'))).toThrow(BadData);
    expect(() => signer.unsign(token.replace('\ufffd', '\udfff'))).toThrow(BadData);
    expect(() => signer.sign('caf\ud800')).toThrow(TypeError);
    expect(signer.unsign(signer.sign('\u{1F600} paired surrogates'))).toBe('\u{1F600} paired surrogates');
  });

  it('refuses a token whose timestamp or payload is spelled another way, even signed with the real key, before the HMAC', () => {
    const s = serializer('k');
    const signer = new Signer('k', { salt: 'cookie-session' });
    const [payload, timestamp] = s.dumps(value).split('.');
    const withLeadingZero = Buffer.concat([Buffer.alloc(1), Buffer.from(timestamp, 'base64url')]).toString('base64url');
    expect(Buffer.from(withLeadingZero, 'base64url').readUIntBE(0, 5)).toBe(Buffer.from(timestamp, 'base64url').readUIntBE(0, 4));
    const timestamps = [withLeadingZero, timestamp + '=', timestamp.slice(0, -1) + BASE64URL_ALPHABET[BASE64URL_ALPHABET.indexOf(timestamp.at(-1)!) + 1], ''];
    for (const spelling of timestamps) {
      expect(() => s.loads(signer.sign(`${payload}.${spelling}`))).toThrow('Malformed timestamp');
      expect(() => s.loads(`${payload}.${spelling}.${'A'.repeat(27)}`)).toThrow('Malformed timestamp');
    }
    // eyJ1c2VyIjoiYWxpY2UifQ is 16 bytes: its last character has 4 spare bits.
    expect(payload).toBe('eyJ1c2VyIjoiYWxpY2UifQ');
    const payloads = [payload + '=', payload + '==', payload.slice(0, -1) + 'R', payload.slice(0, 5) + ' ' + payload.slice(5), payload.slice(0, 5) + '\u00e9' + payload.slice(5)];
    for (const spelling of payloads) {
      expect(() => s.loads(signer.sign(`${spelling}.${timestamp}`))).toThrow(new BadTimeSignature('Malformed payload'));
      expect(() => s.loads(`.${spelling}.${timestamp}.${'A'.repeat(27)}`)).toThrow('Malformed payload');
    }
    expect(s.loads(signer.sign(`${payload}.${timestamp}`))).toEqual(value);
  });

  it('reads back every timestamp width it writes, zero included', () => {
    for (const now of [0, 1, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 5, 2 ** 48 - 1]) {
      const token = serializer('k', () => now).dumps(value);
      expect(serializer('k', () => now).loads(token, 10)).toEqual(value);
    }
  });

  it('never answers an alias from the verified-token cache', () => {
    const s = serializer(['old', 'new']);
    const token = s.dumps(value);
    const old = serializer('old').dumps({ user: 'bob' });
    expect(s.loads(token)).toEqual(value);
    expect(s.loads(old)).toEqual({ user: 'bob' });
    for (const cached of [token, old]) {
      const at = cached.length - 3;
      const alias = cached.slice(0, at) + String.fromCharCode(0x100 | cached.charCodeAt(at)) + cached.slice(at + 1);
      expect(() => s.loads(alias)).toThrow(BadData);
      expect(s.loads(cached)).toBeDefined();
    }
  });
});

// ---------------------------------------------------------------------------
// End to end: the Cookie header, Express, the cookie parser and the interface.

@Controller()
class EchoController {
  @Get('echo')
  echo(@Session() session: SessionMixin) {
    return { data: session.toJSON() };
  }

  @Get('login')
  login(@Session() session: SessionMixin) {
    session.update({ user: 'alice', admin: false });
    return '';
  }
}

/** Sends `runs` forgery cases against a running app's own token: the session opens exactly when the parsed cookie is that token. */
async function attackApp(app: INestApplication, target: ForgeryTarget, runs: number) {
  let accepted = 0;
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(forgeryCase([target]), async (forgery) => {
      const { mutation, header } = forgery.change;
      const text = mutation ? mutate(target, mutation) : target.token;
      const cookie = buildHeader(target, text, header ?? { kind: 'plain' });
      const identical = parseCookie(cookie)[target.cookieName] === target.token;
      const response = await request(app.getHttpServer()).get('/echo').set('Cookie', cookie);
      expect(response.status).toBe(200);
      const opened = response.body.data.user === 'alice';
      expect({ cookie, opened }).toEqual({ cookie, opened: identical });
      identical ? accepted++ : refused++;
    }),
    { numRuns: runs },
  );
  expect(accepted).toBeGreaterThan(0);
  expect(refused).toBeGreaterThan(runs / 2);
}

describe('forgery end to end (a Nest app on Express)', () => {
  let app: INestApplication;
  afterEach(() => app?.close());

  it('signed cookie: only the exact token opens the session', async () => {
    app = await createApp({ imports: [SessionModule.forRoot({ secretKey: 'k', secretKeyFallbacks: ['old'] })], controllers: [EchoController] });
    const token = cookiePair(await request(app.getHttpServer()).get('/login')).slice('session='.length);
    const target = timedTarget(lib, { name: 'app-cookie', keys: ['old', 'k'], token, now: Math.floor(Date.now() / 1000) });
    await attackApp(app, target, 300);
  });

  it('signed sid (useSigner): only the exact cookie opens the session', async () => {
    const sessions = new CacheManagerSessionInterface({ client: createCache(), useSigner: true });
    app = await createApp({ imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'k', secretKeyFallbacks: ['old'] })], controllers: [EchoController] });
    const token = cookiePair(await request(app.getHttpServer()).get('/login')).slice('session='.length);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{27}$/);
    const sid = token.split('.')[0];
    const other = new Signer(['old', 'k'], { salt: 'flask-session' }).sign(sid.slice(1) + 'A');
    const target = signerTarget(lib, { name: 'app-sid', keys: ['old', 'k'], token, others: [other] });
    await attackApp(app, target, 200);
  });
});
