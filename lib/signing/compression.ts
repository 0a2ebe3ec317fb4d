/**
 * Whether zlib could possibly make `json` shorter than `json.length - 1`
 * bytes, the test itsdangerous applies before it keeps a compressed payload.
 *
 * Running zlib costs about 20 µs a call in Node (it sets up 256 KiB of state),
 * more than signing and verifying together, and small sessions never compress.
 * This check proves the loss without running zlib, so nest-session compresses
 * exactly when Flask does and skips zlib when it cannot win:
 *
 * - With no repeated 3-byte sequence, deflate finds no match (its shortest
 *   match is 3 bytes), so every byte is a literal.
 * - A zlib stream adds 6 bytes (header, Adler-32), so the deflate data must
 *   take fewer than 8 × (n − 7) bits.
 * - Stored and fixed-Huffman blocks take at least 8n bits of literals.
 * - A dynamic-Huffman block takes at least: 3 (block type) + 14 (HLIT, HDIST,
 *   HCLEN) + 12 (four code-length codes) bits, at least 1 bit per used symbol
 *   and per zero run (up to 4 for a run: code 17 or 18 and its extra bits) in
 *   the code lengths, and at least the entropy of the literals, n·H bits.
 *
 * When that lower bound already reaches 8 × (n − 7), compressing cannot win.
 */
export function mayCompress(json: Buffer): boolean {
  const n = json.length;
  if (n <= 8) return false;
  if (hasRepeatedTrigram(json)) return true;
  counts.fill(0);
  for (let i = 0; i < n; i++) counts[json[i]]++;
  counts[256] = 1; // the end-of-block symbol is always coded
  let entropyBits = 0;
  let codeLengthBits = 0;
  let previous = -1;
  for (let symbol = 0; symbol < 257; symbol++) {
    const count = counts[symbol];
    if (count === 0) continue;
    if (symbol < 256) entropyBits -= count * Math.log2(count / n);
    // This symbol's code length, and the zero run before it (at most 4 bits).
    codeLengthBits += Math.min(symbol - previous - 1, 4) + 1;
    previous = symbol;
  }
  const dynamicLowerBound = 3 + 14 + 12 + codeLengthBits + entropyBits;
  return dynamicLowerBound < 8 * (n - 7);
}

/** Symbol counts of the payload being checked; reused, as checks never overlap. */
const counts = new Uint32Array(257);

/** Trigram hash slots, stamped with the call that last saw them, so no clearing between calls. */
const slots = new Uint32Array(1 << 16);
let stamp = 0;

/**
 * True when some 3-byte sequence occurs twice. Hash collisions can only make
 * it answer true wrongly, which costs a zlib run, never a different result.
 */
function hasRepeatedTrigram(bytes: Buffer): boolean {
  if (++stamp === 0xffffffff) {
    slots.fill(0);
    stamp = 1;
  }
  for (let i = 0; i + 2 < bytes.length; i++) {
    const slot = ((bytes[i] * 0x9e37) ^ (bytes[i + 1] * 0x2b5f) ^ (bytes[i + 2] * 0x1d)) & 0xffff;
    if (slots[slot] === stamp) return true;
    slots[slot] = stamp;
  }
  return false;
}
