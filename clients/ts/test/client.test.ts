// RoomClient against a scripted in-process WebSocket (no server): handshake,
// mirror and resync, reconnect policy and backoff, close(). The live test
// covers the same against the real server.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';

import {
  CloseCode,
  RoomClient,
  RoomClientError,
  ServerError,
  decodeClientMessage,
  encodeServerMessage,
  shouldReconnect,
  type ClientMessage,
  type CloseEvent,
  type ReconnectingEvent,
  type RoomClientOptions,
  type ServerMessage,
  type WebSocketConstructor,
  type WebSocketLike,
} from '../src/index.js';
import { nextEvent, waitFor } from './helpers.js';

// Compile-time checks: the `ws` package's and the platform's WebSocket fit the option.
export const wsFits: WebSocketConstructor = WebSocket;
export function platformFits(): WebSocketConstructor {
  return globalThis.WebSocket;
}

const TOKEN = Uint8Array.from({ length: 16 }, (_, i) => i);

/** A fake socket the test drives from the server side. */
class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  binaryType = 'blob';
  readyState = 0;
  sent: ClientMessage[] = [];
  onopen: ((event: never) => void) | null = null;
  onmessage: ((event: never) => void) | null = null;
  onclose: ((event: never) => void) | null = null;
  onerror: ((event: never) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: Uint8Array): void {
    assert.equal(this.readyState, 1, 'send on a socket that is not open');
    const message = decodeClientMessage(data);
    this.sent.push(message);
    // Like the server: Leave is answered by a close with 1000.
    if (message.type === 'Leave') setTimeout(() => this.closed(1000, 'left the room'), 1);
  }
  close(code?: number, reason?: string): void {
    if (this.readyState >= 2) return;
    this.readyState = 2;
    // Like a browser: the close event comes later.
    setTimeout(() => this.closed(code ?? 1005, reason ?? ''), 1);
  }
  // --- server side ---
  open(): void {
    this.readyState = 1;
    (this.onopen as ((e: unknown) => void) | null)?.({});
  }
  push(m: ServerMessage): void {
    const bytes = encodeServerMessage(m);
    (this.onmessage as ((e: { data: unknown }) => void) | null)?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  }
  closed(code: number, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    (this.onclose as ((e: { code: number; reason: string }) => void) | null)?.({ code, reason });
  }
  welcome(playerId: number, resumed = false): void {
    this.push({ type: 'Welcome', protocol: 1, playerId, resumeToken: TOKEN, resumed, game: 'arena', room: 'r', tickRateHz: 30 });
  }
}

function fakeClient(options: RoomClientOptions = {}): RoomClient {
  FakeSocket.all = [];
  return new RoomClient({
    WebSocket: FakeSocket,
    pingIntervalMs: 0,
    random: () => 0.5,
    reconnect: { baseDelayMs: 8, maxDelayMs: 20, maxAttempts: 3 },
    ...options,
  });
}

const last = (): FakeSocket => {
  const s = FakeSocket.all[FakeSocket.all.length - 1];
  assert.ok(s, 'no socket opened');
  return s;
};

async function joined(client: RoomClient, playerId = 3): Promise<FakeSocket> {
  const connecting = client.connect('ws://fake/game/arena/r');
  const s = last();
  s.open();
  assert.deepEqual(s.sent, [{ type: 'Join', protocol: 1, resume: null }]);
  s.welcome(playerId);
  const welcome = await connecting;
  assert.equal(welcome.playerId, playerId);
  assert.equal(s.binaryType, 'arraybuffer');
  return s;
}

test('join, snapshot, deltas, entity events, inputs with increasing seq', async () => {
  const client = fakeClient();
  const events: string[] = [];
  client.on('join', ({ id }) => events.push(`join ${id}`));
  client.on('leave', ({ id }) => events.push(`leave ${id}`));
  client.on('state', ({ tick, source }) => events.push(`state ${tick} ${source}`));
  assert.equal(client.sendInput(Uint8Array.of(0, 0)), null, 'no input before joining');
  const s = await joined(client);
  assert.equal(client.state, 'open');
  s.push({ type: 'Snapshot', tick: 5n, entities: [{ id: 3, data: Uint8Array.of(1) }] });
  s.push({ type: 'Delta', tick: 6n, baseTick: 5n, changed: [{ id: 4, data: Uint8Array.of(2) }], removed: [] });
  s.push({ type: 'Delta', tick: 7n, baseTick: 6n, changed: [], removed: [3] });
  assert.deepEqual(events, ['join 3', 'state 5 snapshot', 'join 4', 'state 6 delta', 'leave 3', 'state 7 delta']);
  assert.equal(client.mirror.tick, 7n);
  assert.deepEqual(client.mirror.ids(), [4]);
  assert.equal(client.sendInput(Uint8Array.of(1, 0)), 1);
  assert.equal(client.sendInput(Uint8Array.of(0, 1)), 2);
  assert.deepEqual(
    s.sent.filter((m) => m.type === 'Input').map((m) => (m.type === 'Input' ? m.seq : 0)),
    [1, 2],
  );
  await client.close();
});

