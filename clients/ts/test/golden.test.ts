// Conformance: every golden vector of the Rust protocol crate
// (shared/golden/vectors.json) decodes with the TS codec to its `value` (the
// serde JSON form Rust wrote) and re-encodes to exactly its `hex`.
//
// serde JSON form: enums are externally tagged (`{"Join": {...}}`, a unit
// variant is the bare string `"Leave"`), Option is `null` or the value, byte
// strings and fixed byte arrays are arrays of numbers, u64/i64 are JSON
// numbers, field names are the Rust (snake_case) names.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  decodeArenaInput,
  decodeArenaPlayer,
  decodeClientMessage,
  decodeCounterInput,
  decodeCounterScore,
  decodeServerMessage,
  encodeArenaInput,
  encodeArenaPlayer,
  encodeClientMessage,
  encodeCounterInput,
  encodeCounterScore,
  encodeServerMessage,
  fromHex,
  toHex,
  type ArenaDirection,
  type ClientMessage,
  type EntityData,
  type ServerMessage,
} from '../src/index.js';
import { VECTORS_PATH } from './helpers.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface Vector {
  name: string;
  type: string;
  value: Json;
  hex: string;
}

/** Every vector name this test knows; a new Rust vector fails until added here. */
const HANDLED_NAMES = new Set([
  'join',
  'join_resume',
  'input_arena',
  'ping',
  'leave',
  'resync',
  'welcome',
  'snapshot',
  'delta',
  'delta_empty',
  'pong',
  'error',
  'arena_input',
  'arena_player',
  'counter_input',
  'counter_score',
]);

// --- TS value -> serde JSON ------------------------------------------------

function big(v: bigint): number {
  const n = Number(v);
  // JSON.parse cannot hold integers beyond 2^53 exactly; no vector needs that yet.
  assert.ok(Number.isSafeInteger(n), `vector value ${v} exceeds 2^53: teach this test big-int JSON`);
  return n;
}

const bytesJson = (b: Uint8Array): Json => [...b];
const entityJson = (e: EntityData): Json => ({ id: e.id, data: bytesJson(e.data) });

function clientJson(m: ClientMessage): Json {
  switch (m.type) {
    case 'Join':
      return {
        Join: {
          protocol: m.protocol,
          resume: m.resume === null ? null : { token: bytesJson(m.resume.token), last_tick: big(m.resume.lastTick) },
        },
      };
    case 'Input':
      return { Input: { seq: m.seq, payload: bytesJson(m.payload) } };
    case 'Ping':
      return { Ping: { client_time_us: big(m.clientTimeUs) } };
    case 'Leave':
    case 'Resync':
      return m.type;
  }
}

function serverJson(m: ServerMessage): Json {
  switch (m.type) {
    case 'Welcome':
      return {
        Welcome: {
          protocol: m.protocol,
          player_id: m.playerId,
          resume_token: bytesJson(m.resumeToken),
          resumed: m.resumed,
          game: m.game,
          room: m.room,
          tick_rate_hz: m.tickRateHz,
        },
      };
    case 'Snapshot':
      return { Snapshot: { tick: big(m.tick), entities: m.entities.map(entityJson) } };
    case 'Delta':
      return {
        Delta: {
          tick: big(m.tick),
          base_tick: big(m.baseTick),
          changed: m.changed.map(entityJson),
          removed: [...m.removed],
        },
      };
    case 'Pong':
      return { Pong: { client_time_us: big(m.clientTimeUs), server_tick: big(m.serverTick) } };
    case 'Error':
      return { Error: { code: m.code, message: m.message } };
  }
}

// --- serde JSON -> TS value (strict: unexpected shapes throw) ----------------

