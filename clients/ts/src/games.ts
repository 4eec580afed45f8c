/**
 * Payload types of the built-in games (`shared/src/games/{arena,counter}.rs`,
 * PROTOCOL.md §6): what goes inside `Input.payload` and `EntityData.data`.
 * They use the same codec as the envelope and must be consumed entirely.
 *
 * @module
 */

import { decodeWith, encodeWith, EncodeError, type Reader, type Writer } from './codec.js';

// ---------------------------------------------------------------------------
// arena

/** Side of the arena's square world, in world units. */
export const ARENA_WORLD_SIZE = 1000;
/** Speed of a moving arena player per axis, in units per second. */
export const ARENA_SPEED = 200;

/** A direction component of an arena input. */
export type ArenaDirection = -1 | 0 | 1;

/** The arena input: a direction on each axis (`i8`, −1, 0 or 1). */
export interface ArenaInput {
  readonly dx: ArenaDirection;
  readonly dy: ArenaDirection;
}

/** One arena player as published in the room state (entity id = player id). */
export interface ArenaPlayer {
  /** Position, 0..=1000 (`f32`). */
  readonly x: number;
  /** Position, 0..=1000 (`f32`). */
  readonly y: number;
  /** Velocity, units per second (`f32`). */
  readonly vx: number;
  /** Velocity, units per second (`f32`). */
  readonly vy: number;
  /** `seq` of the latest input the server applied for this player (`u32`). */
  readonly lastInput: number;
}

function checkDirection(v: number, name: string): ArenaDirection {
  if (v === -1 || v === 0 || v === 1) return v;
  throw new EncodeError(`arena ${name} must be -1, 0 or 1, got ${v}`);
}

/** Writes an arena input. Directions outside −1..=1 throw (the server would close with 1007). */
export function writeArenaInput(w: Writer, v: ArenaInput): void {
  w.i8(checkDirection(v.dx, 'dx')).i8(checkDirection(v.dy, 'dy'));
}

/**
 * Reads an arena input. Like the Rust type, any `i8` decodes; validity
 * (−1..=1) is the game's check, not the codec's, so the result is typed wide.
 */
export function readArenaInput(r: Reader): { dx: number; dy: number } {
  const dx = r.i8();
  const dy = r.i8();
  return { dx, dy };
}

/** Writes an arena player. */
export function writeArenaPlayer(w: Writer, v: ArenaPlayer): void {
  w.f32(v.x).f32(v.y).f32(v.vx).f32(v.vy).u32(v.lastInput);
}

/** Reads an arena player. */
export function readArenaPlayer(r: Reader): ArenaPlayer {
  const x = r.f32();
  const y = r.f32();
  const vx = r.f32();
  const vy = r.f32();
  const lastInput = r.u32();
  return { x, y, vx, vy, lastInput };
}

/** Encodes an arena input as an `Input.payload`. */
export function encodeArenaInput(v: ArenaInput): Uint8Array {
  return encodeWith(v, writeArenaInput);
}

/** Decodes an arena input payload. */
export function decodeArenaInput(bytes: Uint8Array): { dx: number; dy: number } {
  return decodeWith(bytes, readArenaInput);
}

/** Encodes an arena player entity. */
export function encodeArenaPlayer(v: ArenaPlayer): Uint8Array {
  return encodeWith(v, writeArenaPlayer);
}

/** Decodes an arena player entity (`EntityData.data`). */
export function decodeArenaPlayer(bytes: Uint8Array): ArenaPlayer {
  return decodeWith(bytes, readArenaPlayer);
}

// ---------------------------------------------------------------------------
// counter

/** Entity id of the counter room's total. */
export const COUNTER_TOTAL_ENTITY = 0;

/** The counter input: added to the player's score and the room total (`i32`). */
export interface CounterInput {
  readonly add: number;
}

/** A counter player's score, or (entity 0) the room total (`i64`). */
export interface CounterScore {
  readonly score: bigint;
}

/** Writes a counter input. */
export function writeCounterInput(w: Writer, v: CounterInput): void {
  w.i32(v.add);
}

/** Reads a counter input. */
export function readCounterInput(r: Reader): CounterInput {
  return { add: r.i32() };
}

/** Writes a counter score. */
export function writeCounterScore(w: Writer, v: CounterScore): void {
  w.i64(v.score);
}

/** Reads a counter score. */
export function readCounterScore(r: Reader): CounterScore {
  return { score: r.i64() };
}

/** Encodes a counter input as an `Input.payload`. */
export function encodeCounterInput(v: CounterInput): Uint8Array {
  return encodeWith(v, writeCounterInput);
}

/** Decodes a counter input payload. */
export function decodeCounterInput(bytes: Uint8Array): CounterInput {
  return decodeWith(bytes, readCounterInput);
}

/** Encodes a counter score entity. */
export function encodeCounterScore(v: CounterScore): Uint8Array {
  return encodeWith(v, writeCounterScore);
}

/** Decodes a counter score entity (`EntityData.data`). */
export function decodeCounterScore(bytes: Uint8Array): CounterScore {
  return decodeWith(bytes, readCounterScore);
}
