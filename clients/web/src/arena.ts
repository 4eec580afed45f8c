/**
 * The arena demo (`/arena.html#room`): a canvas client of the `arena` game.
 *
 * - joins `ws(s)://HOST/game/arena/{room}` with `RoomClient` (which resumes the
 *   player after a dropped connection); the room is the URL hash, `lobby` by
 *   default, and a new hash joins the new room;
 * - arrow keys / WASD: one input per tick while a key is held, a zero input on
 *   release;
 * - one's own player is predicted locally and reconciled with each server
 *   state; the others are interpolated one tick behind (see `prediction.ts`);
 * - an overlay shows the input-to-ack latency, the tick rate, bytes/s
 *   received, the connection status and one's player id.
 *
 * `window.__arena` is a read-only hook for the browser tests.
 *
 * @module
 */

import {
  RoomClient,
  decodeArenaPlayer,
  encodeArenaInput,
  ARENA_WORLD_SIZE,
  type ArenaDirection,
} from '../../ts/src/index.ts';
import { bindRoomForm, byId, roomFromLocation, socketBase } from './location.ts';
import { Interpolator, Predictor, Smoother, type Direction, type Point } from './prediction.ts';

const DEFAULT_ROOM = 'lobby';
/** Radius of a player's circle, in world units. */
const PLAYER_RADIUS = 22;
/** Until the first `Welcome` says otherwise. */
const DEFAULT_TICK_HZ = 30;
/** Wait before starting a new session when the previous one gave up. */
const RESTART_DELAY_MS = 3000;
/** Send times kept for the ack latency (older unacknowledged ones are dropped). */
const MAX_TRACKED_SEQS = 256;

// ---------------------------------------------------------------------------
// Bytes received, counted under the client by a WebSocket subclass.

let bytesReceived = 0;

/** The browser's WebSocket, counting the bytes of every message it receives. */
class CountingWebSocket extends WebSocket {
  constructor(url: string) {
    super(url);
    this.addEventListener('message', (event: MessageEvent) => {
      const data: unknown = event.data;
      if (data instanceof ArrayBuffer) bytesReceived += data.byteLength;
      else if (typeof data === 'string') bytesReceived += data.length;
      else if (data instanceof Blob) bytesReceived += data.size;
    });
  }
}

// ---------------------------------------------------------------------------
// Page elements

const canvas = byId<HTMLCanvasElement>('arena-canvas');
const ctx = canvas.getContext('2d') as CanvasRenderingContext2D; // a 2D context is always available
const statusEl = byId('status');
const showRoom = bindRoomForm(byId<HTMLFormElement>('room-form'), byId<HTMLInputElement>('room-input'), DEFAULT_ROOM);
const stat = {
  player: byId('stat-player'),
  ack: byId('stat-ack'),
  rtt: byId('stat-rtt'),
  tick: byId('stat-tick'),
  bytes: byId('stat-bytes'),
  players: byId('stat-players'),
  correction: byId('stat-correction'),
  error: byId('stat-error'),
};

// ---------------------------------------------------------------------------
// Session state (one room at a time)

type Status = 'connecting' | 'connected' | 'reconnecting' | 'disconnected';

let client: RoomClient | null = null;
let room = DEFAULT_ROOM;
let status: Status = 'connecting';
let statusDetail = '';
let playerId: number | null = null;
let tickHz = DEFAULT_TICK_HZ;
let predictor = new Predictor(DEFAULT_TICK_HZ);
let others = new Interpolator(1000 / DEFAULT_TICK_HZ);
let own = new Smoother(1000 / DEFAULT_TICK_HZ);
/** `performance.now()` at which each unacknowledged input was sent. */
const sentAt = new Map<number, number>();
/** Latest input-to-ack latency, ms. */
let ackMs: number | null = null;
/** Distance of the latest non-zero prediction correction, world units. */
let lastCorrection = 0;
let lastError = '';
let restartTimer: ReturnType<typeof setTimeout> | null = null;
let statesSeen = 0;

