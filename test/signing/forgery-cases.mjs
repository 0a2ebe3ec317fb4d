/**
 * Forgery cases for nest-session's signed tokens, shared by
 * test/signing/forgery.spec.ts (10^4 cases, in CI) and stress/forgery.mjs
 * (10^6 cases against the built package). Plain JavaScript so that both can
 * load it; `lib` is nest-session's exports (the lib/ sources under Jest, dist/
 * in the stress run). Types: forgery-cases.d.mts.
 *
 * A case is a valid token changed in one way an attacker could try, sent as
 * the token itself or inside a Cookie header (decoded by the `cookie` package,
 * the parser nest-session uses). The property: the verifier accepts exactly
 * the strings equal to the original token, every other one is refused with a
 * BadData error.
 */
import fc from 'fast-check';
import { parseCookie } from 'cookie';

export const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const VALUE_OF = new Map([...BASE64URL_ALPHABET].map((char, value) => [char, value]));

/** When the built-in targets are signed (seconds); verification never checks the age, so expiry cannot hide an alias. */
export const SIGNED_AT = 1795317842;

/**
 * A token signed by itsdangerous's timed serializer, as Flask's session
 * cookie: `payload.timestamp.signature`.
 */
export function timedTarget(lib, { name, keys, signWith = keys.at(-1), salt = 'cookie-session', digestMethod = 'sha1', value = { user: 'alice' }, token, now = SIGNED_AT, cookieName = 'session' }) {
  const options = (at) => ({ salt, digestMethod, serializer: new lib.TaggedJsonSerializer(), now: () => at });
  const verifier = new lib.UrlSafeTimedSerializer(keys, options(now));
  const signer = new lib.UrlSafeTimedSerializer(signWith, options(now));
  token ??= signer.dumps(value);
  const others = [
    signer.dumps({ user: 'mallory', admin: true }),
    new lib.UrlSafeTimedSerializer(signWith, options(now + 1)).dumps(value),
    new lib.UrlSafeTimedSerializer(signWith, options(now - 86400)).dumps({ ...value, extra: 'x'.repeat(120) }),
  ];
  return {
    name,
    timed: true,
    token,
    separator: '.',
    cookieName,
    verify: (text) => void verifier.loads(text),
    resign: (signed) => signed + '.' + signer.signer.getSignature(signed),
    others,
    foreignSignatures: foreignSigners(lib, keys, signWith, { salt, digestMethod }),
    isRejection: (error) => error instanceof lib.BadData,
  };
}

/** A value signed by itsdangerous's `Signer`, as Flask-Session's signed sid: `value.signature`. */
export function signerTarget(lib, { name, keys, signWith = keys.at(-1), salt = 'flask-session', digestMethod = 'sha1', separator = '.', value, token, others = [], cookieName = 'session' }) {
  const options = { salt, digestMethod, separator };
  const verifier = new lib.Signer(keys, options);
  const signer = new lib.Signer(signWith, options);
  return {
    name,
    timed: false,
    token: token ?? signer.sign(value),
    separator,
    cookieName,
    verify: (text) => void verifier.unsign(text),
    resign: (signed) => signed + separator + signer.getSignature(signed),
    others: others.length ? others : [signer.sign('B'.repeat(43)), signer.sign(value + 'x')],
    foreignSignatures: foreignSigners(lib, keys, signWith, options),
    isRejection: (error) => error instanceof lib.BadData,
  };
}

/** Signatures of the same text by keys the verifier must not accept: another secret, salt, derivation or digest. */
function foreignSigners(lib, keys, signWith, { salt, digestMethod, separator = '.' }) {
  const secret = typeof signWith === 'string' ? signWith : signWith.toString('latin1');
  const otherSalt = salt === 'cookie-session' ? 'flask-session' : 'cookie-session';
  return [
    new lib.Signer('attacker-key', { salt, digestMethod, separator }),
    new lib.Signer(secret + ' ', { salt, digestMethod, separator }),
    new lib.Signer(secret.toUpperCase(), { salt, digestMethod, separator }),
    new lib.Signer(secret, { salt: otherSalt, digestMethod, separator }),
    new lib.Signer(secret, { salt, digestMethod, separator, keyDerivation: 'django-concat' }),
    new lib.Signer(secret, { salt, digestMethod, separator, keyDerivation: 'concat' }),
    new lib.Signer(secret, { salt, digestMethod, separator, keyDerivation: 'none' }),
    new lib.Signer(secret, { salt, digestMethod: digestMethod === 'sha1' ? 'sha256' : 'sha1', separator }),
    new lib.Signer(secret, { salt, digestMethod: digestMethod === 'md5' ? 'sha1' : 'md5', separator }),
    ...keys.filter((key) => key !== signWith).map((key) => new lib.Signer(key, { salt: otherSalt, digestMethod, separator })),
  ].map((signer) => (text) => signer.getSignature(text));
}