function obj(v: Json | undefined, what: string): { [key: string]: Json } {
  if (v === null || v === undefined || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what}: not an object`);
  return v;
}
function num(v: Json | undefined, what: string): number {
  if (typeof v !== 'number') throw new Error(`${what}: not a number`);
  return v;
}
function str(v: Json | undefined, what: string): string {
  if (typeof v !== 'string') throw new Error(`${what}: not a string`);
  return v;
}
function bool(v: Json | undefined, what: string): boolean {
  if (typeof v !== 'boolean') throw new Error(`${what}: not a boolean`);
  return v;
}
function bytes(v: Json | undefined, what: string): Uint8Array {
  if (!Array.isArray(v)) throw new Error(`${what}: not a byte array`);
  return Uint8Array.from(v.map((b, i) => num(b, `${what}[${i}]`)));
}
function list<T>(v: Json | undefined, what: string, f: (x: Json, w: string) => T): T[] {
  if (!Array.isArray(v)) throw new Error(`${what}: not an array`);
  return v.map((x, i) => f(x, `${what}[${i}]`));
}
/** An externally tagged enum value: [variant, fields]. */
function variant(v: Json, what: string): [string, { [key: string]: Json } | null] {
  if (typeof v === 'string') return [v, null];
  const o = obj(v, what);
  const keys = Object.keys(o);
  if (keys.length !== 1) throw new Error(`${what}: not an externally tagged enum`);
  const k = keys[0] as string;
  return [k, obj(o[k], `${what}.${k}`)];
}
const entityFrom = (v: Json, w: string): EntityData => {
  const o = obj(v, w);
  return { id: num(o.id, `${w}.id`), data: bytes(o.data, `${w}.data`) };
};
const direction = (v: Json | undefined, w: string): ArenaDirection => {
  const n = num(v, w);
  if (n !== -1 && n !== 0 && n !== 1) throw new Error(`${w}: not a direction`);
  return n;
};

function clientFrom(v: Json): ClientMessage {
  const [k, f] = variant(v, 'ClientMessage');
  switch (k) {
    case 'Join': {
      const o = obj(f, 'Join');
      const r = o.resume;
      return {
        type: 'Join',
        protocol: num(o.protocol, 'protocol'),
        resume:
          r === null
            ? null
            : { token: bytes(obj(r, 'resume').token, 'token'), lastTick: BigInt(num(obj(r, 'resume').last_tick, 'last_tick')) },
      };
    }
    case 'Input': {
      const o = obj(f, 'Input');
      return { type: 'Input', seq: num(o.seq, 'seq'), payload: bytes(o.payload, 'payload') };
    }
    case 'Ping':
      return { type: 'Ping', clientTimeUs: BigInt(num(obj(f, 'Ping').client_time_us, 'client_time_us')) };
    case 'Leave':
    case 'Resync':
      assert.equal(f, null);
      return { type: k };
    default:
      throw new Error(`unknown ClientMessage variant ${k}`);
  }
}

function serverFrom(v: Json): ServerMessage {
  const [k, f] = variant(v, 'ServerMessage');
  const o = obj(f, k);
  switch (k) {
    case 'Welcome':
      return {
        type: 'Welcome',
        protocol: num(o.protocol, 'protocol'),
        playerId: num(o.player_id, 'player_id'),
        resumeToken: bytes(o.resume_token, 'resume_token'),
        resumed: bool(o.resumed, 'resumed'),
        game: str(o.game, 'game'),
        room: str(o.room, 'room'),
        tickRateHz: num(o.tick_rate_hz, 'tick_rate_hz'),
      };
    case 'Snapshot':
      return { type: 'Snapshot', tick: BigInt(num(o.tick, 'tick')), entities: list(o.entities, 'entities', entityFrom) };
    case 'Delta':
      return {
        type: 'Delta',
        tick: BigInt(num(o.tick, 'tick')),
        baseTick: BigInt(num(o.base_tick, 'base_tick')),
        changed: list(o.changed, 'changed', entityFrom),
        removed: list(o.removed, 'removed', num),
      };
    case 'Pong':
      return {
        type: 'Pong',
        clientTimeUs: BigInt(num(o.client_time_us, 'client_time_us')),
        serverTick: BigInt(num(o.server_tick, 'server_tick')),
      };
    case 'Error':
      return { type: 'Error', code: num(o.code, 'code'), message: str(o.message, 'message') };
    default:
      throw new Error(`unknown ServerMessage variant ${k}`);
  }
}

/** Per type: decode bytes → serde JSON, and serde JSON → bytes. */
const CODECS: Record<string, { decode: (b: Uint8Array) => Json; encode: (v: Json) => Uint8Array }> = {
  ClientMessage: {
    decode: (b) => clientJson(decodeClientMessage(b)),
    encode: (v) => encodeClientMessage(clientFrom(v)),
  },
  ServerMessage: {
    decode: (b) => serverJson(decodeServerMessage(b)),
    encode: (v) => encodeServerMessage(serverFrom(v)),
  },
  ArenaInput: {
    decode: (b) => {
      const v = decodeArenaInput(b);
      return { dx: v.dx, dy: v.dy };
    },
    encode: (v) => {
      const o = obj(v, 'ArenaInput');
      return encodeArenaInput({ dx: direction(o.dx, 'dx'), dy: direction(o.dy, 'dy') });
    },
  },
  ArenaPlayer: {
    decode: (b) => {
      const p = decodeArenaPlayer(b);
      return { x: p.x, y: p.y, vx: p.vx, vy: p.vy, last_input: p.lastInput };
    },
    encode: (v) => {
      const o = obj(v, 'ArenaPlayer');
      return encodeArenaPlayer({
        x: num(o.x, 'x'),
        y: num(o.y, 'y'),
        vx: num(o.vx, 'vx'),
        vy: num(o.vy, 'vy'),
        lastInput: num(o.last_input, 'last_input'),
      });
    },
  },
  CounterInput: {
    decode: (b) => ({ add: decodeCounterInput(b).add }),
    encode: (v) => encodeCounterInput({ add: num(obj(v, 'CounterInput').add, 'add') }),
  },
  CounterScore: {
    decode: (b) => ({ score: big(decodeCounterScore(b).score) }),
    encode: (v) => encodeCounterScore({ score: BigInt(num(obj(v, 'CounterScore').score, 'score')) }),
  },
};

const vectors = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as Vector[];

test('the golden vector file is non-empty and every vector is known', () => {
  assert.ok(vectors.length > 0, `no vectors in ${VECTORS_PATH}`);
  const unknown = vectors.filter((v) => !HANDLED_NAMES.has(v.name) || !(v.type in CODECS));
  assert.deepEqual(
    unknown.map((v) => `${v.name} (${v.type})`),
    [],
    'vectors this TS client does not handle yet: add them to HANDLED_NAMES (and a codec for a new type)',
  );
  const missing = [...HANDLED_NAMES].filter((n) => !vectors.some((v) => v.name === n));
  assert.deepEqual(missing, [], 'vectors gone from the file (renamed?)');
});

for (const v of vectors) {
  test(`golden vector ${v.name} (${v.type}) decodes to its value and re-encodes to its bytes`, () => {
    assert.ok(HANDLED_NAMES.has(v.name), `unhandled vector ${v.name}`);
    const codec = CODECS[v.type];
    assert.ok(codec, `no TS codec for type ${v.type}`);
    assert.deepStrictEqual(codec.decode(fromHex(v.hex)), v.value, 'decoded value');
    assert.equal(toHex(codec.encode(v.value)), v.hex, 'encoded bytes');
  });
}

test('hand-checked layouts of PROTOCOL.md', () => {
  // Input { seq: 300, payload: [01, ff] } → 01 fb 2c 01 02 01 ff (§4).
  assert.equal(toHex(encodeClientMessage({ type: 'Input', seq: 300, payload: Uint8Array.of(1, 0xff) })), '01fb2c010201ff');
  // Varint table of §2.2, through Ping's u64.
  const cases: Array<[bigint, string]> = [
    [0n, '00'],
    [250n, 'fa'],
    [251n, 'fbfb00'],
    [300n, 'fb2c01'],
    [1000n, 'fbe803'],
    [65535n, 'fbffff'],
    [65536n, 'fc00000100'],
    [1_700_000n, 'fca0f01900'],
    [1n << 32n, 'fd0000000001000000'],
    [(1n << 64n) - 1n, 'fdffffffffffffffff'],
  ];
  for (const [value, hex] of cases) {
    const bytes = encodeClientMessage({ type: 'Ping', clientTimeUs: value });
    assert.equal(toHex(bytes), `02${hex}`, `u64 ${value}`);
    const back = decodeClientMessage(bytes);
    assert.deepEqual(back, { type: 'Ping', clientTimeUs: value });
  }
  // Zigzag table of §2.3 (i32 through CounterInput, i64 through CounterScore).
  const zigzag32: Array<[number, string]> = [
    [0, '00'],
    [-1, '01'],
    [1, '02'],
    [-3, '05'],
    [125, 'fa'],
    [-126, 'fbfb00'],
    [2147483647, 'fcfeffffff'],
    [-2147483648, 'fcffffffff'],
  ];
  for (const [add, hex] of zigzag32) {
    assert.equal(toHex(encodeCounterInput({ add })), hex, `i32 ${add}`);
    assert.equal(decodeCounterInput(fromHex(hex)).add, add);
  }
  const zigzag64: Array<[bigint, string]> = [
    [1_000_000n, 'fc80841e00'],
    [-1_000_000n, 'fc7f841e00'],
    [(1n << 63n) - 1n, 'fdfeffffffffffffff'],
    [-(1n << 63n), 'fdffffffffffffffff'],
  ];
  for (const [score, hex] of zigzag64) {
    assert.equal(toHex(encodeCounterScore({ score })), hex, `i64 ${score}`);
    assert.equal(decodeCounterScore(fromHex(hex)).score, score);
  }
  // Strings: length in UTF-8 bytes.
  const err = encodeServerMessage({ type: 'Error', code: 1, message: 'é' });
  assert.equal(toHex(err), '040102c3a9');
});
