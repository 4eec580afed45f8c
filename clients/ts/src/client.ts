/**
 * `RoomClient`: one game-room session over a WebSocket, with the behaviour of
 * the Rust client (`clients/rust/src/game.rs`) plus automatic reconnection:
 *
 * - sends `Join` first, keeps the latest `Welcome` (player id, resume token);
 * - keeps a {@link Mirror} of the room from the snapshot and deltas; a delta that
 *   does not fit makes it send one `Resync` and ignore further misfits until
 *   the fresh snapshot arrives;
 * - sends inputs with a strictly increasing `seq` starting at 1;
 * - measures round-trip time with `Ping`/`Pong`;
 * - after an unexpected disconnect, reconnects with exponential backoff and full
 *   jitter, resuming its player with the resume token and its mirror's tick;
 * - `close()` sends `Leave` and waits (bounded) for the server's close.
 *
 * @module
 */

import { DecodeError } from './codec.js';
import { TypedEmitter } from './emitter.js';
import {
  CloseCode,
  decodeServerMessage,
  encodeClientMessage,
  ErrorCode,
  PROTOCOL_VERSION,
  type ClientMessage,
  type DeltaMessage,
  type ErrorMessage,
  type PongMessage,
  type SnapshotMessage,
  type WelcomeMessage,
} from './messages.js';
import { Mirror, type MirrorChange, type MirrorGap } from './mirror.js';

// ---------------------------------------------------------------------------
// WebSocket abstraction

/** `readyState` of an open WebSocket (the same in browsers and `ws`). */
const WS_OPEN = 1;

/**
 * The subset of the WebSocket API the client uses; the browser's / Node 22's
 * global `WebSocket` and the `ws` package's `WebSocket` both fit.
 *
 * The handler parameters are typed `never` because every implementation has
 * its own event classes; the client only reads `data` of message events and
 * `code`/`reason` of close events, which all of them carry.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
}

/** A WebSocket constructor, e.g. `globalThis.WebSocket` or `ws`'s default export. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

interface MessageEventLike {
  readonly data: unknown;
}

interface CloseEventLike {
  readonly code: number;
  readonly reason: string;
}

// ---------------------------------------------------------------------------
// Options, events, errors

/** Reconnection settings. */
export interface ReconnectOptions {
  /** Backoff base: the first retry waits up to this long (default 250 ms). */
  readonly baseDelayMs?: number;
  /** Backoff cap: no retry waits longer than this (default 5000 ms). */
  readonly maxDelayMs?: number;
  /** Consecutive failed attempts before giving up (default 10; `Infinity` allowed). */
  readonly maxAttempts?: number;
}

/** Options of a {@link RoomClient}. */
export interface RoomClientOptions {
  /**
   * The WebSocket constructor. Default: `globalThis.WebSocket` (browsers,
   * Node ≥ 22). On Node 20 pass the `ws` package's `WebSocket`.
   */
  readonly WebSocket?: WebSocketConstructor;
  /** Reconnection settings, or `false` to never reconnect automatically. */
  readonly reconnect?: ReconnectOptions | false;
  /**
   * Decides whether a close (code, reason) is worth a reconnect; default
   * {@link shouldReconnect}. Only consulted for closes the client did not ask for.
   */
  readonly shouldReconnect?: (code: number, reason: string) => boolean;
  /** Interval of `Ping`s for RTT measurement (default 1000 ms; 0 disables pings). */
  readonly pingIntervalMs?: number;
  /**
   * A connection that receives nothing for this long is treated as dead and
   * dropped (close code 1006, then reconnect). The server sends a `Delta`
   * every tick (at least 1 Hz), so silence means a broken link. Default
   * 10000 ms; 0 disables the check.
   */
  readonly idleTimeoutMs?: number;
  /** Longest time from opening a socket to its `Welcome` (default 10000 ms). */
  readonly handshakeTimeoutMs?: number;
  /** How long `close()` waits for the server's close after `Leave` (default 1000 ms). */
  readonly closeTimeoutMs?: number;
  /** Random source in [0, 1) for the backoff jitter (default `Math.random`). */
  readonly random?: () => number;
}

