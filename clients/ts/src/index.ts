/**
 * `@roomcast/client`: a TypeScript client for roomcast game rooms.
 *
 * - {@link RoomClient}: join a room, mirror its state, send inputs, measure RTT,
 *   reconnect and resume automatically;
 * - {@link Mirror}: the room-state mirror on its own;
 * - the message types with their encoders/decoders, the game payloads (arena,
 *   counter), and the bincode codec ({@link Reader}, {@link Writer}).
 *
 * @module
 */

export {
  DecodeError,
  EncodeError,
  MAX_DECODE_BYTES,
  Reader,
  Writer,
  decodeWith,
  encodeWith,
  fromHex,
  toHex,
  type DecodeErrorKind,
} from './codec.js';
export {
  CloseCode,
  ErrorCode,
  PROTOCOL_VERSION,
  RESUME_TOKEN_BYTES,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  readClientMessage,
  readServerMessage,
  writeClientMessage,
  writeServerMessage,
  type ClientMessage,
  type DeltaMessage,
  type EntityData,
  type ErrorMessage,
  type InputMessage,
  type JoinMessage,
  type LeaveMessage,
  type PingMessage,
  type PongMessage,
  type Resume,
  type ResyncMessage,
  type ServerMessage,
  type SnapshotMessage,
  type WelcomeMessage,
} from './messages.js';
export {
  ARENA_SPEED,
  ARENA_WORLD_SIZE,
  COUNTER_TOTAL_ENTITY,
  decodeArenaInput,
  decodeArenaPlayer,
  decodeCounterInput,
  decodeCounterScore,
  encodeArenaInput,
  encodeArenaPlayer,
  encodeCounterInput,
  encodeCounterScore,
  readArenaInput,
  readArenaPlayer,
  readCounterInput,
  readCounterScore,
  writeArenaInput,
  writeArenaPlayer,
  writeCounterInput,
  writeCounterScore,
  type ArenaDirection,
  type ArenaInput,
  type ArenaPlayer,
  type CounterInput,
  type CounterScore,
} from './games.js';
export { Mirror, type DeltaResult, type MirrorChange, type MirrorGap } from './mirror.js';
export { TypedEmitter, type Listener } from './emitter.js';
export {
  RoomClient,
  RoomClientError,
  ServerError,
  shouldReconnect,
  type CloseEvent,
  type ConnectionState,
  type EntityJoinEvent,
  type EntityLeaveEvent,
  type PongEvent,
  type ReconnectOptions,
  type ReconnectingEvent,
  type RoomClientEvents,
  type RoomClientOptions,
  type StateEvent,
  type WebSocketConstructor,
  type WebSocketLike,
} from './client.js';
