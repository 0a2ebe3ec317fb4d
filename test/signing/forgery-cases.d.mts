/** Types of forgery-cases.mjs (plain JavaScript, so that stress/forgery.mjs can load it without a build). */
import type fc from 'fast-check';

/** The parts of nest-session the cases need: the lib/ sources or the built dist/. */
export interface ForgeryLibrary {
  Signer: typeof import('../../lib/index.js').Signer;
  UrlSafeTimedSerializer: typeof import('../../lib/index.js').UrlSafeTimedSerializer;
  TaggedJsonSerializer: typeof import('../../lib/index.js').TaggedJsonSerializer;
  BadData: typeof import('../../lib/index.js').BadData;
}

export interface ForgeryTarget {
  readonly name: string;
  /** A `UrlSafeTimedSerializer` token (payload, timestamp, signature) rather than a `Signer` one. */
  readonly timed: boolean;
  /** The valid token; the only string `verify` may accept. */
  readonly token: string;
  readonly separator: string;
  readonly cookieName: string;
  /** Returns when the text is accepted, throws when it is refused. */
  verify(text: string): void;
  /** `signed` with the signature of the key that signed `token`. */
  resign(signed: string): string;
  /** Other valid tokens of the same signer, for splicing parts. */
  readonly others: readonly string[];
  /** Signatures of a text by keys, salts, derivations or digests the verifier must not accept. */
  readonly foreignSignatures: ReadonlyArray<(text: string) => string>;
  /** Whether a thrown error is a refusal (BadData) rather than a crash. */
  isRejection(error: unknown): boolean;
}

export interface TimedTargetOptions {
  name: string;
  /** Keys of the verifier, oldest first. */
  keys: string[];
  /** The key that signs `token`. Default: the last of `keys`. */
  signWith?: string;
  /** Default `'cookie-session'`. */
  salt?: string;
  /** Default `'sha1'`. */
  digestMethod?: string;
  /** The signed session (or give `token`). Default `{ user: 'alice' }`. */
  value?: Record<string, unknown>;
  /** A token signed elsewhere (by a running app) with the same keys. */
  token?: string;
  /** Seconds since the epoch the token is signed at. Default {@link SIGNED_AT}. */
  now?: number;
  /** Default `'session'`. */
  cookieName?: string;
}

export interface SignerTargetOptions {
  name: string;
  keys: string[];
  signWith?: string;
  /** Default `'flask-session'`. */
  salt?: string;
  digestMethod?: string;
  /** Default `'.'`. */
  separator?: string;
  /** The signed value (or give `token`). */
  value?: string;
  /** A token signed elsewhere (by a running app) with the same keys. */
  token?: string;
  others?: string[];
  cookieName?: string;
}

export type TokenMutation = { kind: string } & Record<string, unknown>;
export type HeaderWrap = { kind: string } & Record<string, unknown>;

export interface ForgeryCase {
  /** Index into the targets. */
  target: number;
  change: { mutation?: TokenMutation; header?: HeaderWrap };
}

export interface ForgeryResult {
  target: string;
  kind: string;
  /** The token after the mutation. */
  text: string;
  /** The Cookie header, for header cases. */
  header?: string;
  /** What the verifier got: `text`, or the session cookie the parser read from `header` (`undefined`: none). */
  received: string | undefined;
  /** `received` is the original token. */
  identical: boolean;
  outcome: 'accepted' | 'rejected' | 'crashed';
  error?: unknown;
}

export const BASE64URL_ALPHABET: string;
export const SIGNED_AT: number;
export function timedTarget(lib: ForgeryLibrary, options: TimedTargetOptions): ForgeryTarget;
export function signerTarget(lib: ForgeryLibrary, options: SignerTargetOptions): ForgeryTarget;
export function makeTargets(lib: ForgeryLibrary): ForgeryTarget[];
export const tokenMutation: fc.Arbitrary<TokenMutation>;
export function forgeryCase(targets: readonly ForgeryTarget[]): fc.Arbitrary<ForgeryCase>;
export function caseKind(forgery: ForgeryCase): string;
export function runCase(targets: readonly ForgeryTarget[], forgery: ForgeryCase): ForgeryResult;
export function isCorrect(result: ForgeryResult): boolean;
export function mutate(target: ForgeryTarget, mutation: TokenMutation): string;
export function buildHeader(target: ForgeryTarget, text: string, wrap: HeaderWrap): string;