/** The built-in targets: cookie tokens with and without compression, several timestamp widths and digests, signed sids. */
export function makeTargets(lib) {
  const cookieKeys = ['old-key', 'current-key'];
  const session = { user: 'alice', roles: ['admin', 'editor'], n: 1, at: new Date(Date.UTC(2025, 0, 2, 3, 4, 5)) };
  const sid = Buffer.from('b3f1c2d4e5a6978812345678abcdef00112233445566778899aabbccddeeff00', 'hex').toString('base64url');
  const sidKeys = ['old-sid-key', 'sid-key'];
  const targets = [
    timedTarget(lib, { name: 'cookie', keys: cookieKeys, value: session }),
    timedTarget(lib, { name: 'cookie-compressed', keys: cookieKeys, value: { ...session, notes: 'lorem ipsum dolor '.repeat(20) } }),
    timedTarget(lib, { name: 'cookie-fallback-key', keys: cookieKeys, signWith: 'old-key', value: session }),
    timedTarget(lib, { name: 'cookie-1-byte-timestamp', keys: cookieKeys, value: session, now: 200 }),
    timedTarget(lib, { name: 'cookie-6-byte-timestamp', keys: cookieKeys, value: session, now: 2 ** 40 + 12345 }),
    timedTarget(lib, { name: 'cookie-sha512', keys: cookieKeys, value: session, digestMethod: 'sha512' }),
    timedTarget(lib, { name: 'cookie-sha3-256', keys: cookieKeys, value: session, digestMethod: 'sha3-256' }),
    signerTarget(lib, { name: 'signed-sid', keys: sidKeys, value: sid }),
    signerTarget(lib, { name: 'signed-sid-fallback-key', keys: sidKeys, signWith: 'old-sid-key', value: sid }),
    signerTarget(lib, { name: 'signed-text-md5', keys: ['k'], salt: 's', digestMethod: 'md5', separator: ':', value: 'user=alice caf\u00e9 \ufffd' }),
  ];
  if (!targets[1].token.startsWith('.')) throw new Error('The compressed target did not compress');
  return targets;
}

// ---------------------------------------------------------------------------
// Mutations

const position = fc.nat({ max: 1 << 20 });
const kind = (name, fields = {}) => fc.record({ kind: fc.constant(name), ...fields });

/** Characters that look like, stand for or are dropped next to base64url text. */
const SPECIALS = [
  '=', '.', ':', '%', '+', '/', ' ', '\t', '\n', '\r', '\0', '"', ';', ',', '\\', '~',
  '\u00a0', '\u00ad', '\u200b', '\u200d', '\ufeff', '\u0301', '\u3002', '\uff0e', '\u2024', '\ufe52',
  '\ufffd', '\ud800', '\udc00', '\u0130', '\u0131', '\u017f', '\u212a',
];

/** One replacement character; `sameLowByte` is resolved against the character it replaces. */
const replacement = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 255 }).map((high) => ({ sameLowByte: high })) },
  { weight: 2, arbitrary: fc.constantFrom(...BASE64URL_ALPHABET).map((text) => ({ text })) },
  { weight: 2, arbitrary: fc.constantFrom(...SPECIALS).map((text) => ({ text })) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x7f }).map((code) => ({ text: String.fromCharCode(code) })) },
  { weight: 1, arbitrary: fc.integer({ min: 0xff01, max: 0xff5e }).map((code) => ({ text: String.fromCharCode(code) })) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((code) => ({ text: String.fromCharCode(code) })) },
  { weight: 1, arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }).map((code) => ({ text: String.fromCodePoint(code) })) },
);