/** Where the client is. */
export type ConnectionState =
  /** Never connected, or `connect()` not called yet. */
  | 'idle'
  /** The first connection is being opened (before its `Welcome`). */
  | 'connecting'
  /** Joined: a `Welcome` arrived on the current socket. */
  | 'open'
  /** Lost the connection; waiting for or performing a reconnect attempt. */
  | 'reconnecting'
  /** `close()` was called and is completing. */
  | 'closing'
  /** Finished: closed by `close()`, by a final server close, or out of attempts. */
  | 'closed';

/** Payload of `join`: an entity appeared in the mirror. */
export interface EntityJoinEvent {
  readonly id: number;
  /** Its encoded value (decode with the game's decoder). */
  readonly data: Uint8Array;
}

/** Payload of `leave`: an entity disappeared from the mirror. */
export interface EntityLeaveEvent {
  readonly id: number;
}

/** Payload of `state`: the mirror moved to `tick`. */
export interface StateEvent extends MirrorChange {
  /** What moved it. */
  readonly source: 'snapshot' | 'delta';
}

/** Payload of `pong`. */
export interface PongEvent {
  /** Round-trip time of this ping, in milliseconds. */
  readonly rttMs: number;
  /** The room's tick when the server answered. */
  readonly serverTick: bigint;
}

/** Payload of `close`: a socket closed. */
export interface CloseEvent {
  /** WebSocket close code (1006 when the connection broke without a close frame). */
  readonly code: number;
  /** Close reason text. */
  readonly reason: string;
  /** True when the client will try to reconnect (a `reconnecting` event follows). */
  readonly willReconnect: boolean;
}

/** Payload of `reconnecting`: a reconnect attempt is scheduled. */
export interface ReconnectingEvent {
  /** 1 for the first attempt after a disconnect. */
  readonly attempt: number;
  /** Delay before this attempt, in milliseconds. */
  readonly delayMs: number;
}

/** Events of a {@link RoomClient}. */
export interface RoomClientEvents {
  /** A `Welcome` arrived (first join, or a reconnect: check `resumed`). */
  welcome: WelcomeMessage;
  /** An entity was added to the mirror. */
  join: EntityJoinEvent;
  /** An entity was removed from the mirror. */
  leave: EntityLeaveEvent;
  /** The mirror was updated by a snapshot or delta (after the `join`/`leave` events). */
  state: StateEvent;
  /** A delta did not fit the mirror; a `Resync` was sent. */
  gap: MirrorGap;
  /** A `Pong` arrived. */
  pong: PongEvent;
  /** A socket closed. */
  close: CloseEvent;
  /** A reconnect attempt is scheduled. */
  reconnecting: ReconnectingEvent;
  /**
   * Something went wrong that does not by itself end the session: an in-band
   * server `Error` ({@link ServerError}), an undecodable server frame
   * ({@link DecodeError}), or a protocol surprise ({@link RoomClientError}).
   */
  error: Error;
}

/** An in-band `Error` message from the server. */
export class ServerError extends Error {
  override readonly name = 'ServerError';
  /** See `ErrorCode`. */
  readonly code: number;

  constructor(message: ErrorMessage) {
    super(`server error ${message.code}: ${message.message}`);
    this.code = message.code;
  }
}

/** A protocol-level problem seen by the client, or a failed `connect()`. */
export class RoomClientError extends Error {
  override readonly name = 'RoomClientError';
  /** Close code of the connection, when the error is a failed connection. */
  readonly closeCode: number | null;
  /** Close reason, when the error is a failed connection. */
  readonly closeReason: string | null;

  constructor(message: string, closeCode: number | null = null, closeReason: string | null = null) {
    super(message);
    this.closeCode = closeCode;
    this.closeReason = closeReason;
  }
}

/**
 * The default reconnect policy. Not retried:
 * - 1000 (normal: after `Leave`, or a deliberate close),
 * - 1002, 1003, 1007, 1009, 1010 (the client sent something wrong: retrying
 *   would repeat it; fix the client),
 * - 1008 whose reason says the player was "replaced by a newer connection"
 *   (another connection resumed this player: retrying would steal it back and
 *   the two would evict each other forever).
 *
 * Everything else is retried: 1001 (server restart, room closed), 1005/1006
 * (no close frame: network failure, killed server), 1008 (lag, heartbeat,
 * join timeout), 1011 (room failed), 1012–1014, and any other code.
 */