test('a delta that does not fit sends one Resync; the next snapshot recovers', async () => {
  const client = fakeClient();
  const s = await joined(client);
  const gaps: unknown[] = [];
  client.on('gap', (g) => gaps.push(g));
  s.push({ type: 'Snapshot', tick: 10n, entities: [] });
  s.push({ type: 'Delta', tick: 13n, baseTick: 12n, changed: [], removed: [] });
  s.push({ type: 'Delta', tick: 14n, baseTick: 13n, changed: [], removed: [] });
  assert.equal(s.sent.filter((m) => m.type === 'Resync').length, 1, 'exactly one Resync');
  assert.deepEqual(gaps, [{ reason: 'base-mismatch', baseTick: 12n, mirrorTick: 10n }]);
  assert.equal(client.mirror.tick, 10n, 'mirror unchanged');
  s.push({ type: 'Snapshot', tick: 14n, entities: [{ id: 1, data: Uint8Array.of(9) }] });
  s.push({ type: 'Delta', tick: 15n, baseTick: 14n, changed: [], removed: [] });
  assert.equal(client.mirror.tick, 15n);
  // A later gap asks again.
  s.push({ type: 'Delta', tick: 30n, baseTick: 29n, changed: [], removed: [] });
  assert.equal(s.sent.filter((m) => m.type === 'Resync').length, 2);
  await client.close();
});

test('pings measure the round trip; in-band errors and bad frames are reported, not fatal', async () => {
  const client = fakeClient();
  const s = await joined(client);
  const ping = s.sent.find((m) => m.type === 'Ping');
  assert.ok(ping && ping.type === 'Ping', 'a ping right after the welcome');
  const pong = nextEvent<{ rttMs: number }>((f) => client.on('pong', f), 'pong');
  s.push({ type: 'Pong', clientTimeUs: ping.clientTimeUs, serverTick: 77n });
  assert.ok((await pong).rttMs >= 0);
  assert.ok(client.rttMs !== null && client.rttMs >= 0);
  const errors: Error[] = [];
  client.on('error', (e) => errors.push(e));
  s.push({ type: 'Error', code: 5, message: 'no' });
  (s.onmessage as ((e: { data: unknown }) => void) | null)?.({ data: new Uint8Array([9]).buffer });
  (s.onmessage as ((e: { data: unknown }) => void) | null)?.({ data: 'text' });
  assert.equal(errors.length, 3);
  assert.ok(errors[0] instanceof ServerError && errors[0].code === 5);
  assert.equal(errors[1]?.name, 'DecodeError');
  assert.ok(errors[2] instanceof RoomClientError);
  assert.equal(client.state, 'open');
  await client.close();
});