const extraText = fc.oneof(
  fc.constantFrom('=', '==', '===', '.', '..', '.=', ':', ' ', '\n', '\0', '%00', '%3D', ';', 'A', 'AA', 'AAA', '-', '_', '\u0100', '\u013d'),
  fc.string({ unit: fc.constantFrom(...BASE64URL_ALPHABET, '.', '='), minLength: 1, maxLength: 8 }),
  fc.array(replacement, { minLength: 1, maxLength: 3 }),
);

const SEPARATOR_LOOKALIKES = ['', ':', '..', '%2E', '%2e', '\u012e', '\uff0e', '\u3002', '\u2024', '\ufe52', '\0', ',', ';', '=', ' .', '. ', '.\u0301'];

/** How a key holder (or a lenient decoder) could spell the same bytes of a payload or timestamp differently. */
const ALIAS_SPELLINGS = ['spareBits', 'padding', 'standardAlphabet', 'whitespace', 'nonAscii', 'leadingZero'];

/** Changes made to the token text itself. */
export const tokenMutation = fc.oneof(
  { weight: 6, arbitrary: kind('substitute', { at: position, with: replacement }) },
  { weight: 2, arbitrary: kind('substituteMany', { edits: fc.array(fc.record({ at: position, with: replacement }), { minLength: 2, maxLength: 6 }) }) },
  kind('insert', { at: position, with: fc.array(replacement, { minLength: 1, maxLength: 3 }) }),
  kind('delete', { at: position, length: fc.integer({ min: 1, max: 8 }) }),
  kind('truncate', { keep: position }),
  kind('dropPrefix', { length: fc.integer({ min: 1, max: 12 }) }),
  kind('append', { text: extraText }),
  kind('prepend', { text: extraText }),
  kind('padPart', { part: position, count: fc.integer({ min: 1, max: 3 }) }),
  kind('caseFlip', { at: position }),
  { weight: 2, arbitrary: kind('spareBits', { part: position, choice: position }) },
  kind('permuteParts', { order: fc.nat() }),
  kind('duplicatePart', { part: position }),
  kind('dropPart', { part: position }),
  kind('splice', { part: position, other: position }),
  { weight: 2, arbitrary: kind('foreignSignature', { signer: position }) },
  kind('moveSeparator', { which: position, to: position }),
  kind('replaceSeparator', { which: position, with: fc.constantFrom(...SEPARATOR_LOOKALIKES) }),
  kind('compressionFlip'),
  kind('percentRaw', { at: position, lower: fc.boolean() }),
  kind('loneSurrogate', { at: position, code: fc.integer({ min: 0xd800, max: 0xdfff }) }),
  { weight: 2, arbitrary: kind('resignedAlias', { part: fc.constantFrom('payload', 'timestamp'), spelling: fc.constantFrom(...ALIAS_SPELLINGS), choice: position }) },
);

/** Changes made to the Cookie header that carries the (possibly mutated) token. */
const headerWrap = fc.oneof(
  kind('plain'),
  kind('percentEncode', { positions: fc.array(position, { minLength: 1, maxLength: 6 }), lower: fc.boolean() }),
  kind('percentEncodeAll', { lower: fc.boolean() }),
  { weight: 3, arbitrary: kind('sameLowBytePercent', { at: position, high: fc.integer({ min: 1, max: 255 }) }) },
  kind('doubleEncode', { at: position }),
  kind('overlongUtf8', { at: position }),
  kind('brokenPercent', { at: position, junk: fc.constantFrom('%', '%G1', '%4', '%zz', '%%', '%u0041', '%ED%A0%80', '%C0%AE', '%FF') }),
  kind('quoted'),
  kind('whitespace', { left: fc.constantFrom('', ' ', '\t', '  '), right: fc.constantFrom('', ' ', '\t ') }),
  kind('forgedFirst', { forged: tokenMutation }),
  kind('forgedLast', { forged: tokenMutation }),
  kind('otherCookies'),
  kind('nameCase'),
  kind('encodedName'),
  kind('semicolon', { at: position }),
);

/** A case for one of `targets`: a token mutation, or a header built around an (optionally mutated) token. */
export function forgeryCase(targets) {
  return fc.record({
    target: fc.nat({ max: targets.length - 1 }),
    change: fc.oneof(
      { weight: 3, arbitrary: tokenMutation.map((mutation) => ({ mutation })) },
      { weight: 2, arbitrary: fc.record({ mutation: fc.option(tokenMutation, { freq: 2, nil: undefined }), header: headerWrap }) },
    ),
  });
}

