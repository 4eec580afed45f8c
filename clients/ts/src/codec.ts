/**
 * The roomcast wire codec: bincode 2.0.1 (serde mode) with the `standard()`
 * configuration, as specified in `shared/PROTOCOL.md` §2 and §8.
 *
 * - unsigned integers wider than 8 bits are varints: `0..=250` is one byte,
 *   `251` + u16 LE, `252` + u32 LE, `253` + u64 LE; a marker wider than the
 *   field (e.g. `252` for a `u16`) and `254`/`255` are refused;
 * - signed integers wider than 8 bits are zigzag-mapped, then varints;
 *   `u8`/`i8` are one raw byte;
 * - `bool` is one byte `00`/`01`, `Option` a `00`/`01` tag, an enum its variant
 *   index as a `u32` varint; strings, byte strings and vectors are prefixed by
 *   their length (a `u64` varint); fixed arrays are raw;
 * - `f32` is 4 bytes IEEE-754 little-endian.
 *
 * Number representation: `u8`, `i8`, `u16`, `u32`, `i32` and `f32` are JS
 * `number`s; `u64` and `i64` are always `bigint`, so every value the wire can
 * carry (ticks, clock values, scores) round-trips exactly.
 *
 * Decoding is strict, like the Rust side: truncated input, trailing bytes, bad
 * tags, over-wide varint markers, invalid UTF-8 and declared lengths beyond the
 * remaining input or beyond the 16 MiB decode budget all throw a
 * {@link DecodeError}. Nothing is allocated for a length before it is checked.
 *
 * @module
 */

/**
 * Decode budget of one message (bincode's `with_limit`): the decoded size,
 * counted as bincode counts it (each integer its in-memory width, each string or
 * byte string its declared length), may not exceed this.
 */
export const MAX_DECODE_BYTES = 16 * 1024 * 1024;

/** What was wrong with the bytes. */
export type DecodeErrorKind =
  /** The input ended before the value was complete (or a declared length runs past its end). */
  | 'truncated'
  /** Bytes remained after the value. */
  | 'trailing-bytes'
  /** A varint marker that is invalid for the field's width (or `fe`/`ff`). */
  | 'invalid-varint'
  /** An unknown enum variant, or an `Option`/`bool` byte other than `00`/`01`. */
  | 'invalid-tag'
  /** A string that is not valid UTF-8. */
  | 'invalid-utf8'
  /**
   * A declared length beyond the decode budget (16 MiB). A smaller length that
   * runs past the end of the input is `truncated`.
   */
  | 'limit-exceeded';

/** The bytes are not a valid encoding of the expected type. */
export class DecodeError extends Error {
  override readonly name = 'DecodeError';
  /** What was wrong. */
  readonly kind: DecodeErrorKind;
  /** Byte offset in the input where the problem was found. */
  readonly offset: number;

  constructor(kind: DecodeErrorKind, offset: number, message: string) {
    super(`${message} (at byte ${offset})`);
    this.kind = kind;
    this.offset = offset;
  }
}

/** A value cannot be encoded: out of range for its wire type, or malformed. */
export class EncodeError extends RangeError {
  override readonly name = 'EncodeError';
}

const MARKER_U16 = 251;
const MARKER_U32 = 252;
const MARKER_U64 = 253;
const MAX_SINGLE_BYTE = 250;

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Width of a varint field, in bits. */
type VarintWidth = 16 | 32 | 64;

/**
 * Reads values from one encoded message. Every method throws a
 * {@link DecodeError} on malformed input; call {@link Reader.finish} at the end
 * to refuse trailing bytes (or use {@link decodeWith}, which does).
 */
export class Reader {
  private readonly input: Uint8Array;
  private readonly view: DataView;
  private readonly limit: number;
  private pos = 0;
  /** Decoded size claimed so far, as bincode counts it. */
  private claimed = 0;

  constructor(input: Uint8Array, limit: number = MAX_DECODE_BYTES) {
    this.input = input;
    this.view = new DataView(input.buffer, input.byteOffset, input.byteLength);
    this.limit = limit;
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.pos;
  }