export function shouldReconnect(code: number, reason: string): boolean {
  switch (code) {
    case CloseCode.NORMAL:
    case CloseCode.PROTOCOL_ERROR:
    case CloseCode.UNSUPPORTED_DATA:
    case CloseCode.INVALID_PAYLOAD:
    case CloseCode.MESSAGE_TOO_BIG:
    case 1010:
      return false;
    case CloseCode.POLICY_VIOLATION:
      return !reason.startsWith('replaced by a newer connection');
    default:
      return true;
  }
}

// ---------------------------------------------------------------------------
// The client

/** Per-socket state; handlers of an old socket see `conn !== this.conn` and do nothing. */
interface Connection {
  readonly ws: WebSocketLike;
  /** A `Welcome` arrived on this socket. */
  welcomed: boolean;
  /** Resync state of this socket (see the module doc). */
  resync: 'in-step' | 'requested';
  /** The server refused us for good (unsupported protocol): do not reconnect. */
  fatal: boolean;
  /** `performance.now()` of the last frame received. */
  lastHeardMs: number;
  handshakeTimer: ReturnType<typeof setTimeout> | null;
  heartbeatTimer: ReturnType<typeof setInterval> | null;
  /** Settles the promise of `connect()` (first connection only). */
  settle: ((error: Error | null, welcome: WelcomeMessage | null) => void) | null;
}

const DEFAULTS = {
  baseDelayMs: 250,
  maxDelayMs: 5000,
  maxAttempts: 10,
  pingIntervalMs: 1000,
  idleTimeoutMs: 10000,
  handshakeTimeoutMs: 10000,
  closeTimeoutMs: 1000,
};

/** Largest `seq` (`u32`). */
const MAX_SEQ = 0xffffffff;

const nowMs = (): number => performance.now();

/**
 * A client of one game room.
 *
 * ```ts
 * const client = new RoomClient({ WebSocket }) // `ws` on Node 20
 * client.on('state', ({ tick }) => render(client.mirror))
 * await client.connect('ws://127.0.0.1:8080/game/arena/lobby')
 * client.sendInput(encodeArenaInput({ dx: 1, dy: 0 }))
 * await client.close()
 * ```
 */
export class RoomClient extends TypedEmitter<RoomClientEvents> {
  /** The room state as this client knows it. Treat as read-only. */
  readonly mirror = new Mirror();

  private readonly WS: WebSocketConstructor;
  private readonly reconnectEnabled: boolean;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxAttempts: number;
  private readonly retryPolicy: (code: number, reason: string) => boolean;
  private readonly pingIntervalMs: number;
  private readonly idleTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly closeTimeoutMs: number;
  private readonly random: () => number;

  private currentState: ConnectionState = 'idle';
  private roomUrl: string | null = null;
  private conn: Connection | null = null;
  private latestWelcome: WelcomeMessage | null = null;
  /** Some connection of this session got a `Welcome` (reconnects need a player to resume). */
  private joinedOnce = false;
  /** `close()` was called: no reconnect. */
  private deliberate = false;
  /** Failed reconnect attempts since the last `Welcome`. */
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private seq = 0;
  private latestRttMs: number | null = null;
  /** Resolvers waiting for the session to reach `closed`. */
  private closedWaiters: Array<() => void> = [];

  constructor(options: RoomClientOptions = {}) {
    super();
    const ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (ctor === undefined) {
      throw new TypeError('no global WebSocket (Node < 22?): pass options.WebSocket, e.g. the `ws` package');
    }
    this.WS = ctor;
    const reconnect = options.reconnect ?? {};
    this.reconnectEnabled = reconnect !== false;
    const r = reconnect === false ? {} : reconnect;
    this.baseDelayMs = r.baseDelayMs ?? DEFAULTS.baseDelayMs;
    this.maxDelayMs = r.maxDelayMs ?? DEFAULTS.maxDelayMs;
    this.maxAttempts = r.maxAttempts ?? DEFAULTS.maxAttempts;
    this.retryPolicy = options.shouldReconnect ?? shouldReconnect;
    this.pingIntervalMs = options.pingIntervalMs ?? DEFAULTS.pingIntervalMs;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs;
    this.closeTimeoutMs = options.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs;
    this.random = options.random ?? Math.random;
  }

  /** Where the client is. */
  get state(): ConnectionState {
    return this.currentState;
  }