/** The label a case is counted under. */
export function caseKind(forgery) {
  const { mutation, header } = forgery.change;
  if (!header) return mutation.kind;
  return `header:${header.kind}${mutation ? '+' + mutation.kind : ''}`;
}

/**
 * Runs one case. `received` is what the verifier got (after the cookie parser
 * for header cases; `undefined` when the header carried no session cookie);
 * `identical` says whether it equals the original token, the only string that
 * may be accepted.
 */
export function runCase(targets, forgery) {
  const target = targets[forgery.target];
  const { mutation, header } = forgery.change;
  const text = mutation ? mutate(target, mutation) : target.token;
  const sent = header ? buildHeader(target, text, header) : undefined;
  const received = sent === undefined ? text : parseCookie(sent)[target.cookieName];
  const base = { target: target.name, kind: caseKind(forgery), text, header: sent, received, identical: received === target.token };
  if (received === undefined) return { ...base, outcome: 'rejected' };
  try {
    target.verify(received);
    return { ...base, outcome: 'accepted' };
  } catch (error) {
    return target.isRejection(error) ? { ...base, outcome: 'rejected' } : { ...base, outcome: 'crashed', error };
  }
}

/** Whether a case ended as it must: the original accepted, anything else refused, nothing crashed. */
export function isCorrect(result) {
  return result.outcome === (result.identical ? 'accepted' : 'rejected');
}

function resolve(spec, replaced = 'A') {
  return spec.sameLowByte === undefined ? spec.text : String.fromCharCode((spec.sameLowByte << 8) | (replaced.charCodeAt(0) & 0xff));
}

function replaceAt(text, at, by) {
  const i = at % Math.max(text.length, 1);
  return text.slice(0, i) + by + text.slice(i + 1);
}

/** The character at `at` of a base64url spelling with the same value but other spare bits, if it has spare bits. */
function spareBitsAlias(part, choice) {
  const spare = [0, 6, 4, 2][part.length % 4];
  if (spare === 0 || spare === 6 || !VALUE_OF.has(part.at(-1))) return undefined;
  const value = VALUE_OF.get(part.at(-1));
  const kept = value >> spare;
  const alternatives = [];
  for (let low = 0; low < 1 << spare; low++) if (((kept << spare) | low) !== value) alternatives.push(BASE64URL_ALPHABET[(kept << spare) | low]);
  return part.slice(0, -1) + alternatives[choice % alternatives.length];
}

function permutation(length, order) {
  const pool = [...Array(length).keys()];
  const result = [];
  for (let n = length; n > 0; n--) {
    result.push(pool.splice(order % n, 1)[0]);
    order = Math.floor(order / n);
  }
  if (result.every((index, i) => index === i)) result.push(result.shift()); // never the identity
  return result;
}