  /** Bytes not consumed yet. */
  get remaining(): number {
    return this.input.length - this.pos;
  }

  /** Refuses trailing bytes. */
  finish(): void {
    if (this.remaining !== 0) {
      throw new DecodeError('trailing-bytes', this.pos, `${this.remaining} unexpected trailing byte(s)`);
    }
  }

  /** Counts `n` bytes against the decode budget (before anything is read or allocated). */
  private claim(n: number): void {
    this.claimed += n;
    if (this.claimed > this.limit) {
      throw new DecodeError('limit-exceeded', this.pos, `decoded size exceeds the limit of ${this.limit} bytes`);
    }
  }

  /** Advances over `n` bytes and returns where they start. */
  private take(n: number): number {
    if (n > this.remaining) {
      throw new DecodeError('truncated', this.pos, `input ends early: ${n} byte(s) needed, ${this.remaining} left`);
    }
    const start = this.pos;
    this.pos += n;
    return start;
  }

  /** `u8`: one raw byte. */
  u8(): number {
    this.claim(1);
    return this.view.getUint8(this.take(1));
  }

  /** `i8`: one raw byte, two's complement. */
  i8(): number {
    this.claim(1);
    return this.view.getInt8(this.take(1));
  }

  /** `bool`: `00` or `01`. */
  bool(): boolean {
    const at = this.pos;
    const b = this.u8();
    if (b > 1) throw new DecodeError('invalid-tag', at, `invalid bool byte ${b}`);
    return b === 1;
  }

  /** The unsigned varint of a field of `width` bits, as a number (width 16 or 32). */
  private varint32(width: 16 | 32): number {
    const at = this.pos;
    const b = this.view.getUint8(this.take(1));
    if (b <= MAX_SINGLE_BYTE) return b;
    if (b === MARKER_U16) return this.view.getUint16(this.take(2), true);
    if (b === MARKER_U32 && width === 32) return this.view.getUint32(this.take(4), true);
    throw new DecodeError('invalid-varint', at, `varint marker ${b} is invalid for a u${width}`);
  }

  /** The unsigned varint of a 64-bit field. */
  private varint64(): bigint {
    const at = this.pos;
    const b = this.view.getUint8(this.take(1));
    if (b <= MAX_SINGLE_BYTE) return BigInt(b);
    if (b === MARKER_U16) return BigInt(this.view.getUint16(this.take(2), true));
    if (b === MARKER_U32) return BigInt(this.view.getUint32(this.take(4), true));
    if (b === MARKER_U64) return this.view.getBigUint64(this.take(8), true);
    throw new DecodeError('invalid-varint', at, `varint marker ${b} is invalid for a u64`);
  }

  /** `u16` (varint). */
  u16(): number {
    this.claim(2);
    return this.varint32(16);
  }

  /** `u32` (varint). */
  u32(): number {
    this.claim(4);
    return this.varint32(32);
  }

  /** `u64` (varint), as a bigint. */
  u64(): bigint {
    this.claim(8);
    return this.varint64();
  }

  /** `i32` (zigzag varint). */
  i32(): number {
    this.claim(4);
    const z = this.varint32(32);
    return (z >>> 1) ^ -(z & 1);
  }

  /** `i64` (zigzag varint), as a bigint. */
  i64(): bigint {
    this.claim(8);
    const z = this.varint64();
    return (z >> 1n) ^ -(z & 1n);
  }

  /** `f32`: 4 bytes IEEE-754, little-endian. */
  f32(): number {
    this.claim(4);
    return this.view.getFloat32(this.take(4), true);
  }

  /**
   * A length or element count (`usize`, a u64 varint). It must fit in the
   * remaining input, counting at least `minBytesPerItem` bytes per item (every
   * roomcast element type takes at least one byte), so a hostile count can never
   * make a decoder loop or allocate.
   */
  length(minBytesPerItem = 1): number {
    const at = this.pos;
    this.claim(8);
    const n = this.varint64();
    if (n > BigInt(this.limit)) {
      throw new DecodeError('limit-exceeded', at, `declared length ${n} exceeds the limit of ${this.limit}`);
    }
    if (n * BigInt(minBytesPerItem) > BigInt(this.remaining)) {
      throw new DecodeError('truncated', at, `declared length ${n} cannot fit in the ${this.remaining} byte(s) left`);
    }
    return Number(n);
  }

