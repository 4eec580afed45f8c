// Live: TS RoomClients against a real roomcast server (127.0.0.1, port 0).
//
// 1. Two TS clients in one arena room: one moves; both mirrors are identical
//    at every tick both saw, and equal the server's own state (admin API).
//    If a Rust game participant is available, its mirror is compared too.
// 2. Reconnect: the moving client's socket is killed; it reconnects, resumes
//    the same player, and its mirror keeps matching the others and the server.
//
// The Rust participant: $ROOMCAST_GAME_BIN, else target/debug/roomcast-game
// (clients/rust/src/bin/roomcast-game.rs), run as
//   roomcast-game --url ws://127.0.0.1:PORT --game arena --room ROOM --at-tick N --timeout SECS
// It must join the room, follow its mirror, and when the mirror's tick first
// reaches N or more print one JSON line
//   {"player_id": P, "tick": T, "entities": [{"id": ID, "data": "HEX"}, ...]}
// (entities in increasing id order, data as lowercase hex or an array of
// bytes), then leave and exit 0.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';

import {
  RoomClient,
  decodeArenaPlayer,
  encodeArenaInput,
  fromHex,
  toHex,
  type ArenaInput,
  type ArenaPlayer,
  type CloseEvent,
  type Mirror,
  type WebSocketConstructor,
  type WelcomeMessage,
} from '../src/index.js';
import { GAME_BIN, adminArenaRoom, nextEvent, startServer, waitFor, type Server } from './helpers.js';

let server: Server;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

/** A `ws` constructor that remembers its sockets, so a test can kill one. */
function trackedWebSocket(): { ctor: WebSocketConstructor; sockets: WebSocket[] } {
  const sockets: WebSocket[] = [];
  class Tracked extends WebSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  return { ctor: Tracked, sockets };
}

/** Canonical text of a mirror's table: `id=hex` in id order. */
function tableText(entities: ReadonlyArray<{ id: number; data: Uint8Array }>): string {
  return entities.map((e) => `${e.id}=${toHex(e.data)}`).join(' ');
}

/** A client plus the history of its mirror (tick → table text). */
interface Peer {
  client: RoomClient;
  sockets: WebSocket[];
  history: Map<bigint, string>;
  welcome: WelcomeMessage;
}

async function joinPeer(room: string): Promise<Peer> {
  const { ctor, sockets } = trackedWebSocket();
  const client = new RoomClient({
    WebSocket: ctor,
    pingIntervalMs: 200,
    reconnect: { baseDelayMs: 50, maxDelayMs: 500, maxAttempts: 10 },
  });
  const history = new Map<bigint, string>();
  client.on('state', ({ tick }) => {
    history.set(tick, tableText(client.mirror.entities()));
  });
  const welcome = await client.connect(`${server.wsUrl}/game/arena/${room}`);
  return { client, sockets, history, welcome };
}

function me(peer: Peer, of: Peer = peer): ArenaPlayer | undefined {
  return peer.client.mirror.entity(of.welcome.playerId, decodeArenaPlayer);
}

function move(peer: Peer, input: ArenaInput): number {
  const seq = peer.client.sendInput(encodeArenaInput(input));
  assert.ok(seq !== null, 'input not sent: client not joined');
  return seq;
}

/** Waits until every peer's mirror shows `mover` with `last_input >= seq` and velocity `v`. */
async function acked(peers: Peer[], mover: Peer, seq: number, v: { vx: number; vy: number }): Promise<void> {
  for (const p of peers) {
    await waitFor(
      () => {
        const e = me(p, mover);
        return e !== undefined && e.lastInput >= seq && e.vx === v.vx && e.vy === v.vy;
      },
      `player ${mover.welcome.playerId} acked seq ${seq} in the mirror of player ${p.welcome.playerId}`,
      { details: () => JSON.stringify(me(p, mover)) },
    );
  }
}

/** Ticks both peers recorded (after `from`), with any differing tables. */
function compareHistories(a: Peer, b: Peer, from = -1n): { common: bigint[]; differing: string[] } {
  const common: bigint[] = [];
  const differing: string[] = [];
  for (const [tick, table] of a.history) {
    if (tick <= from) continue;
    const other = b.history.get(tick);
    if (other === undefined) continue;
    common.push(tick);
    if (other !== table) differing.push(`tick ${tick}:\n  ${table}\n  ${other}`);
  }
  return { common, differing };
}