/** The token changed by one mutation. */
export function mutate(target, mutation) {
  const { token, separator: sep } = target;
  const parts = token.split(sep);
  switch (mutation.kind) {
    case 'substitute': {
      const i = mutation.at % token.length;
      return replaceAt(token, i, resolve(mutation.with, token[i]));
    }
    case 'substituteMany': {
      let text = token;
      for (const edit of mutation.edits) {
        const i = edit.at % text.length;
        text = replaceAt(text, i, resolve(edit.with, text[i]));
      }
      return text;
    }
    case 'insert': {
      const i = mutation.at % (token.length + 1);
      return token.slice(0, i) + mutation.with.map((spec) => resolve(spec, token[i] ?? 'A')).join('') + token.slice(i);
    }
    case 'delete': {
      const i = mutation.at % token.length;
      return token.slice(0, i) + token.slice(i + mutation.length);
    }
    case 'truncate':
      return token.slice(0, mutation.keep % token.length);
    case 'dropPrefix':
      return token.slice(mutation.length);
    case 'append':
    case 'prepend': {
      const extra = typeof mutation.text === 'string' ? mutation.text : mutation.text.map((spec) => resolve(spec)).join('');
      return mutation.kind === 'append' ? token + extra : extra + token;
    }
    case 'padPart': {
      const i = mutation.part % parts.length;
      return parts.map((part, j) => (j === i ? part + '='.repeat(mutation.count) : part)).join(sep);
    }
    case 'caseFlip': {
      for (let k = 0; k < token.length; k++) {
        const i = (mutation.at + k) % token.length;
        const flipped = token[i] === token[i].toUpperCase() ? token[i].toLowerCase() : token[i].toUpperCase();
        if (flipped !== token[i]) return replaceAt(token, i, flipped);
      }
      return token;
    }
    case 'spareBits': {
      // The first part, counted from `part`, whose last character has spare bits.
      for (let k = 0; k < parts.length; k++) {
        const i = (mutation.part + k) % parts.length;
        const alias = spareBitsAlias(parts[i], mutation.choice);
        if (alias !== undefined) return parts.map((part, j) => (j === i ? alias : part)).join(sep);
      }
      return token + '=';
    }
    case 'permuteParts':
      return permutation(parts.length, mutation.order).map((i) => parts[i]).join(sep);
    case 'duplicatePart': {
      const i = mutation.part % parts.length;
      return [...parts.slice(0, i + 1), parts[i], ...parts.slice(i + 1)].join(sep);
    }
    case 'dropPart': {
      const i = mutation.part % parts.length;
      return parts.filter((_, j) => j !== i).join(sep);
    }
    case 'splice': {
      const other = target.others[mutation.other % target.others.length].split(sep);
      const i = mutation.part % Math.min(parts.length, other.length);
      return parts.map((part, j) => (j === i ? other[i] : part)).join(sep);
    }
    case 'foreignSignature': {
      const at = token.lastIndexOf(sep);
      const signed = token.slice(0, at);
      return signed + sep + target.foreignSignatures[mutation.signer % target.foreignSignatures.length](signed);
    }
    case 'moveSeparator': {
      const positions = [];
      for (let i = token.indexOf(sep); i !== -1; i = token.indexOf(sep, i + 1)) positions.push(i);
      const from = positions[mutation.which % positions.length];
      const without = token.slice(0, from) + token.slice(from + sep.length);
      const to = mutation.to % (without.length + 1);
      return without.slice(0, to) + sep + without.slice(to);
    }
    case 'replaceSeparator': {
      const positions = [];
      for (let i = token.indexOf(sep); i !== -1; i = token.indexOf(sep, i + 1)) positions.push(i);
      const at = positions[mutation.which % positions.length];
      return token.slice(0, at) + mutation.with + token.slice(at + sep.length);
    }
    case 'compressionFlip':
      return token.startsWith('.') ? token.slice(1) : '.' + token;
    case 'percentRaw': {
      const i = mutation.at % token.length;
      const hex = (token.charCodeAt(i) & 0xff).toString(16).padStart(2, '0');
      return replaceAt(token, i, '%' + (mutation.lower ? hex : hex.toUpperCase()));
    }
    case 'loneSurrogate': {
      // U+FFFD and every lone surrogate have one UTF-8 encoding (EF BF BD).
      const i = token.includes('\ufffd') ? token.indexOf('\ufffd') : mutation.at % token.length;
      return replaceAt(token, i, String.fromCharCode(mutation.code));
    }
    case 'resignedAlias':
      return target.timed ? resignedAlias(target, mutation) : token;
    default:
      throw new Error(`Unknown mutation ${mutation.kind}`);
  }
}

/**
 * The token's payload or timestamp spelled another way that a lenient base64
 * decoder (Python's) reads as the same bytes, signed again with the real key:
 * what only a key holder could make, and still not the canonical spelling.
 */
function resignedAlias(target, { part, spelling, choice }) {
  const signed = target.token.slice(0, target.token.lastIndexOf('.'));
  const at = signed.lastIndexOf('.');
  const compressed = signed.startsWith('.');
  let payload = signed.slice(compressed ? 1 : 0, at);
  let timestamp = signed.slice(at + 1);
  const spell = (text) => {
    switch (spelling) {
      case 'spareBits':
        return spareBitsAlias(text, choice) ?? text + '=';
      case 'padding':
        return text + '='.repeat(1 + (choice % 3));
      case 'standardAlphabet':
        return /[-_]/.test(text) ? text.replace(/-/g, '+').replace(/_/g, '/') : text + '\n';
      case 'whitespace':
        return insertAt(text, choice, [' ', '\n', '\t', '\r\n'][choice % 4]);
      case 'nonAscii':
        return insertAt(text, choice, ['\u00e9', '\u0100', '\u2028', '\ud83d\ude00'][choice % 4]);
      case 'leadingZero':
        return Buffer.concat([Buffer.alloc(1 + (choice % 2)), Buffer.from(text, 'base64url')]).toString('base64url');
      default:
        throw new Error(`Unknown spelling ${spelling}`);
    }
  };
  // Leading zero bytes change a payload's bytes, so for a payload that spelling pads instead.
  if (part === 'payload') payload = spelling === 'leadingZero' ? payload + '==' : spell(payload);
  else timestamp = spell(timestamp);
  return target.resign((compressed ? '.' : '') + payload + '.' + timestamp);
}

