// Test helpers: repository paths, bounded waits, and a real roomcast server
// process on 127.0.0.1 (port 0), started and stopped by the test that uses it.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Repository root (this file runs from clients/ts/dist-test/test/). */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** The golden vectors of the Rust protocol crate. */
export const VECTORS_PATH = process.env.ROOMCAST_VECTORS ?? `${REPO_ROOT}shared/golden/vectors.json`;

/** The server binary: $ROOMCAST_BIN, else the workspace's debug build. */
export const SERVER_BIN = process.env.ROOMCAST_BIN ?? `${REPO_ROOT}target/debug/roomcast`;

/**
 * The Rust game-room participant: $ROOMCAST_GAME_BIN, else the workspace's debug
 * build of `roomcast-game` (see the live test for the contract it must meet).
 */
export const GAME_BIN = process.env.ROOMCAST_GAME_BIN ?? `${REPO_ROOT}target/debug/roomcast-game`;

/** Pacing only, never to wait for a condition. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `cond` until it returns a truthy value (returned); throws after `timeoutMs`. */
export async function waitFor<T>(
  cond: () => T | Promise<T>,
  what: string,
  { timeoutMs = 10000, intervalMs = 20, details }: { timeoutMs?: number; intervalMs?: number; details?: () => string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await cond();
      if (value) return value as NonNullable<T>;
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      let msg = `timed out after ${timeoutMs} ms waiting for ${what}`;
      if (lastError !== undefined) msg += `\nlast error: ${lastError instanceof Error ? lastError.stack : String(lastError)}`;
      if (details) msg += `\n${details()}`;
      throw new Error(msg);
    }
    await sleep(intervalMs);
  }
}

/** Resolves with the first event `subscribe` delivers that passes `match`, or rejects after `timeoutMs`. */
export function nextEvent<T>(
  subscribe: (listener: (event: T) => void) => () => void,
  what: string,
  { timeoutMs = 10000, match = () => true }: { timeoutMs?: number; match?: (event: T) => boolean } = {},
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const unsubscribe = subscribe((event) => {
      if (!match(event)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(event);
    });
  });
}

/** A running server. */
export interface Server {
  readonly child: ChildProcess;
  /** `ws://127.0.0.1:PORT`. */
  readonly wsUrl: string;
  /** `http://127.0.0.1:PORT`. */
  readonly httpUrl: string;
  /** Admin API bearer token. */
  readonly adminToken: string;
  /** Recent log lines, for failure messages. */
  tail(n?: number): string;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Log lines kept per server. */
const MAX_LOG_LINES = 2000;

/**
 * Starts `roomcast --bind 127.0.0.1:0 --log-format json --persistence off
 * --http-workers 1 --admin-token …` plus `args`, and resolves once its log
 * reports `roomcast listening` with the bound address.
 */
export async function startServer(args: string[] = [], startTimeoutMs = 15000): Promise<Server> {
  if (!existsSync(SERVER_BIN)) {
    throw new Error(
      `server binary not found at ${SERVER_BIN}: build it with \`cargo build --bin roomcast\` ` +
        'in the repository root, or set ROOMCAST_BIN',
    );
  }
  const adminToken = `ts-test-${process.pid}`;
  const child = spawn(
    SERVER_BIN,
    ['--bind', '127.0.0.1:0', '--log-format', 'json', '--persistence', 'off', '--http-workers', '1', '--admin-token', adminToken, ...args],
    { env: { ...process.env, RUST_LOG: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logs: string[] = [];
  const keep = (line: string): void => {
    logs.push(line);
    if (logs.length > MAX_LOG_LINES) logs.splice(0, logs.length - MAX_LOG_LINES);
  };
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  // Should this test process end abruptly, do not leave our server behind.
  const reap = (): void => {
    if (!exited) child.kill('SIGKILL');
  };
  process.once('exit', reap);
  void exitedPromise.then(() => process.off('exit', reap));

  const addr = await new Promise<string>((resolve, reject) => {
    let done = false;
    const finish = (err: Error | null, value?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err !== null) {
        err.message += `\nserver output:\n${logs.join('\n')}`;
        if (!exited) child.kill('SIGKILL');
        reject(err);
      } else {
        resolve(value as string);
      }
    };
    const timer = setTimeout(() => finish(new Error(`roomcast did not report listening within ${startTimeoutMs} ms`)), startTimeoutMs);
    child.once('error', (e) => finish(e));
    void exitedPromise.then(() => finish(new Error('roomcast exited before listening')));
    createInterface({ input: child.stderr! }).on('line', (line) => keep(`[stderr] ${line}`));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      keep(line);
      let rec: { fields?: { message?: unknown; addr?: unknown } };
      try {
        rec = JSON.parse(line) as typeof rec;
      } catch {
        return;
      }
      if (rec.fields?.message === 'roomcast listening' && typeof rec.fields.addr === 'string') {
        finish(null, rec.fields.addr);
      }
    });
  });
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  return {
    child,
    wsUrl: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    adminToken,
    tail: (n = 60) => logs.slice(-n).join('\n'),
    async stop(graceMs = 5000) {
      if (exited) return;
      child.kill('SIGTERM');
      let timer: ReturnType<typeof setTimeout> | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          if (!exited) child.kill('SIGKILL');
          resolve();
        }, graceMs);
      });
      await Promise.race([exitedPromise, killed]);
      clearTimeout(timer);
      await exitedPromise;
    },
  };
}

/** One arena player as the admin API shows it (serde JSON of `ArenaPlayer`). */
export interface AdminArenaPlayer {
  x: number;
  y: number;
  vx: number;
  vy: number;
  last_input: number;
}

/** `GET /api/v1/rooms/game/arena:ROOM`: the room's tick and state. */
export async function adminArenaRoom(
  server: Server,
  room: string,
): Promise<{ tick: number; players: Record<string, AdminArenaPlayer> }> {
  const res = await fetch(`${server.httpUrl}/api/v1/rooms/game/arena:${room}`, {
    headers: { Authorization: `Bearer ${server.adminToken}` },
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`admin API: HTTP ${res.status}: ${await res.text()}`);
  const body = (await res.json()) as { tick: number; state: { players: Record<string, AdminArenaPlayer> } };
  return { tick: body.tick, players: body.state.players };
}
