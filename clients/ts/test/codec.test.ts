// Hostile input: every malformed frame is a DecodeError (never another
// exception, a hang, or a large allocation), like the Rust decoder.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  DecodeError,
  EncodeError,
  MAX_DECODE_BYTES,
  Reader,
  decodeArenaPlayer,
  decodeClientMessage,
  decodeCounterInput,
  decodeServerMessage,
  encodeArenaInput,
  encodeClientMessage,
  encodeServerMessage,
  fromHex,
  type DecodeErrorKind,
  type ServerMessage,
} from '../src/index.js';

/** Asserts that `f` throws a DecodeError (of `kind`, if given). */
function refuses(f: () => unknown, kind?: DecodeErrorKind, what = ''): DecodeError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof DecodeError, `${what}: expected a DecodeError, got ${String(caught)}`);
  if (kind !== undefined) assert.equal(caught.kind, kind, `${what}: ${caught.message}`);
  return caught;
}

const SNAPSHOT = '01070103130000fa4300807a4300004843000048c3fb2c01';
const DELTA = '0208070103130000fa4300807a4300004843000048c3fb2c010205fb2c01';
const WELCOME = '00010300112233445566778899aabbccddeeff00056172656e61056c6f6262791e';

test('every truncation of every valid server message is refused as truncated', () => {
  for (const hex of [SNAPSHOT, DELTA, WELCOME, '03fca0f01900fc70110100', '0405026e6f', '0209080000']) {
    const full = fromHex(hex);
    decodeServerMessage(full); // the whole thing is fine
    for (let n = 0; n < full.length; n++) {
      refuses(() => decodeServerMessage(full.subarray(0, n)), 'truncated', `${hex}[..${n}]`);
    }
  }
});

test('every truncation of every valid client message is refused', () => {
  for (const hex of ['000100', '00010100112233445566778899aabbccddeefffbe803', '012a0201ff', '02fca0f01900']) {
    const full = fromHex(hex);
    for (let n = 0; n < full.length; n++) refuses(() => decodeClientMessage(full.subarray(0, n)), 'truncated', hex);
  }
});

test('trailing bytes are refused, at the top level and inside nested payloads', () => {
  refuses(() => decodeServerMessage(fromHex(`${SNAPSHOT}00`)), 'trailing-bytes');
  refuses(() => decodeClientMessage(fromHex('0300')), 'trailing-bytes', 'Leave + 1 byte');
  refuses(() => decodeClientMessage(fromHex('04ff')), 'trailing-bytes', 'Resync + 1 byte');
  refuses(() => decodeArenaPlayer(fromHex('0000fa4300807a4300004843000048c3fb2c0100')), 'trailing-bytes');
});

test('unknown variants and bad Option/bool tags are refused', () => {
  refuses(() => decodeServerMessage(fromHex('05')), 'invalid-tag', 'server variant 5');
  refuses(() => decodeClientMessage(fromHex('05')), 'invalid-tag', 'client variant 5');
  refuses(() => decodeClientMessage(fromHex('fa')), 'invalid-tag', 'client variant 250');
  refuses(() => decodeClientMessage(fromHex('fb0001')), 'invalid-tag', 'client variant 256');
  refuses(() => decodeClientMessage(fromHex('000102')), 'invalid-tag', 'Option tag 2');
  // Welcome.resumed = 02
  refuses(() => decodeServerMessage(fromHex(WELCOME.replace(/eeff00/, 'eeff02'))), 'invalid-tag', 'bool 2');
});

test('varint markers wider than the field, and fe/ff, are refused', () => {
  // Join.protocol is a u16: fc and fd are too wide.
  refuses(() => decodeClientMessage(fromHex('00fc0100000000')), 'invalid-varint', 'u16 with fc');
  refuses(() => decodeClientMessage(fromHex('00fd010000000000000000')), 'invalid-varint', 'u16 with fd');
  // Input.seq is a u32: fd is too wide.
  refuses(() => decodeClientMessage(fromHex('01fd2a000000000000000201ff')), 'invalid-varint', 'u32 with fd');
  // u128 marker and the reserved byte, in a u64.
  refuses(() => decodeClientMessage(fromHex('02fe')), 'invalid-varint', 'fe');
  refuses(() => decodeClientMessage(fromHex('02ff')), 'invalid-varint', 'ff');
  // i32 (counter input) with fd.
  refuses(() => decodeCounterInput(fromHex('fd0100000000000000')), 'invalid-varint', 'i32 with fd');
  // Non-minimal forms are accepted, as bincode does.
  assert.deepEqual(decodeClientMessage(fromHex('00fb010000')), { type: 'Join', protocol: 1, resume: null });
});