  /** A declared byte length: checked against the decode budget, then against the input. */
  private byteLength(): number {
    const at = this.pos;
    this.claim(8);
    const n = this.varint64();
    if (n > BigInt(this.limit)) {
      throw new DecodeError('limit-exceeded', at, `declared length ${n} exceeds the limit of ${this.limit} bytes`);
    }
    const len = Number(n);
    this.claim(len);
    if (len > this.remaining) {
      throw new DecodeError('truncated', at, `declared length ${len} exceeds the ${this.remaining} byte(s) left`);
    }
    return len;
  }

  /** A byte string (`Bytes`, `Vec<u8>`): length, then raw bytes. Returns a copy. */
  bytes(): Uint8Array {
    const len = this.byteLength();
    const start = this.take(len);
    return this.input.slice(start, start + len);
  }

  /** A fixed array of `n` bytes (`[u8; n]`): raw, no length. Returns a copy. */
  fixedBytes(n: number): Uint8Array {
    this.claim(n);
    const start = this.take(n);
    return this.input.slice(start, start + n);
  }

  /** A `String`: length, then UTF-8. */
  string(): string {
    const len = this.byteLength();
    const start = this.take(len);
    try {
      return utf8Decoder.decode(this.input.subarray(start, start + len));
    } catch {
      throw new DecodeError('invalid-utf8', start, 'string is not valid UTF-8');
    }
  }

  /** An enum's variant index (`u32` varint). Check it with {@link Reader.unknownVariant}. */
  variant(): number {
    return this.u32();
  }

  /** The error for an unknown variant index `index` of enum `name`, read at `at`. */
  unknownVariant(name: string, index: number, at: number): DecodeError {
    return new DecodeError('invalid-tag', at, `unknown ${name} variant ${index}`);
  }

  /** `Option<T>`: `00` → null; `01` → the value. */
  option<T>(read: (r: Reader) => T): T | null {
    const at = this.pos;
    const tag = this.u8();
    if (tag === 0) return null;
    if (tag === 1) return read(this);
    throw new DecodeError('invalid-tag', at, `invalid Option tag ${tag}`);
  }

  /** `Vec<T>`: element count, then the elements. */
  vec<T>(read: (r: Reader) => T): T[] {
    const n = this.length(1);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }
}

function rangeCheck(value: number, min: number, max: number, type: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new EncodeError(`${value} is not a valid ${type}`);
  }
}