function setStatus(next: Status, detail = ''): void {
  status = next;
  statusDetail = detail;
  statusEl.textContent = detail === '' ? next : `${next} (${detail})`;
  statusEl.dataset.status = next;
}

/** Leaves the current room (if any) and joins `name`. */
function join(name: string): void {
  if (restartTimer !== null) clearTimeout(restartTimer);
  restartTimer = null;
  const previous = client;
  client = null;
  if (previous !== null) void previous.close();

  room = name;
  showRoom(name);
  document.title = `${name} · arena · roomcast`;
  playerId = null;
  resetSimulation(DEFAULT_TICK_HZ);
  lastError = '';
  setStatus('connecting');

  const c = new RoomClient({ WebSocket: CountingWebSocket });
  client = c;
  const mine = (): boolean => client === c;
  c.on('welcome', (welcome) => {
    if (!mine()) return;
    if (welcome.playerId !== playerId || welcome.tickRateHz !== tickHz) resetSimulation(welcome.tickRateHz);
    playerId = welcome.playerId;
    setStatus('connected');
  });
  c.on('state', () => {
    if (mine()) onState(c);
  });
  c.on('reconnecting', ({ attempt }) => {
    if (mine()) setStatus('reconnecting', `attempt ${attempt}`);
  });
  c.on('close', ({ code, willReconnect }) => {
    if (!mine() || willReconnect) return;
    setStatus('disconnected', `code ${code}; retrying`);
    scheduleRestart(c);
  });
  c.on('error', (err) => {
    if (mine()) lastError = err.message;
  });
  c.connect(`${socketBase()}/game/arena/${encodeURIComponent(name)}`).catch((err: unknown) => {
    if (!mine()) return;
    lastError = err instanceof Error ? err.message : String(err);
    setStatus('disconnected', 'retrying');
    scheduleRestart(c);
  });
}

/** After `c` gave up (or never joined), starts a fresh session in the same room. */
function scheduleRestart(c: RoomClient): void {
  if (restartTimer !== null) return;
  restartTimer = setTimeout(() => {
    restartTimer = null;
    if (client === c) join(room);
  }, RESTART_DELAY_MS);
}

/** New player or new tick rate: prediction, interpolation and stats start over. */
function resetSimulation(hz: number): void {
  tickHz = hz;
  predictor = new Predictor(hz);
  others = new Interpolator(1000 / hz);
  own = new Smoother(1000 / hz);
  sentAt.clear();
  ackMs = null;
  lastCorrection = 0;
  restartInputTimer();
}

/** A snapshot or delta moved the mirror: reconcile, measure, feed the interpolation. */
function onState(c: RoomClient): void {
  const now = performance.now();
  statesSeen += 1;
  const players = new Map<number, Point>();
  for (const [id, p] of c.mirror.decodeAll(decodeArenaPlayer)) {
    if (id === playerId) {
      const correction = predictor.reconcile(p);
      if (correction > 0.01) lastCorrection = correction;
      own.set(predictor.predicted, now);
      let acked: number | null = null;
      for (const [seq, at] of sentAt) {
        if (seq > p.lastInput) continue;
        if (acked === null || seq > acked) {
          acked = seq;
          ackMs = now - at;
        }
        sentAt.delete(seq);
      }
    } else {
      players.set(id, { x: p.x, y: p.y });
    }
  }
  others.push(players, now);
}

// ---------------------------------------------------------------------------
// Input

/** Keys held, by `KeyboardEvent.code`. */
const held = new Set<string>();
const KEYS: Record<string, Direction> = {
  ArrowLeft: { dx: -1, dy: 0 },
  KeyA: { dx: -1, dy: 0 },
  ArrowRight: { dx: 1, dy: 0 },
  KeyD: { dx: 1, dy: 0 },
  ArrowUp: { dx: 0, dy: -1 },
  KeyW: { dx: 0, dy: -1 },
  ArrowDown: { dx: 0, dy: 1 },
  KeyS: { dx: 0, dy: 1 },
};

let direction: Direction = { dx: 0, dy: 0 };
let inputTimer: ReturnType<typeof setInterval> | null = null;