function insertAt(text, choice, inserted) {
  const i = 1 + (choice % Math.max(text.length - 1, 1));
  return text.slice(0, i) + inserted + text.slice(i);
}

// ---------------------------------------------------------------------------
// Cookie headers

/** Characters a cookie value can carry as they are (RFC 6265 cookie-octet), minus `%`, which is always encoded. */
const COOKIE_OCTET = /^[\x21\x23-\x24\x26-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]$/;

function percentBytes(text, lower) {
  const hex = Buffer.from(text, 'utf8').toString('hex');
  const encoded = hex.replace(/../g, '%$&');
  return lower ? encoded : encoded.toUpperCase();
}

/**
 * A Cookie header carrying `text` as the session cookie, changed by `wrap`.
 * Characters a header cannot hold are sent percent-encoded (UTF-8), as a
 * client would, so the header is plain ASCII.
 */
export function buildHeader(target, text, wrap) {
  const name = target.cookieName;
  // One entry per code point: the form it is sent in.
  const chars = Array.from(text);
  const pieces = chars.map((char) => (COOKIE_OCTET.test(char) ? char : percentBytes(char, false)));
  const pick = (at) => at % Math.max(pieces.length, 1);
  switch (wrap.kind) {
    case 'percentEncode':
      for (const at of wrap.positions) pieces[pick(at)] = percentBytes(chars[pick(at)] ?? '', wrap.lower);
      break;
    case 'percentEncodeAll':
      for (let i = 0; i < pieces.length; i++) pieces[i] = percentBytes(chars[i], wrap.lower);
      break;
    case 'sameLowBytePercent': {
      const i = pick(wrap.at);
      pieces[i] = percentBytes(String.fromCharCode((wrap.high << 8) | ((chars[i]?.charCodeAt(0) ?? 0x41) & 0xff)), false);
      break;
    }
    case 'doubleEncode': {
      const i = pick(wrap.at);
      pieces[i] = percentBytes(chars[i] ?? 'A', false).replace(/%/g, '%25');
      break;
    }
    case 'overlongUtf8': {
      const i = pick(wrap.at);
      const code = (chars[i]?.charCodeAt(0) ?? 0x41) & 0x7f;
      pieces[i] = '%' + (0xc0 | (code >> 6)).toString(16).toUpperCase() + '%' + (0x80 | (code & 0x3f)).toString(16).toUpperCase();
      break;
    }
    case 'brokenPercent':
      pieces.splice(wrap.at % (pieces.length + 1), 0, wrap.junk);
      break;
    case 'semicolon':
      pieces.splice(wrap.at % (pieces.length + 1), 0, ';');
      break;
  }
  const value = pieces.join('');
  const original = target.token.replace(/[^\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]|%/g, (char) => percentBytes(char, false));
  switch (wrap.kind) {
    case 'quoted':
      return `${name}="${value}"`;
    case 'whitespace':
      return `${name}=${wrap.left}${value}${wrap.right}`;
    case 'forgedFirst':
      return `${name}=${buildHeader(target, mutate(target, wrap.forged), { kind: 'plain' }).slice(name.length + 1)}; ${name}=${value}`;
    case 'forgedLast':
      return `${name}=${value}; ${name}=${buildHeader(target, mutate(target, wrap.forged), { kind: 'plain' }).slice(name.length + 1)}`;
    case 'otherCookies':
      return `theme=dark; ${name}x=${original}; ${name}=${value}; x${name}=${original}`;
    case 'nameCase':
      return `${name[0].toUpperCase()}${name.slice(1)}=${value}`;
    case 'encodedName':
      return `${percentBytes(name[0], false)}${name.slice(1)}=${value}`;
    default:
      return `${name}=${value}`;
  }
}