  /** The room URL of the current session (`null` before `connect`). */
  get url(): string | null {
    return this.roomUrl;
  }

  /** The most recent `Welcome` (`null` before the first). */
  get welcome(): WelcomeMessage | null {
    return this.latestWelcome;
  }

  /** This client's player id (`null` before the first `Welcome`). */
  get playerId(): number | null {
    return this.latestWelcome?.playerId ?? null;
  }

  /** The latest resume token (`null` before the first `Welcome`). */
  get resumeToken(): Uint8Array | null {
    return this.latestWelcome?.resumeToken ?? null;
  }

  /** `seq` of the last input sent (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  /** Round-trip time of the latest `Ping`/`Pong`, in ms (`null` before the first). */
  get rttMs(): number | null {
    return this.latestRttMs;
  }

  /**
   * Opens `url` (`ws://host:port/game/{game}/{room}`), joins, and resolves with
   * the `Welcome`. Rejects (and the client is `closed`) if this first
   * connection fails before its `Welcome`: wrong URL, HTTP refusal (404 unknown
   * game, 400 bad room name — a browser only sees close code 1006), timeout.
   * Automatic reconnection applies only after a successful join.
   *
   * A client that is `closed` may connect again; that starts a new session
   * (empty mirror, new player).
   */
  connect(url: string): Promise<WelcomeMessage> {
    if (this.currentState !== 'idle' && this.currentState !== 'closed') {
      return Promise.reject(new RoomClientError(`connect() while ${this.currentState}`));
    }
    this.roomUrl = url;
    this.deliberate = false;
    this.joinedOnce = false;
    this.attempt = 0;
    this.latestWelcome = null;
    this.latestRttMs = null;
    this.mirror.clear();
    this.setState('connecting');
    return new Promise((resolve, reject) => {
      this.openSocket((error, welcome) => {
        if (error !== null) reject(error);
        else if (welcome !== null) resolve(welcome);
      });
    });
  }

  /**
   * Sends one input (the game's payload, e.g. `encodeArenaInput(...)`) with the
   * next `seq`, and returns that `seq`. Returns `null` and sends nothing when
   * not joined (connecting or reconnecting): inputs are not queued, since a
   * stale direction is worse than none.
   */
  sendInput(payload: Uint8Array): number | null {
    if (!this.isJoined()) return null;
    if (this.seq >= MAX_SEQ) throw new RoomClientError('input seq exhausted (u32)');
    this.seq += 1;
    this.send({ type: 'Input', seq: this.seq, payload });
    return this.seq;
  }

  /** Sends a `Ping` now (pings are also sent every `pingIntervalMs`). False when not joined. */
  ping(): boolean {
    if (!this.isJoined()) return false;
    this.send({ type: 'Ping', clientTimeUs: BigInt(Math.round(nowMs() * 1000)) });
    return true;
  }

  /** Asks for a fresh snapshot. False when not joined. */
  resync(): boolean {
    const conn = this.conn;
    if (conn === null || !this.isJoined()) return false;
    this.send({ type: 'Resync' });
    conn.resync = 'requested';
    return true;
  }

  /**
   * Leaves the room for good: sends `Leave` (the server removes the player at
   * once and closes with 1000), waits up to `closeTimeoutMs` for that close,
   * then closes the socket itself if needed. No reconnect follows. Resolves
   * when the client is `closed`.
   */
  async close(): Promise<void> {
    this.deliberate = true;
    if (this.reconnectTimer !== null) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    const conn = this.conn;
    if (conn === null) {
      if (this.currentState !== 'closed' && this.currentState !== 'idle') this.finish();
      return;
    }
    this.setState('closing');
    const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    if (conn.ws.readyState === WS_OPEN) {
      try {
        conn.ws.send(encodeClientMessage({ type: 'Leave' }));
      } catch {
        // The socket is going away anyway; closing below covers it.
      }
      if (await this.within(closed, this.closeTimeoutMs)) return;
    }
    if (this.conn === conn) this.safeClose(conn.ws, CloseCode.NORMAL, 'client closed');
    if (await this.within(closed, this.closeTimeoutMs)) return;
    // No close event came: the socket is dead; finish without it.
    if (this.conn === conn) this.connectionEnded(conn, CloseCode.ABNORMAL, 'close timed out');
    await closed;
  }

