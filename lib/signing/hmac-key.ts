import { createHmac, hash } from 'node:crypto';

/** Input block sizes (bytes) of the hashes the one-shot path knows; others use `createHmac`. */
const BLOCK_SIZES: Readonly<Record<string, number>> = { md5: 64, sha1: 64, sha224: 64, sha256: 64, sha384: 128, sha512: 128 };
/** Longest message (UTF-8 bytes) signed through the shared buffer; a session cookie is at most about 4 KiB. */
const MAX_ONE_SHOT_MESSAGE = 16 * 1024;

/** Shared across keys: signing is synchronous, so no two calls overlap. */
const scratch = Buffer.alloc(128 + MAX_ONE_SHOT_MESSAGE);

/**
 * One HMAC key, computing `HMAC(key, message)` (RFC 2104) with two calls of
 * node:crypto's one-shot `hash()` over the key's precomputed inner and outer
 * pads, the same bytes `createHmac` gives (tested against it).
 *
 * Why not `createHmac` every time: each call builds a stream object with a
 * native handle that the garbage collector must finalize; on a busy server
 * that cost 2-3 % of a whole request that writes a session (measured), more
 * than the hashing itself.
 */
export class HmacKey {
  private readonly blockSize: number | undefined;
  private readonly innerPad: Buffer;
  /** The outer pad followed by the inner digest, written in place on each call. */
  private readonly outerBlock: Buffer;

  constructor(
    readonly digestMethod: string,
    readonly key: Buffer,
  ) {
    this.blockSize = BLOCK_SIZES[digestMethod.toLowerCase()];
    const blockSize = this.blockSize ?? 0;
    // A key longer than a block is hashed first; a shorter one is zero-padded.
    const block = Buffer.alloc(blockSize);
    if (blockSize) (key.length > blockSize ? hash(digestMethod, key, 'buffer') : key).copy(block);
    this.innerPad = Buffer.from(block.map((byte) => byte ^ 0x36));
    const digestLength = blockSize ? hash(digestMethod, '', 'buffer').length : 0;
    this.outerBlock = Buffer.concat([block.map((byte) => byte ^ 0x5c), Buffer.alloc(digestLength)]);
  }

  /** base64url of `HMAC(key, message)`, `message` encoded as UTF-8. */
  sign(message: string): string {
    const blockSize = this.blockSize;
    if (blockSize === undefined || message.length * 3 > MAX_ONE_SHOT_MESSAGE) {
      return createHmac(this.digestMethod, this.key).update(message, 'utf8').digest('base64url');
    }
    this.innerPad.copy(scratch, 0);
    const length = scratch.write(message, blockSize, 'utf8');
    // As latin1 text, one character a byte: no Buffer (and no ArrayBuffer to collect) for the inner digest.
    const innerDigest = hash(this.digestMethod, scratch.subarray(0, blockSize + length), 'binary');
    this.outerBlock.write(innerDigest, blockSize, 'latin1');
    return hash(this.digestMethod, this.outerBlock, 'base64url');
  }
}
