/**
 * The envelope messages of a game-room connection (`shared/src/message.rs`,
 * `shared/PROTOCOL.md` §3), as discriminated unions on `type`, with their
 * encoders and strict decoders.
 *
 * Field names are the Rust names in camelCase; the wire order is the order
 * the fields are written below. `u64` fields (ticks, clock values) are `bigint`.
 *
 * @module
 */

import { decodeWith, encodeWith, type Reader, type Writer } from './codec.js';

/** Version of the envelope this client speaks. */
export const PROTOCOL_VERSION = 1;

/** Length of a resume token, in bytes. */
export const RESUME_TOKEN_BYTES = 16;

/** Numeric codes of in-band `Error` messages (`shared/src/close.rs`). */
export const ErrorCode = {
  /** The message is not valid at this point (e.g. a second `Join`). */
  UNEXPECTED_MESSAGE: 1,
  /** The `Join` carried a protocol version the server does not speak; not joined. */
  UNSUPPORTED_PROTOCOL: 2,
  /** The resume token was unknown or expired; joined as a new player instead. */
  RESUME_REJECTED: 3,
  /** The room is closing; reconnect to get a fresh room. */
  ROOM_CLOSING: 4,
  /** The input was refused. */
  INPUT_REFUSED: 5,
} as const;

/** WebSocket close codes the server uses (`shared/src/close.rs`, PROTOCOL.md §7.1). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
} as const;

// ---------------------------------------------------------------------------
// Client → server

/** Reconnection request carried by a `Join`. */
export interface Resume {
  /** The `resumeToken` of the most recent `Welcome` (16 bytes). */
  readonly token: Uint8Array;
  /** Tick of the client's mirror, so the server can answer with a delta from there. */
  readonly lastTick: bigint;
}

/** First message of a connection: join (or resume in) the room of the URL. */
export interface JoinMessage {
  readonly type: 'Join';
  /** Must be {@link PROTOCOL_VERSION}. */
  readonly protocol: number;
  /** Set when reconnecting. */
  readonly resume: Resume | null;
}

/** One player input, applied at the room's next tick. */
export interface InputMessage {
  readonly type: 'Input';
  /** Client sequence number (`u32`), increasing, starting at 1. */
  readonly seq: number;
  /** The game's input, encoded (arena: {@link encodeArenaInput}). */
  readonly payload: Uint8Array;
}

/** Round-trip probe, answered by `Pong`. */
export interface PingMessage {
  readonly type: 'Ping';
  /** Any client clock value (`u64`), echoed back. */
  readonly clientTimeUs: bigint;
}

/** Leave now (no resume grace); the server closes with 1000. */
export interface LeaveMessage {
  readonly type: 'Leave';
}

/** Ask for a fresh full `Snapshot`. */
export interface ResyncMessage {
  readonly type: 'Resync';
}

/** Everything a client may send. */
export type ClientMessage = JoinMessage | InputMessage | PingMessage | LeaveMessage | ResyncMessage;

// ---------------------------------------------------------------------------
// Server → client

/** Answer to `Join`. */
export interface WelcomeMessage {
  readonly type: 'Welcome';
  /** The server's protocol version. */
  readonly protocol: number;
  /** This client's player id (`u32`), the same after a successful resume. */
  readonly playerId: number;
  /** Secret for a later resume (16 bytes). */
  readonly resumeToken: Uint8Array;
  /** True when this join resumed an earlier player. */
  readonly resumed: boolean;
  /** Game name, as in the URL. */
  readonly game: string;
  /** Room name, as in the URL. */
  readonly room: string;
  /** Ticks per second of the room. */
  readonly tickRateHz: number;
}

/** One entity of the room state: its id and the game's encoded entity. */
export interface EntityData {
  /** Entity id (`u32`). */
  readonly id: number;
  /** The game's entity, encoded (arena: {@link decodeArenaPlayer}). */
  readonly data: Uint8Array;
}

/** The whole room state at `tick`. */
export interface SnapshotMessage {
  readonly type: 'Snapshot';
  readonly tick: bigint;
  /** Every entity, in increasing id order. */
  readonly entities: readonly EntityData[];
}

/** The change from the state at `baseTick` to the state at `tick`. */
export interface DeltaMessage {
  readonly type: 'Delta';
  readonly tick: bigint;
  readonly baseTick: bigint;
  /** New or changed entities (sent whole), increasing id. */
  readonly changed: readonly EntityData[];
  /** Ids of entities that no longer exist, increasing. */
  readonly removed: readonly number[];
}

/** Answer to `Ping`. */
export interface PongMessage {
  readonly type: 'Pong';
  /** The value of the `Ping`. */
  readonly clientTimeUs: bigint;
  /** The room's tick when the ping was answered. */
  readonly serverTick: bigint;
}

/** In-band refusal; the connection stays open. */
export interface ErrorMessage {
  readonly type: 'Error';
  /** See {@link ErrorCode}; unknown codes are generic errors. */
  readonly code: number;
  /** Human-readable, not for parsing. */
  readonly message: string;
}

/** Everything the server may send. */
export type ServerMessage = WelcomeMessage | SnapshotMessage | DeltaMessage | PongMessage | ErrorMessage;

// ---------------------------------------------------------------------------
// Variant indexes (wire order; new variants are only appended)