  // -------------------------------------------------------------------------
  // internals

  private setState(state: ConnectionState): void {
    this.currentState = state;
  }

  private isJoined(): boolean {
    const conn = this.conn;
    return conn !== null && conn.welcomed && conn.ws.readyState === WS_OPEN && this.currentState === 'open';
  }

  private send(message: ClientMessage): void {
    this.conn?.ws.send(encodeClientMessage(message));
  }

  /** Resolves true if `p` settles within `ms`, false otherwise. */
  private within(p: Promise<void>, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      void p.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private safeClose(ws: WebSocketLike, code: number, reason: string): void {
    try {
      ws.close(code, reason);
    } catch {
      // Already closing or closed.
    }
  }

  /** Opens a socket to the room URL; `settle` (first connection only) learns the outcome. */
  private openSocket(settle: Connection['settle']): void {
    const url = this.roomUrl as string;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(url);
    } catch (err) {
      // A malformed URL throws synchronously: nothing to retry.
      const error = err instanceof Error ? err : new RoomClientError(String(err));
      this.conn = null;
      if (settle !== null) settle(error, null);
      this.finish();
      return;
    }
    ws.binaryType = 'arraybuffer';
    const conn: Connection = {
      ws,
      welcomed: false,
      resync: 'in-step',
      fatal: false,
      lastHeardMs: nowMs(),
      handshakeTimer: null,
      heartbeatTimer: null,
      settle,
    };
    this.conn = conn;
    conn.handshakeTimer = setTimeout(() => {
      if (this.conn !== conn || conn.welcomed) return;
      this.safeClose(ws, CloseCode.NORMAL, 'handshake timeout');
      this.connectionEnded(conn, CloseCode.ABNORMAL, 'handshake timeout');
    }, this.handshakeTimeoutMs);

    ws.onopen = () => {
      if (this.conn !== conn) return;
      const token = this.latestWelcome?.resumeToken;
      const resume =
        this.joinedOnce && token !== undefined ? { token, lastTick: this.mirror.tick ?? 0n } : null;
      ws.send(encodeClientMessage({ type: 'Join', protocol: PROTOCOL_VERSION, resume }));
    };
    ws.onmessage = (event: MessageEventLike) => {
      if (this.conn !== conn) return;
      this.onFrame(conn, event.data);
    };
    ws.onclose = (event: CloseEventLike) => {
      if (this.conn !== conn) return;
      this.connectionEnded(conn, event.code, event.reason);
    };
    // A close event always follows an error event; the close handler does the work.
    // (Keep a handler installed: `ws` throws on an error event nobody listens to.)
    ws.onerror = () => {};
  }