function heldDirection(): Direction {
  let dx = 0;
  let dy = 0;
  for (const code of held) {
    dx += KEYS[code].dx;
    dy += KEYS[code].dy;
  }
  return { dx: Math.sign(dx), dy: Math.sign(dy) };
}

/** Sends `dir` now with the next seq and predicts it. */
function sendInput(dir: Direction): void {
  if (client === null) return;
  const seq = client.sendInput(encodeArenaInput({ dx: dir.dx as ArenaDirection, dy: dir.dy as ArenaDirection }));
  if (seq === null) return; // not joined right now: nothing sent, nothing to predict
  const now = performance.now();
  predictor.applyInput(seq, dir);
  own.set(predictor.predicted, now);
  sentAt.set(seq, now);
  if (sentAt.size > MAX_TRACKED_SEQS) sentAt.delete(sentAt.keys().next().value as number);
}

/** (Re)starts the per-tick sending while a direction is held. */
function restartInputTimer(): void {
  if (inputTimer !== null) clearInterval(inputTimer);
  inputTimer = null;
  if (direction.dx === 0 && direction.dy === 0) return;
  inputTimer = setInterval(() => sendInput(direction), 1000 / tickHz);
}

/** The held keys changed: send the new direction at once (zero on release). */
function directionChanged(): void {
  const next = heldDirection();
  if (next.dx === direction.dx && next.dy === direction.dy) return;
  direction = next;
  sendInput(direction);
  restartInputTimer();
}

function typingInAField(event: KeyboardEvent): boolean {
  const target = event.target;
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement;
}

window.addEventListener('keydown', (event) => {
  if (!(event.code in KEYS) || typingInAField(event) || event.altKey || event.ctrlKey || event.metaKey) return;
  event.preventDefault(); // no page scrolling with the arrows
  held.add(event.code);
  directionChanged();
});
window.addEventListener('keyup', (event) => {
  if (!held.delete(event.code)) return;
  event.preventDefault();
  directionChanged();
});
// Keys released while the window was not looking would stay held forever.
window.addEventListener('blur', () => {
  held.clear();
  directionChanged();
});

// ---------------------------------------------------------------------------
// Drawing

/** Keeps the canvas's pixel size matching its CSS size (sharp on HiDPI). */
function fitCanvas(): void {
  const ratio = window.devicePixelRatio || 1;
  const size = Math.max(1, Math.round(canvas.clientWidth * ratio));
  if (canvas.width !== size || canvas.height !== size) {
    canvas.width = size;
    canvas.height = size;
  }
}

/** A stable, distinct color per player id. */
function playerColor(id: number): string {
  return `hsl(${(id * 137) % 360} 55% 52%)`;
}

function drawPlayer(p: Point, id: number, fill: string, ring: string | null, label: string): void {
  ctx.beginPath();
  ctx.arc(p.x, p.y, PLAYER_RADIUS, 0, Math.PI * 2);
  ctx.fillStyle = fill;
  ctx.fill();
  if (ring !== null) {
    ctx.lineWidth = 5;
    ctx.strokeStyle = ring;
    ctx.stroke();
  }
  ctx.fillStyle = '#ffffff';
  ctx.font = `bold ${id > 99 ? 15 : 19}px system-ui, sans-serif`;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  ctx.fillText(String(id), p.x, p.y + 1);
  if (label !== '') {
    ctx.fillStyle = '#1d2125';
    ctx.font = 'bold 17px system-ui, sans-serif';
    ctx.fillText(label, p.x, p.y - PLAYER_RADIUS - 12);
  }
}

