/**
 * Client-side prediction of one's own arena player, and interpolation of the
 * others.
 *
 * The movement rule is the server's (server/src/game/arena.rs), in `f32` like
 * the server: an input sets `v = dir * SPEED`; a tick of `dt = 1 / tick rate`
 * seconds moves `pos += v * dt`, clamped to `0..=WORLD_SIZE`. The server
 * applies the inputs that arrived since its last tick, then moves once, and
 * publishes `last_input` = the `seq` of the latest input it applied.
 *
 * The page sends one input per tick while a key is held, so each input is
 * predicted as one tick of movement. On every server state, the prediction
 * restarts from the server's position, drops the inputs the server has
 * acknowledged (`seq <= last_input`) and replays the others (reconciliation).
 *
 * @module
 */

import { ARENA_SPEED, ARENA_WORLD_SIZE } from '../../ts/src/index.ts';

/** A position in world units. */
export interface Point {
  readonly x: number;
  readonly y: number;
}

/** An arena input's direction: each component −1, 0 or 1. */
export interface Direction {
  readonly dx: number;
  readonly dy: number;
}

/** What the server says about one's own player. */
export interface ServerPlayer extends Point {
  /** `seq` of the latest input the server applied. */
  readonly lastInput: number;
}

/** An input sent and not yet acknowledged by the server. */
interface PendingInput extends Direction {
  readonly seq: number;
}

/** Inputs kept for replay at most (4 s at 30 Hz): older ones were lost anyway. */
const MAX_PENDING = 120;

const f32 = Math.fround;

function clampToWorld(v: number): number {
  return Math.min(Math.max(v, 0), ARENA_WORLD_SIZE);
}

/** The server's arena movement for one tick of `dt` seconds (`f32` arithmetic). */
export function arenaStep(p: Point, dir: Direction, dt: number): Point {
  const vx = f32(dir.dx * ARENA_SPEED);
  const vy = f32(dir.dy * ARENA_SPEED);
  return {
    x: clampToWorld(f32(p.x + f32(vx * dt))),
    y: clampToWorld(f32(p.y + f32(vy * dt))),
  };
}

/** The tick length the server uses at `tickRateHz` (`1.0 / f32::from(hz)`). */
export function tickSeconds(tickRateHz: number): number {
  return f32(1 / tickRateHz);
}

/** One's own player: the server's word plus the inputs it has not seen yet. */
export class Predictor {
  private readonly dt: number;
  private readonly pending: PendingInput[] = [];
  private serverPos: Point | null = null;
  private predictedPos: Point | null = null;

  constructor(tickRateHz: number) {
    this.dt = tickSeconds(tickRateHz);
  }

  /** The predicted position (`null` before the first server state). */
  get predicted(): Point | null {
    return this.predictedPos;
  }

  /** The latest position the server published (`null` before the first). */
  get server(): Point | null {
    return this.serverPos;
  }

  /** Inputs sent and not yet acknowledged. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** An input was sent with `seq`: remember it and apply it locally at once. */
  applyInput(seq: number, dir: Direction): void {
    this.pending.push({ seq, dx: dir.dx, dy: dir.dy });
    if (this.pending.length > MAX_PENDING) this.pending.shift();
    if (this.predictedPos !== null) this.predictedPos = arenaStep(this.predictedPos, dir, this.dt);
  }

  /**
   * A server state arrived: start from its position, forget acknowledged
   * inputs, replay the rest. Returns how far the prediction moved (the
   * correction, 0 when the prediction was right).
   */
  reconcile(server: ServerPlayer): number {
    while (this.pending.length > 0 && this.pending[0].seq <= server.lastInput) this.pending.shift();
    let pos: Point = { x: server.x, y: server.y };
    this.serverPos = pos;
    for (const input of this.pending) pos = arenaStep(pos, input, this.dt);
    const before = this.predictedPos;
    this.predictedPos = pos;
    return before === null ? 0 : Math.hypot(pos.x - before.x, pos.y - before.y);
  }
}

/** Linear interpolation between `a` and `b` (`t` in 0..1). */
export function lerp(a: Point, b: Point, t: number): Point {
  return { x: a.x + (b.x - a.x) * t, y: a.y + (b.y - a.y) * t };
}

/**
 * Positions of the other players drawn between the two latest server states,
 * one tick behind: a state that has just arrived is reached one tick later, so
 * motion stays smooth while states come in at the tick rate.
 */
export class Interpolator {
  private previous = new Map<number, Point>();
  private latest = new Map<number, Point>();
  private latestAtMs = 0;

  constructor(private readonly tickMs: number) {}

  /** A server state with these players (one's own excluded) arrived at `nowMs`. */
  push(players: Map<number, Point>, nowMs: number): void {
    this.previous = this.latest;
    this.latest = players;
    this.latestAtMs = nowMs;
  }

  /** Forgets everything (a new room or a new player). */
  clear(): void {
    this.previous = new Map();
    this.latest = new Map();
  }

  /** The latest server positions. */
  get serverPositions(): ReadonlyMap<number, Point> {
    return this.latest;
  }

  /** Where to draw each player at `nowMs`. */
  at(nowMs: number): Map<number, Point> {
    const t = Math.min(Math.max((nowMs - this.latestAtMs) / this.tickMs, 0), 1);
    const out = new Map<number, Point>();
    for (const [id, to] of this.latest) {
      const from = this.previous.get(id);
      out.set(id, from === undefined ? to : lerp(from, to, t));
    }
    return out;
  }
}

/**
 * Smooths what is drawn for one's own player: each new prediction (an input
 * applied, or a correction) is reached over one tick from where the player is
 * drawn now, instead of jumping there.
 */
export class Smoother {
  private from: Point | null = null;
  private to: Point | null = null;
  private sinceMs = 0;

  constructor(private readonly tickMs: number) {}

  /** The target moved to `p` at `nowMs`. */
  set(p: Point | null, nowMs: number): void {
    if (p === null || this.to === null) {
      this.from = p;
      this.to = p;
    } else if (p.x !== this.to.x || p.y !== this.to.y) {
      this.from = this.at(nowMs);
      this.to = p;
    } else {
      return;
    }
    this.sinceMs = nowMs;
  }

  /** Where to draw at `nowMs`. */
  at(nowMs: number): Point | null {
    if (this.from === null || this.to === null) return this.to;
    const t = Math.min(Math.max((nowMs - this.sinceMs) / this.tickMs, 0), 1);
    return lerp(this.from, this.to, t);
  }
}