test('huge declared lengths are refused at once, without allocating', () => {
  // Error message with a u64 length of 2^62.
  refuses(() => decodeServerMessage(fromHex('0405fd0000000000000040')), 'limit-exceeded', 'string 2^62');
  // Just past the 16 MiB budget (declared but absent).
  refuses(() => decodeServerMessage(fromHex('0405fc01000001')), 'limit-exceeded', 'string 16 MiB + 1');
  // A byte string longer than what is left, but within the budget.
  refuses(() => decodeClientMessage(fromHex('012afb00100102')), 'truncated', 'payload 4096 with 2 bytes left');
  // Vectors declaring more elements than the budget allows or than bytes are left.
  refuses(() => decodeServerMessage(fromHex('0107fdffffffffffffffff')), 'limit-exceeded', 'entities 2^64-1');
  refuses(() => decodeServerMessage(fromHex('020807fc01000001')), 'limit-exceeded', 'changed 2^24 + 1');
  refuses(() => decodeServerMessage(fromHex('020807fc00000001')), 'truncated', 'changed 2^24 with nothing left');
  refuses(() => decodeServerMessage(fromHex('0208070003ff01')), 'truncated', 'removed 3 with 2 bytes');
});

test('the decode budget counts like bincode (16 MiB)', () => {
  // A reader with a small budget: a 10-byte string claims 8 (length) + 10 bytes.
  const bytes = fromHex('0a' + '61'.repeat(10));
  assert.equal(new Reader(bytes, 18).string(), 'aaaaaaaaaa');
  refuses(() => new Reader(bytes, 17).string(), 'limit-exceeded');
  assert.equal(MAX_DECODE_BYTES, 16 * 1024 * 1024);
  // A real frame near the default limit: one 16 MiB byte string exceeds it with its length.
  const big = new Uint8Array(5 + MAX_DECODE_BYTES);
  big.set([0xfc, 0x00, 0x00, 0x00, 0x01], 0); // length 0x01000000 = 16 MiB
  refuses(() => new Reader(big).bytes(), 'limit-exceeded', '16 MiB byte string + its length');
});

test('invalid UTF-8 in a string is refused', () => {
  refuses(() => decodeServerMessage(fromHex('040502c328')), 'invalid-utf8');
  refuses(() => decodeServerMessage(fromHex('040501ff')), 'invalid-utf8');
});

test('random garbage only ever produces DecodeError (fuzz, seeded)', () => {
  let seed = 0x1234567;
  const rand = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed >>> 8;
  };
  const valid = [SNAPSHOT, DELTA, WELCOME].map(fromHex);
  for (let i = 0; i < 20000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = new Uint8Array(rand() % 40);
      for (let j = 0; j < bytes.length; j++) bytes[j] = rand() & 0xff;
    } else {
      // Mutate one to three bytes of a valid message.
      bytes = (valid[i % valid.length] as Uint8Array).slice();
      for (let k = 0; k <= rand() % 3; k++) bytes[rand() % bytes.length] = rand() & 0xff;
    }
    for (const decode of [decodeServerMessage, decodeClientMessage]) {
      try {
        decode(bytes);
      } catch (e) {
        assert.ok(e instanceof DecodeError, `non-DecodeError for ${Buffer.from(bytes).toString('hex')}: ${String(e)}`);
      }
    }
  }
});

test('decoded values re-encode to the same bytes (round trip of mutated valid frames)', () => {
  const m: ServerMessage = {
    type: 'Delta',
    tick: (1n << 40n) + 5n,
    baseTick: (1n << 40n) + 4n,
    changed: [{ id: 70000, data: Uint8Array.of(1, 2, 3) }],
    removed: [0, 250, 251, 65535, 65536, 0xffffffff],
  };
  const bytes = encodeServerMessage(m);
  assert.deepEqual(decodeServerMessage(bytes), m);
});

test('encoders refuse out-of-range values', () => {
  assert.throws(() => encodeClientMessage({ type: 'Input', seq: -1, payload: new Uint8Array() }), EncodeError);
  assert.throws(() => encodeClientMessage({ type: 'Input', seq: 2 ** 32, payload: new Uint8Array() }), EncodeError);
  assert.throws(() => encodeClientMessage({ type: 'Input', seq: 1.5, payload: new Uint8Array() }), EncodeError);
  assert.throws(() => encodeClientMessage({ type: 'Join', protocol: 70000, resume: null }), EncodeError);
  assert.throws(
    () => encodeClientMessage({ type: 'Join', protocol: 1, resume: { token: new Uint8Array(15), lastTick: 0n } }),
    EncodeError,
  );
  assert.throws(() => encodeClientMessage({ type: 'Ping', clientTimeUs: -1n }), EncodeError);
  assert.throws(() => encodeClientMessage({ type: 'Ping', clientTimeUs: 1n << 64n }), EncodeError);
  // The arena refuses directions outside -1..=1 (the server would close with 1007).
  assert.throws(() => encodeArenaInput({ dx: 2 as 1, dy: 0 }), EncodeError);
});