const CLIENT_VARIANTS = ['Join', 'Input', 'Ping', 'Leave', 'Resync'] as const;
const SERVER_VARIANTS = ['Welcome', 'Snapshot', 'Delta', 'Pong', 'Error'] as const;

// ---------------------------------------------------------------------------
// Encoding

function writeResume(w: Writer, r: Resume): void {
  w.fixedBytes(r.token, RESUME_TOKEN_BYTES).u64(r.lastTick);
}

function writeEntity(w: Writer, e: EntityData): void {
  w.u32(e.id).bytes(e.data);
}

/** Writes a client message. */
export function writeClientMessage(w: Writer, m: ClientMessage): void {
  w.variant(CLIENT_VARIANTS.indexOf(m.type));
  switch (m.type) {
    case 'Join':
      w.u16(m.protocol).option(m.resume, writeResume);
      return;
    case 'Input':
      w.u32(m.seq).bytes(m.payload);
      return;
    case 'Ping':
      w.u64(m.clientTimeUs);
      return;
    case 'Leave':
    case 'Resync':
      return;
  }
}

/** Writes a server message. */
export function writeServerMessage(w: Writer, m: ServerMessage): void {
  w.variant(SERVER_VARIANTS.indexOf(m.type));
  switch (m.type) {
    case 'Welcome':
      w.u16(m.protocol)
        .u32(m.playerId)
        .fixedBytes(m.resumeToken, RESUME_TOKEN_BYTES)
        .bool(m.resumed)
        .string(m.game)
        .string(m.room)
        .u16(m.tickRateHz);
      return;
    case 'Snapshot':
      w.u64(m.tick).vec(m.entities, writeEntity);
      return;
    case 'Delta':
      w.u64(m.tick)
        .u64(m.baseTick)
        .vec(m.changed, writeEntity)
        .vec(m.removed, (w2, id) => w2.u32(id));
      return;
    case 'Pong':
      w.u64(m.clientTimeUs).u64(m.serverTick);
      return;
    case 'Error':
      w.u16(m.code).string(m.message);
      return;
  }
}

/** Encodes a client message as one binary frame. */
export function encodeClientMessage(m: ClientMessage): Uint8Array {
  return encodeWith(m, writeClientMessage);
}

/** Encodes a server message (for tests and tools). */
export function encodeServerMessage(m: ServerMessage): Uint8Array {
  return encodeWith(m, writeServerMessage);
}

// ---------------------------------------------------------------------------
// Decoding

function readResume(r: Reader): Resume {
  const token = r.fixedBytes(RESUME_TOKEN_BYTES);
  const lastTick = r.u64();
  return { token, lastTick };
}

function readEntity(r: Reader): EntityData {
  const id = r.u32();
  const data = r.bytes();
  return { id, data };
}

/** Reads a client message. */
export function readClientMessage(r: Reader): ClientMessage {
  const at = r.offset;
  const index = r.variant();
  switch (CLIENT_VARIANTS[index]) {
    case 'Join': {
      const protocol = r.u16();
      const resume = r.option(readResume);
      return { type: 'Join', protocol, resume };
    }
    case 'Input': {
      const seq = r.u32();
      const payload = r.bytes();
      return { type: 'Input', seq, payload };
    }
    case 'Ping':
      return { type: 'Ping', clientTimeUs: r.u64() };
    case 'Leave':
      return { type: 'Leave' };
    case 'Resync':
      return { type: 'Resync' };
    default:
      throw r.unknownVariant('ClientMessage', index, at);
  }
}

/** Reads a server message. */
export function readServerMessage(r: Reader): ServerMessage {
  const at = r.offset;
  const index = r.variant();
  switch (SERVER_VARIANTS[index]) {
    case 'Welcome': {
      const protocol = r.u16();
      const playerId = r.u32();
      const resumeToken = r.fixedBytes(RESUME_TOKEN_BYTES);
      const resumed = r.bool();
      const game = r.string();
      const room = r.string();
      const tickRateHz = r.u16();
      return { type: 'Welcome', protocol, playerId, resumeToken, resumed, game, room, tickRateHz };
    }
    case 'Snapshot': {
      const tick = r.u64();
      const entities = r.vec(readEntity);
      return { type: 'Snapshot', tick, entities };
    }
    case 'Delta': {
      const tick = r.u64();
      const baseTick = r.u64();
      const changed = r.vec(readEntity);
      const removed = r.vec((r2) => r2.u32());
      return { type: 'Delta', tick, baseTick, changed, removed };
    }
    case 'Pong': {
      const clientTimeUs = r.u64();
      const serverTick = r.u64();
      return { type: 'Pong', clientTimeUs, serverTick };
    }
    case 'Error': {
      const code = r.u16();
      const message = r.string();
      return { type: 'Error', code, message };
    }
    default:
      throw r.unknownVariant('ServerMessage', index, at);
  }
}

/** Decodes one client frame (whole buffer; throws `DecodeError`). */
export function decodeClientMessage(bytes: Uint8Array): ClientMessage {
  return decodeWith(bytes, readClientMessage);
}

/** Decodes one server frame (whole buffer; throws `DecodeError`). */
export function decodeServerMessage(bytes: Uint8Array): ServerMessage {
  return decodeWith(bytes, readServerMessage);
}