function draw(now: number): void {
  fitCanvas();
  const scale = canvas.width / ARENA_WORLD_SIZE;
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  ctx.fillStyle = '#f7f9fb';
  ctx.fillRect(0, 0, ARENA_WORLD_SIZE, ARENA_WORLD_SIZE);
  ctx.strokeStyle = '#e1e6eb';
  ctx.lineWidth = 1 / scale;
  ctx.beginPath();
  for (let v = 100; v < ARENA_WORLD_SIZE; v += 100) {
    ctx.moveTo(v, 0);
    ctx.lineTo(v, ARENA_WORLD_SIZE);
    ctx.moveTo(0, v);
    ctx.lineTo(ARENA_WORLD_SIZE, v);
  }
  ctx.stroke();

  for (const [id, p] of others.at(now)) drawPlayer(p, id, playerColor(id), null, '');

  const server = predictor.server;
  const mine = own.at(now);
  if (server !== null && playerId !== null) {
    // Where the server last put us: shows the prediction running ahead.
    ctx.beginPath();
    ctx.arc(server.x, server.y, PLAYER_RADIUS, 0, Math.PI * 2);
    ctx.setLineDash([6, 5]);
    ctx.lineWidth = 2;
    ctx.strokeStyle = '#8a96a3';
    ctx.stroke();
    ctx.setLineDash([]);
  }
  if (mine !== null && playerId !== null) drawPlayer(mine, playerId, '#e8590c', '#ffd8a8', 'you');
  requestAnimationFrame(draw);
}

// ---------------------------------------------------------------------------
// Overlay

let lastBytes = 0;
let lastStates = 0;
let lastSampleMs = performance.now();
let bytesPerSecond = 0;
let statesPerSecond = 0;

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB/s`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB/s`;
  return `${Math.round(n)} B/s`;
}

function updateOverlay(): void {
  const now = performance.now();
  const elapsed = (now - lastSampleMs) / 1000;
  if (elapsed >= 1) {
    bytesPerSecond = (bytesReceived - lastBytes) / elapsed;
    statesPerSecond = (statesSeen - lastStates) / elapsed;
    lastBytes = bytesReceived;
    lastStates = statesSeen;
    lastSampleMs = now;
  }
  stat.player.textContent = playerId === null ? '–' : String(playerId);
  stat.ack.textContent = ackMs === null ? '–' : `${ackMs.toFixed(0)} ms`;
  const rtt = client?.rttMs ?? null;
  stat.rtt.textContent = rtt === null ? '–' : `${rtt.toFixed(1)} ms`;
  stat.tick.textContent = `${tickHz} Hz (${statesPerSecond.toFixed(0)} states/s)`;
  stat.bytes.textContent = formatBytes(bytesPerSecond);
  stat.players.textContent = String(others.serverPositions.size + (playerId === null ? 0 : 1));
  stat.correction.textContent = `${lastCorrection.toFixed(1)} u (${predictor.pendingCount} pending)`;
  stat.error.textContent = lastError;
  stat.error.hidden = lastError === '';
}

// ---------------------------------------------------------------------------
// Test hook (read-only)

/** A copy of a point, or null. */
const copy = (p: Point | null): { x: number; y: number } | null => (p === null ? null : { x: p.x, y: p.y });

/**
 * Test hook for the browser tests (tests/node/demos.test.mjs); not an API.
 * Read-only: getters and functions returning copies.
 */
const hook = Object.freeze({
  get playerId(): number | null {
    return playerId;
  },
  get room(): string {
    return room;
  },
  get connected(): boolean {
    return client !== null && client.state === 'open';
  },
  get status(): string {
    return statusDetail === '' ? status : `${status} (${statusDetail})`;
  },
  get tickRateHz(): number {
    return tickHz;
  },
  get ackMs(): number | null {
    return ackMs;
  },
  /** One's own predicted position. */
  predicted: () => copy(predictor.predicted),
  /** One's own position in the latest server state. */
  server: () => copy(predictor.server),
  /** The other players: where they are drawn now, and their latest server position. */
  others: () =>
    [...others.at(performance.now())].map(([id, p]) => {
      const s = others.serverPositions.get(id) ?? p;
      return { id, x: p.x, y: p.y, serverX: s.x, serverY: s.y };
    }),
});
(window as unknown as { __arena: typeof hook }).__arena = hook;

// ---------------------------------------------------------------------------
// Start

window.addEventListener('hashchange', () => {
  const next = roomFromLocation(DEFAULT_ROOM);
  if (next !== room || client === null) join(next);
});
setInterval(updateOverlay, 250);
join(roomFromLocation(DEFAULT_ROOM));
requestAnimationFrame(draw);
