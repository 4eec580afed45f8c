// The mirror follows a snapshot and the deltas after it exactly, and refuses
// (unchanged) any delta whose base is not its tick — the Rust Mirror's rules.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Mirror, type DeltaMessage, type EntityData, type SnapshotMessage } from '../src/index.js';

type Table = Map<number, string>;

const enc = new TextEncoder();
const dec = new TextDecoder();

function table(items: Array<[number, string]>): Table {
  return new Map(items);
}

function snapshot(t: Table, tick: bigint): SnapshotMessage {
  const entities: EntityData[] = [...t.keys()].sort((a, b) => a - b).map((id) => ({ id, data: enc.encode(t.get(id)) }));
  return { type: 'Snapshot', tick, entities };
}

/** The server's diff (shared/src/state.rs `diff`), written independently. */
function diff(old: Table, next: Table, baseTick: bigint, tick: bigint): DeltaMessage {
  const changed: EntityData[] = [];
  for (const id of [...next.keys()].sort((a, b) => a - b)) {
    if (old.get(id) !== next.get(id)) changed.push({ id, data: enc.encode(next.get(id)) });
  }
  const removed = [...old.keys()].filter((id) => !next.has(id)).sort((a, b) => a - b);
  return { type: 'Delta', tick, baseTick, changed, removed };
}

function contents(m: Mirror): Table {
  return new Map(m.entities().map((e) => [e.id, dec.decode(e.data)]));
}

test('a snapshot then deltas reproduce every state exactly', () => {
  const states = [
    table([[1, 'a']]),
    table([
      [1, 'a'],
      [2, 'b'],
    ]),
    table([[2, 'bb']]),
    table([]),
    table([
      [7, 'x'],
      [8, 'y'],
    ]),
  ];
  const mirror = new Mirror();
  assert.equal(mirror.tick, null);
  const first = mirror.applySnapshot(snapshot(states[0] as Table, 10n));
  assert.deepEqual(first, { tick: 10n, added: [1], removed: [], changed: [] });
  for (let i = 0; i + 1 < states.length; i++) {
    const t = 10n + BigInt(i);
    const result = mirror.applyDelta(diff(states[i] as Table, states[i + 1] as Table, t, t + 1n));
    assert.ok(result.ok, `delta ${i}`);
    assert.deepEqual(contents(mirror), states[i + 1]);
    assert.equal(mirror.tick, t + 1n);
  }
});

test('delta results list added, removed and changed ids', () => {
  const mirror = new Mirror();
  mirror.applySnapshot(
    snapshot(
      table([
        [1, 'a'],
        [2, 'b'],
        [4, 'd'],
        [9, 'z'],
      ]),
      5n,
    ),
  );
  const result = mirror.applyDelta(
    diff(
      table([
        [1, 'a'],
        [2, 'b'],
        [4, 'd'],
        [9, 'z'],
      ]),
      table([
        [2, 'B'],
        [3, 'c'],
        [4, 'd'],
        [10, 'y'],
      ]),
      5n,
      6n,
    ),
  );
  assert.deepEqual(result, { ok: true, change: { tick: 6n, added: [3, 10], removed: [1, 9], changed: [2] } });
  assert.deepEqual(mirror.ids(), [2, 3, 4, 10]);
});

test('a delta is applied only on its base tick; gaps leave the mirror unchanged', () => {
  const mirror = new Mirror();
  const d = diff(table([]), table([[1, 'a']]), 3n, 4n);
  assert.deepEqual(mirror.applyDelta(d), {
    ok: false,
    gap: { reason: 'no-snapshot', baseTick: 3n, mirrorTick: null },
  });
  mirror.applySnapshot(snapshot(table([[5, 'e']]), 2n));
  assert.deepEqual(mirror.applyDelta(d), {
    ok: false,
    gap: { reason: 'base-mismatch', baseTick: 3n, mirrorTick: 2n },
  });
  assert.equal(mirror.tick, 2n);
  assert.deepEqual(contents(mirror), table([[5, 'e']]));
  // tick need not be base + 1: only the base is checked.
  const jump = mirror.applyDelta({ type: 'Delta', tick: 40n, baseTick: 2n, changed: [], removed: [5] });
  assert.ok(jump.ok);
  assert.equal(mirror.tick, 40n);
  assert.equal(mirror.size, 0);
  // A delta from the past (already applied) is refused too.
  assert.equal(mirror.applyDelta({ type: 'Delta', tick: 3n, baseTick: 2n, changed: [], removed: [] }).ok, false);
});

test('a snapshot always applies and reports what changed against the old table', () => {
  const mirror = new Mirror();
  mirror.applySnapshot(
    snapshot(
      table([
        [1, 'a'],
        [2, 'b'],
      ]),
      100n,
    ),
  );
  // Older tick, different content: still replaces everything (e.g. after Resync).
  const change = mirror.applySnapshot(
    snapshot(
      table([
        [2, 'B'],
        [3, 'c'],
      ]),
      90n,
    ),
  );
  assert.deepEqual(change, { tick: 90n, added: [3], removed: [1], changed: [2] });
  assert.equal(mirror.tick, 90n);
  assert.equal(mirror.entity(2, (b) => dec.decode(b)), 'B');
  assert.equal(mirror.entity(1, (b) => dec.decode(b)), undefined);
});

test('random walks: snapshot + diffs always equal the source state', () => {
  let seed = 42;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  let state: Table = table([]);
  const mirror = new Mirror();
  mirror.applySnapshot(snapshot(state, 0n));
  for (let tick = 1n; tick <= 500n; tick++) {
    const next = new Map(state);
    for (let k = rand(4); k > 0; k--) {
      const id = rand(20);
      if (rand(3) === 0) next.delete(id);
      else next.set(id, `v${rand(5)}`);
    }
    const result = mirror.applyDelta(diff(state, next, tick - 1n, tick));
    assert.ok(result.ok);
    state = next;
    assert.deepEqual(contents(mirror), state, `tick ${tick}`);
  }
});
