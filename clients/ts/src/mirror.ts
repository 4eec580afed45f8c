/**
 * The client's copy of the room state (PROTOCOL.md §5.2), the same rules as the
 * Rust `Mirror` in `shared/src/state.rs`: a snapshot replaces everything; a
 * delta applies only when its `baseTick` equals the mirror's tick, and anything
 * else is refused and leaves the mirror unchanged.
 *
 * @module
 */

import type { DeltaMessage, EntityData, SnapshotMessage } from './messages.js';

/** What an applied snapshot or delta changed in the entity table. */
export interface MirrorChange {
  /** The mirror's tick afterwards. */
  readonly tick: bigint;
  /** Ids that were not in the table before, increasing. */
  readonly added: readonly number[];
  /** Ids that were in the table and are gone, increasing. */
  readonly removed: readonly number[];
  /** Ids present before and after whose bytes changed, increasing. */
  readonly changed: readonly number[];
}

/** Why a delta was not applied. */
export interface MirrorGap {
  /** `no-snapshot`: no snapshot yet; `base-mismatch`: the delta is based on another tick. */
  readonly reason: 'no-snapshot' | 'base-mismatch';
  /** The delta's base tick. */
  readonly baseTick: bigint;
  /** The mirror's tick (`null` before the first snapshot). */
  readonly mirrorTick: bigint | null;
}

/** Result of {@link Mirror.applyDelta}. */
export type DeltaResult =
  | { readonly ok: true; readonly change: MirrorChange }
  | { readonly ok: false; readonly gap: MirrorGap };

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const byId = (a: number, b: number): number => a - b;

/** A room state rebuilt from a snapshot and the deltas after it. */
export class Mirror {
  private currentTick: bigint | null = null;
  private table = new Map<number, Uint8Array>();

  /** Tick of the state held, `null` until the first snapshot. */
  get tick(): bigint | null {
    return this.currentTick;
  }

  /** Number of entities. */
  get size(): number {
    return this.table.size;
  }

  /** The encoded entity `id`, if present. */
  get(id: number): Uint8Array | undefined {
    return this.table.get(id);
  }

  /** True when entity `id` is present. */
  has(id: number): boolean {
    return this.table.has(id);
  }

  /** Entity ids, increasing. */
  ids(): number[] {
    return [...this.table.keys()].sort(byId);
  }

  /** Entities in increasing id order (the order of a snapshot). */
  entities(): EntityData[] {
    return this.ids().map((id) => ({ id, data: this.table.get(id) as Uint8Array }));
  }

  /** Entity `id` decoded with the game's decoder (e.g. `decodeArenaPlayer`). */
  entity<T>(id: number, decode: (bytes: Uint8Array) => T): T | undefined {
    const bytes = this.table.get(id);
    return bytes === undefined ? undefined : decode(bytes);
  }

  /** Every entity decoded, as a map id → value (increasing id order). */
  decodeAll<T>(decode: (bytes: Uint8Array) => T): Map<number, T> {
    const out = new Map<number, T>();
    for (const id of this.ids()) out.set(id, decode(this.table.get(id) as Uint8Array));
    return out;
  }

  /** Replaces the whole state (always applies). */
  applySnapshot(snapshot: SnapshotMessage): MirrorChange {
    const next = new Map<number, Uint8Array>();
    for (const e of snapshot.entities) next.set(e.id, e.data);
    const added: number[] = [];
    const changed: number[] = [];
    const removed: number[] = [];
    for (const [id, data] of next) {
      const old = this.table.get(id);
      if (old === undefined) added.push(id);
      else if (!sameBytes(old, data)) changed.push(id);
    }
    for (const id of this.table.keys()) if (!next.has(id)) removed.push(id);
    this.table = next;
    this.currentTick = snapshot.tick;
    return { tick: snapshot.tick, added: added.sort(byId), removed: removed.sort(byId), changed: changed.sort(byId) };
  }

  /**
   * Applies a delta whose `baseTick` is the mirror's tick: removes `removed`,
   * then inserts or replaces `changed` (whole entities), then moves to `tick`.
   * Any other delta is refused and leaves the mirror unchanged.
   */
  applyDelta(delta: DeltaMessage): DeltaResult {
    if (this.currentTick === null) {
      return { ok: false, gap: { reason: 'no-snapshot', baseTick: delta.baseTick, mirrorTick: null } };
    }
    if (delta.baseTick !== this.currentTick) {
      return {
        ok: false,
        gap: { reason: 'base-mismatch', baseTick: delta.baseTick, mirrorTick: this.currentTick },
      };
    }
    const removed: number[] = [];
    for (const id of delta.removed) {
      if (this.table.delete(id)) removed.push(id);
    }
    const added: number[] = [];
    const changed: number[] = [];
    for (const e of delta.changed) {
      const old = this.table.get(e.id);
      if (old === undefined) added.push(e.id);
      else if (!sameBytes(old, e.data)) changed.push(e.id);
      this.table.set(e.id, e.data);
    }
    this.currentTick = delta.tick;
    return {
      ok: true,
      change: { tick: delta.tick, added: added.sort(byId), removed: removed.sort(byId), changed: changed.sort(byId) },
    };
  }

  /** Forgets everything (back to "no snapshot yet"). */
  clear(): void {
    this.table = new Map();
    this.currentTick = null;
  }
}