  private onFrame(conn: Connection, data: unknown): void {
    conn.lastHeardMs = nowMs();
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) {
      bytes = new Uint8Array(data);
    } else if (ArrayBuffer.isView(data)) {
      bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    } else {
      this.emit('error', new RoomClientError('ignored a non-binary frame from the server'));
      return;
    }
    let message;
    try {
      message = decodeServerMessage(bytes);
    } catch (err) {
      // An undecodable frame is reported and skipped; if it was a delta, the
      // next one will not fit and the mirror resyncs.
      this.emit('error', err instanceof DecodeError ? err : new RoomClientError(String(err)));
      return;
    }
    switch (message.type) {
      case 'Welcome':
        this.onWelcome(conn, message);
        return;
      case 'Snapshot':
        this.onSnapshot(conn, message);
        return;
      case 'Delta':
        this.onDelta(conn, message);
        return;
      case 'Pong':
        this.onPong(message);
        return;
      case 'Error':
        if (message.code === ErrorCode.UNSUPPORTED_PROTOCOL) conn.fatal = true;
        this.emit('error', new ServerError(message));
        return;
    }
  }

  private onWelcome(conn: Connection, welcome: WelcomeMessage): void {
    if (conn.welcomed) {
      this.emit('error', new RoomClientError(`unexpected second Welcome (player ${welcome.playerId})`));
      return;
    }
    if (welcome.protocol !== PROTOCOL_VERSION) {
      conn.fatal = true;
      this.safeClose(conn.ws, CloseCode.NORMAL, 'unsupported protocol');
      this.connectionEnded(conn, CloseCode.PROTOCOL_ERROR, `server speaks protocol ${welcome.protocol}`);
      return;
    }
    conn.welcomed = true;
    if (conn.handshakeTimer !== null) clearTimeout(conn.handshakeTimer);
    conn.handshakeTimer = null;
    this.latestWelcome = welcome;
    this.joinedOnce = true;
    this.attempt = 0;
    this.setState('open');
    this.startHeartbeat(conn);
    this.emit('welcome', welcome);
    const settle = conn.settle;
    conn.settle = null;
    if (settle !== null) settle(null, welcome);
    this.ping();
  }

  private onSnapshot(conn: Connection, snapshot: SnapshotMessage): void {
    const change = this.mirror.applySnapshot(snapshot);
    conn.resync = 'in-step';
    this.emitChange(change, 'snapshot');
  }

  private onDelta(conn: Connection, delta: DeltaMessage): void {
    const result = this.mirror.applyDelta(delta);
    if (result.ok) {
      this.emitChange(result.change, 'delta');
      return;
    }
    if (conn.resync === 'in-step') {
      conn.resync = 'requested';
      if (conn.ws.readyState === WS_OPEN) conn.ws.send(encodeClientMessage({ type: 'Resync' }));
      this.emit('gap', result.gap);
    }
  }

  private emitChange(change: MirrorChange, source: 'snapshot' | 'delta'): void {
    for (const id of change.removed) this.emit('leave', { id });
    for (const id of change.added) {
      const data = this.mirror.get(id);
      if (data !== undefined) this.emit('join', { id, data });
    }
    this.emit('state', { ...change, source });
  }

  private onPong(pong: PongMessage): void {
    const rttUs = BigInt(Math.round(nowMs() * 1000)) - pong.clientTimeUs;
    if (rttUs < 0n) return; // not one of our clock values
    this.latestRttMs = Number(rttUs) / 1000;
    this.emit('pong', { rttMs: this.latestRttMs, serverTick: pong.serverTick });
  }

  /** Pings every `pingIntervalMs` and drops a connection silent for `idleTimeoutMs`. */
  private startHeartbeat(conn: Connection): void {
    const every = this.pingIntervalMs > 0 ? this.pingIntervalMs : 1000;
    if (this.pingIntervalMs <= 0 && this.idleTimeoutMs <= 0) return;
    conn.heartbeatTimer = setInterval(() => {
      if (this.conn !== conn) return;
      if (this.idleTimeoutMs > 0 && nowMs() - conn.lastHeardMs > this.idleTimeoutMs) {
        this.safeClose(conn.ws, CloseCode.NORMAL, 'server silent');
        this.connectionEnded(conn, CloseCode.ABNORMAL, `nothing received for ${this.idleTimeoutMs} ms`);
        return;
      }
      if (this.pingIntervalMs > 0) this.ping();
    }, every);
  }

  /** The current socket is gone (closed, broken, or abandoned): reconnect or finish. */
  private connectionEnded(conn: Connection, code: number, reason: string): void {
    if (this.conn !== conn) return;
    this.conn = null;
    if (conn.handshakeTimer !== null) clearTimeout(conn.handshakeTimer);
    if (conn.heartbeatTimer !== null) clearInterval(conn.heartbeatTimer);
    const willReconnect =
      !this.deliberate &&
      this.reconnectEnabled &&
      this.joinedOnce &&
      !conn.fatal &&
      this.attempt < this.maxAttempts &&
      this.retryPolicy(code, reason);
    this.emit('close', { code, reason, willReconnect });
    const settle = conn.settle;
    conn.settle = null;
    if (settle !== null) {
      const why = this.deliberate ? 'closed by the client' : `connection closed (${code} ${reason})`;
      settle(new RoomClientError(`could not join: ${why}`, code, reason), null);
    }
    if (willReconnect) this.scheduleReconnect();
    else this.finish();
  }

  private scheduleReconnect(): void {
    this.attempt += 1;
    const ceiling = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (this.attempt - 1));
    const delayMs = Math.floor(this.random() * ceiling);
    this.setState('reconnecting');
    this.emit('reconnecting', { attempt: this.attempt, delayMs });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.deliberate) return;
      this.openSocket(null);
    }, delayMs);
  }

  private finish(): void {
    this.setState('closed');
    const waiters = this.closedWaiters;
    this.closedWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