/** Writes values in the wire encoding; {@link Writer.finish} returns the bytes. */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(initialCapacity = 64) {
    this.buf = new Uint8Array(Math.max(8, initialCapacity));
    this.view = new DataView(this.buf.buffer);
  }

  /** Makes room for `n` more bytes and returns where they go. */
  private grow(n: number): number {
    const need = this.len + n;
    if (need > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < need) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.len;
    this.len = need;
    return at;
  }

  /** `u8`: one raw byte. */
  u8(v: number): this {
    rangeCheck(v, 0, 0xff, 'u8');
    this.view.setUint8(this.grow(1), v);
    return this;
  }

  /** `i8`: one raw byte, two's complement. */
  i8(v: number): this {
    rangeCheck(v, -0x80, 0x7f, 'i8');
    this.view.setInt8(this.grow(1), v);
    return this;
  }

  /** `bool`: `00` or `01`. */
  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }

  /** The smallest varint form of `v` (0 ≤ v < 2^32). */
  private varint32(v: number): void {
    if (v <= MAX_SINGLE_BYTE) {
      this.view.setUint8(this.grow(1), v);
    } else if (v <= 0xffff) {
      const at = this.grow(3);
      this.view.setUint8(at, MARKER_U16);
      this.view.setUint16(at + 1, v, true);
    } else {
      const at = this.grow(5);
      this.view.setUint8(at, MARKER_U32);
      this.view.setUint32(at + 1, v, true);
    }
  }

  /** The smallest varint form of `v` (0 ≤ v < 2^64). */
  private varint64(v: bigint): void {
    if (v <= 0xffffffffn) {
      this.varint32(Number(v));
    } else {
      const at = this.grow(9);
      this.view.setUint8(at, MARKER_U64);
      this.view.setBigUint64(at + 1, v, true);
    }
  }

  /** `u16` (varint). */
  u16(v: number): this {
    rangeCheck(v, 0, 0xffff, 'u16');
    this.varint32(v);
    return this;
  }

  /** `u32` (varint). */
  u32(v: number): this {
    rangeCheck(v, 0, 0xffffffff, 'u32');
    this.varint32(v);
    return this;
  }

  /** `u64` (varint). */
  u64(v: bigint): this {
    if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw new EncodeError(`${v} is not a valid u64`);
    this.varint64(v);
    return this;
  }

  /** `i32` (zigzag varint). */
  i32(v: number): this {
    rangeCheck(v, -0x80000000, 0x7fffffff, 'i32');
    this.varint32(((v << 1) ^ (v >> 31)) >>> 0);
    return this;
  }

  /** `i64` (zigzag varint). */
  i64(v: bigint): this {
    if (typeof v !== 'bigint' || v < I64_MIN || v > I64_MAX) throw new EncodeError(`${v} is not a valid i64`);
    this.varint64(BigInt.asUintN(64, (v << 1n) ^ (v >> 63n)));
    return this;
  }

  /** `f32`: 4 bytes IEEE-754, little-endian (the value is rounded to binary32). */
  f32(v: number): this {
    if (typeof v !== 'number') throw new EncodeError(`${String(v)} is not a number`);
    this.view.setFloat32(this.grow(4), v, true);
    return this;
  }

  /** A length or element count (`usize`). */
  length(n: number): this {
    rangeCheck(n, 0, Number.MAX_SAFE_INTEGER, 'length');
    this.varint64(BigInt(n));
    return this;
  }

  /** A byte string: length, then the bytes. */
  bytes(b: Uint8Array): this {
    if (!(b instanceof Uint8Array)) throw new EncodeError('byte string must be a Uint8Array');
    this.length(b.length);
    this.buf.set(b, this.grow(b.length));
    return this;
  }

  /** A fixed array of exactly `n` bytes, raw. */
  fixedBytes(b: Uint8Array, n: number): this {
    if (!(b instanceof Uint8Array) || b.length !== n) {
      throw new EncodeError(`expected exactly ${n} bytes`);
    }
    this.buf.set(b, this.grow(n));
    return this;
  }

  /** A `String`: length in UTF-8 bytes, then UTF-8. */
  string(s: string): this {
    if (typeof s !== 'string') throw new EncodeError('expected a string');
    return this.bytes(utf8Encoder.encode(s));
  }

  /** An enum's variant index. */
  variant(index: number): this {
    return this.u32(index);
  }

  /** `Option<T>`: `00` for null, else `01` and the value. */
  option<T>(v: T | null, write: (w: Writer, v: T) => void): this {
    if (v === null) return this.u8(0);
    this.u8(1);
    write(this, v);
    return this;
  }

  /** `Vec<T>`: element count, then the elements. */
  vec<T>(items: readonly T[], write: (w: Writer, v: T) => void): this {
    this.length(items.length);
    for (const item of items) write(this, item);
    return this;
  }

  /** The bytes written so far (a copy of exactly that length). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/**
 * Decodes a whole buffer with `read`; trailing bytes are refused. Any failure is
 * a {@link DecodeError}.
 */
export function decodeWith<T>(bytes: Uint8Array, read: (r: Reader) => T): T {
  const r = new Reader(bytes);
  const value = read(r);
  r.finish();
  return value;
}

/** Encodes `value` with `write` into a fresh buffer. */
export function encodeWith<T>(value: T, write: (w: Writer, v: T) => void): Uint8Array {
  const w = new Writer();
  write(w, value);
  return w.finish();
}

/** Lowercase hex of `bytes` (for logs and tests). */
export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** Bytes of a hex string (even length, `0-9a-fA-F`). */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new EncodeError(`not a hex string: ${hex}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