/** Asserts the server's state (admin API) equals the peer's mirror (a static room). */
async function matchesServer(peer: Peer, room: string): Promise<void> {
  const admin = await adminArenaRoom(server, room);
  const mirror: Mirror = peer.client.mirror;
  assert.ok(mirror.tick !== null);
  assert.ok(BigInt(admin.tick) >= mirror.tick, `server tick ${admin.tick} behind mirror ${mirror.tick}`);
  const serverIds = Object.keys(admin.players).map(Number).sort((x, y) => x - y);
  assert.deepEqual(mirror.ids(), serverIds, 'same players');
  for (const id of serverIds) {
    const s = admin.players[String(id)];
    const m = mirror.entity(id, decodeArenaPlayer);
    assert.ok(s && m);
    // serde prints the f32 in its shortest form; fround gives back the same f32.
    assert.deepEqual(
      { x: m.x, y: m.y, vx: m.vx, vy: m.vy, lastInput: m.lastInput },
      { x: Math.fround(s.x), y: Math.fround(s.y), vx: Math.fround(s.vx), vy: Math.fround(s.vy), lastInput: s.last_input },
      `player ${id}`,
    );
  }
}

/** Runs the Rust participant (see the file header); resolves with its printed mirror. */
function runRustGame(room: string, atTick: bigint): Promise<{ tick: bigint; table: string; playerId: number }> {
  const args = ['--url', server.wsUrl, '--game', 'arena', '--room', room, '--at-tick', String(atTick), '--timeout', '10'];
  return new Promise((resolve, reject) => {
    execFile(GAME_BIN, args, { timeout: 20000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${GAME_BIN} ${args.join(' ')} failed: ${err.message}\nstderr: ${stderr}`));
        return;
      }
      try {
        const out = JSON.parse(stdout.trim().split('\n').pop() ?? '') as {
          player_id: number;
          tick: number;
          entities: Array<{ id: number; data: string | number[] }>;
        };
        const entities = out.entities.map((e) => ({
          id: e.id,
          data: typeof e.data === 'string' ? fromHex(e.data) : Uint8Array.from(e.data),
        }));
        resolve({ tick: BigInt(out.tick), table: tableText(entities), playerId: out.player_id });
      } catch (e) {
        reject(new Error(`${GAME_BIN} printed no mirror JSON: ${String(e)}\nstdout: ${stdout}\nstderr: ${stderr}`));
      }
    });
  });
}

test('a moving TS client: its mirror, another TS client\'s, a Rust client\'s and the server\'s state agree tick by tick', { timeout: 60000 }, async () => {
  const room = `ts-live-${process.pid}`;
  const a = await joinPeer(room);
  const b = await joinPeer(room);
  try {
    assert.equal(a.welcome.resumed, false);
    assert.equal(a.welcome.game, 'arena');
    assert.equal(a.welcome.room, room);
    assert.notEqual(a.welcome.playerId, b.welcome.playerId);
    for (const p of [a, b]) {
      await waitFor(() => p.client.mirror.has(a.welcome.playerId) && p.client.mirror.has(b.welcome.playerId), 'both players in a mirror');
    }
    await waitFor(() => a.client.rttMs !== null, 'an RTT measurement');

    const start = me(a);
    assert.ok(start);
    assert.deepEqual([start.vx, start.vy, start.lastInput], [0, 0, 0]);

    // Move diagonally; every mirror shows the ack and the velocity.
    const go = move(a, { dx: 1, dy: 1 });
    await acked([a, b], a, go, { vx: 200, vy: 200 });
    const movingFrom = a.client.mirror.tick as bigint;

    // The Rust participant prints its mirror at a tick ahead.
    assert.ok(existsSync(GAME_BIN), `no Rust game participant at ${GAME_BIN} (cargo build --bin roomcast-game, or set ROOMCAST_GAME_BIN)`);
    const rust = await runRustGame(room, movingFrom + 15n);

    const stop = move(a, { dx: 0, dy: 0 });
    await acked([a, b], a, stop, { vx: 0, vy: 0 });
    const end = me(a);
    assert.ok(end);
    assert.ok(end.x > start.x && end.y > start.y, `moved: ${JSON.stringify(start)} -> ${JSON.stringify(end)}`);
    // Diagonal at equal speed, unclamped: the same distance on both axes.
    if (end.x < 1000 && end.y < 1000) assert.ok(Math.abs(end.x - start.x - (end.y - start.y)) < 0.01);

    // Both TS mirrors are identical at every tick both saw, including while moving.
    await waitFor(() => b.history.has(a.client.mirror.tick as bigint), 'B to reach A\'s tick');
    const { common, differing } = compareHistories(a, b);
    assert.deepEqual(differing, []);
    const movingCommon = common.filter((t) => t > movingFrom);
    assert.ok(movingCommon.length >= 10, `only ${movingCommon.length} common ticks while moving`);

    const seen = await waitFor(() => a.history.get(rust.tick), `A's mirror at the Rust tick ${rust.tick}`);
    assert.equal(seen, rust.table, `TS and Rust mirrors at tick ${rust.tick}`);
    assert.ok(rust.table.includes(`${a.welcome.playerId}=`), 'the Rust mirror holds the TS player');

    // The room is static now: the server's state equals the mirror.
    await matchesServer(a, room);
    await matchesServer(b, room);
  } finally {
    await Promise.all([a.client.close(), b.client.close()]);
  }
  assert.equal(a.client.state, 'closed');
});

test('a killed socket reconnects, resumes the same player, and the mirror matches again', { timeout: 60000 }, async () => {
  const room = `ts-live-reconnect-${process.pid}`;
  const a = await joinPeer(room);
  const b = await joinPeer(room);
  try {
    await waitFor(() => b.client.mirror.has(a.welcome.playerId), 'A in B\'s mirror');
    const left = move(a, { dx: -1, dy: 0 });
    await acked([a, b], a, left, { vx: -200, vy: 0 });

    const closes: CloseEvent[] = [];
    a.client.on('close', (e) => closes.push(e));
    const reconnecting = nextEvent((f) => a.client.on('reconnecting', f), 'reconnecting');
    const welcomed = nextEvent<WelcomeMessage>((f) => a.client.on('welcome', f), 'welcome after reconnect');
    const firstSocket = a.sockets[a.sockets.length - 1];
    assert.ok(firstSocket);
    const tickBefore = a.client.mirror.tick as bigint;
    firstSocket.terminate(); // abrupt: no close frame, no Leave

    await reconnecting;
    const again = await welcomed;
    assert.deepEqual(closes.map((c) => [c.code, c.willReconnect]), [[1006, true]]);
    assert.equal(again.resumed, true, 'resumed');
    assert.equal(again.playerId, a.welcome.playerId, 'same player id');
    assert.equal(a.sockets.length, 2, 'one new socket');
    assert.equal(a.client.state, 'open');

    // The mirror moves on from the kept state (resume delta or fresh snapshot).
    await waitFor(() => (a.client.mirror.tick as bigint) > tickBefore + 2n, 'the mirror to advance after the resume');
    const resumedAt = a.client.mirror.tick as bigint;
    // While away the player stopped; it still exists with its last ack.
    const away = me(a);
    assert.ok(away && away.lastInput >= left);

    // Inputs work on the new connection; seq continues.
    const down = move(a, { dx: 0, dy: 1 });
    assert.ok(down > left);
    await acked([a, b], a, down, { vx: 0, vy: 200 });
    await waitFor(() => (a.client.mirror.tick as bigint) >= resumedAt + 10n, '10 ticks of movement');
    const stop = move(a, { dx: 0, dy: 0 });
    await acked([a, b], a, stop, { vx: 0, vy: 0 });

    await waitFor(() => b.history.has(a.client.mirror.tick as bigint), 'B to reach A\'s tick');
    const { common, differing } = compareHistories(a, b, resumedAt);
    assert.deepEqual(differing, []);
    assert.ok(common.length >= 10, `only ${common.length} common ticks after the resume`);
    await matchesServer(a, room);
  } finally {
    await Promise.all([a.client.close(), b.client.close()]);
  }
});

test('connect() to an unknown game rejects (HTTP 404 before the upgrade), without retrying', { timeout: 20000 }, async () => {
  const { ctor, sockets } = trackedWebSocket();
  const client = new RoomClient({ WebSocket: ctor });
  await assert.rejects(client.connect(`${server.wsUrl}/game/nope/room`), /could not join/);
  assert.equal(client.state, 'closed');
  assert.equal(sockets.length, 1);
});