test('an unexpected close reconnects with backoff and resumes with the token and mirror tick', async () => {
  const client = fakeClient();
  const s1 = await joined(client, 7);
  s1.push({ type: 'Snapshot', tick: 50n, entities: [{ id: 7, data: Uint8Array.of(1) }] });
  const closes: CloseEvent[] = [];
  const reconnects: ReconnectingEvent[] = [];
  client.on('close', (e) => closes.push(e));
  client.on('reconnecting', (e) => reconnects.push(e));
  s1.closed(CloseCode.ABNORMAL);
  assert.deepEqual(closes, [{ code: 1006, reason: '', willReconnect: true }]);
  assert.equal(client.state, 'reconnecting');
  // Full jitter with random() = 0.5: attempt 1 waits 0.5 × min(20, 8) = 4 ms.
  assert.deepEqual(reconnects, [{ attempt: 1, delayMs: 4 }]);
  assert.equal(client.sendInput(Uint8Array.of(0, 0)), null, 'no input while reconnecting');
  const s2 = await waitFor(() => (FakeSocket.all.length === 2 ? FakeSocket.all[1] : null), 'second socket');
  // The attempt fails before opening: the next waits 0.5 × min(20, 16) = 8 ms.
  s2.closed(CloseCode.ABNORMAL);
  assert.deepEqual(reconnects[1], { attempt: 2, delayMs: 8 });
  const s3 = await waitFor(() => (FakeSocket.all.length === 3 ? FakeSocket.all[2] : null), 'third socket');
  s3.open();
  assert.deepEqual(s3.sent, [{ type: 'Join', protocol: 1, resume: { token: TOKEN, lastTick: 50n } }]);
  const welcome = nextEvent<{ resumed: boolean; playerId: number }>((f) => client.on('welcome', f), 'welcome');
  s3.welcome(7, true);
  assert.deepEqual(await welcome.then((w) => [w.resumed, w.playerId]), [true, 7]);
  assert.equal(client.state, 'open');
  // The resume delta applies to the kept mirror.
  s3.push({ type: 'Delta', tick: 53n, baseTick: 50n, changed: [{ id: 7, data: Uint8Array.of(2) }], removed: [] });
  assert.equal(client.mirror.tick, 53n);
  assert.deepEqual([...(client.mirror.get(7) ?? [])], [2]);
  // seq keeps increasing across connections.
  client.sendInput(Uint8Array.of(0, 0));
  assert.equal(client.lastSeq, 1);
  await client.close();
});

test('close codes that mean "client bug" or "replaced" are not retried', async () => {
  for (const [code, reason] of [
    [1000, 'left the room'],
    [1003, ''],
    [1007, 'bad message'],
    [1009, ''],
    [1008, 'replaced by a newer connection of the same player'],
  ] as const) {
    const client = fakeClient();
    const s = await joined(client);
    const close = nextEvent<CloseEvent>((f) => client.on('close', f), 'close');
    s.closed(code, reason);
    assert.equal((await close).willReconnect, false, `code ${code}`);
    assert.equal(client.state, 'closed');
    assert.equal(FakeSocket.all.length, 1, `no new socket after ${code}`);
  }
  for (const code of [1001, 1005, 1006, 1011, 1013]) assert.ok(shouldReconnect(code, ''), `retry ${code}`);
  assert.ok(shouldReconnect(1008, 'too slow: could not keep up'));
});

test('reconnecting gives up after maxAttempts failed attempts', async () => {
  const client = fakeClient({ reconnect: { baseDelayMs: 1, maxDelayMs: 2, maxAttempts: 2 } });
  const s = await joined(client);
  const closes: CloseEvent[] = [];
  client.on('close', (e) => closes.push(e));
  s.closed(1006);
  await waitFor(() => FakeSocket.all.length === 2, 'attempt 1');
  last().closed(1006);
  await waitFor(() => FakeSocket.all.length === 3, 'attempt 2');
  last().closed(1006);
  assert.deepEqual(
    closes.map((c) => c.willReconnect),
    [true, true, false],
  );
  assert.equal(client.state, 'closed');
});

test('the first connect rejects when the connection fails before Welcome', async () => {
  const client = fakeClient();
  const connecting = client.connect('ws://fake/game/nope/r');
  last().closed(1006);
  await assert.rejects(connecting, (e: unknown) => e instanceof RoomClientError && e.closeCode === 1006);
  assert.equal(client.state, 'closed');
  assert.equal(FakeSocket.all.length, 1, 'no retry of a first connection');
});

test('close() sends Leave, waits for the server close, and never reconnects', async () => {
  const client = fakeClient();
  const s = await joined(client);
  const closes: CloseEvent[] = [];
  client.on('close', (e) => closes.push(e));
  const closing = client.close();
  assert.equal(client.state, 'closing');
  assert.deepEqual(s.sent[s.sent.length - 1], { type: 'Leave' });
  await closing;
  assert.deepEqual(closes, [{ code: 1000, reason: 'left the room', willReconnect: false }]);
  assert.equal(client.state, 'closed');
  // A server that never answers: close() still finishes, bounded.
  const client2 = fakeClient({ closeTimeoutMs: 20 });
  const s2 = await joined(client2);
  // A dead server: Leave and the client's close are swallowed, no close event ever.
  s2.send = () => {};
  s2.close = () => {};
  const started = Date.now();
  await client2.close();
  assert.equal(client2.state, 'closed');
  assert.ok(Date.now() - started < 1000);
});
