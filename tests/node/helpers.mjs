// Shared helpers of the Node interop tests: a real roomcast server process per
// test file, stock Yjs clients (yjs + y-websocket's WebsocketProvider over `ws`),
// the Rust participant (roomcast-doc), polling waits and a seeded PRNG.
//
// Everything talks to 127.0.0.1 only. Every wait is bounded.

import { spawn, execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

export { Y, WebsocketProvider, WebSocket }

/** The server binary: $ROOMCAST_BIN, else the workspace's debug build. */
export const SERVER_BIN =
  process.env.ROOMCAST_BIN || fileURLToPath(new URL('../../target/debug/roomcast', import.meta.url))
/** The Rust participant: $ROOMCAST_DOC_BIN, else the workspace's debug build. */
export const DOC_BIN =
  process.env.ROOMCAST_DOC_BIN || fileURLToPath(new URL('../../target/debug/roomcast-doc', import.meta.url))

/** Server log lines kept per process (the most recent), for failure reports. */
const MAX_LOG_LINES = 5000

/** Pacing only (letting messages interleave); never used to wait for a condition. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Polls `cond` (sync or async) until it returns a truthy value, which is returned.
 * Throws after `timeout` ms, naming `what` and, if given, `details()`.
 */
export async function waitFor (cond, { timeout = 10000, interval = 20, what = 'condition', details } = {}) {
  const deadline = Date.now() + timeout
  let lastError
  for (;;) {
    try {
      const value = await cond()
      if (value) return value
      lastError = undefined
    } catch (e) {
      lastError = e
    }
    if (Date.now() >= deadline) {
      let msg = `timed out after ${timeout} ms waiting for ${what}`
      if (lastError) msg += `\nlast error: ${lastError.stack || lastError}`
      if (details) {
        try { msg += `\n${details()}` } catch (e) { msg += `\n(details failed: ${e})` }
      }
      throw new Error(msg)
    }
    await sleep(interval)
  }
}

/** mulberry32: a small seeded PRNG returning floats in [0, 1). */
export function mulberry32 (seed) {
  let a = seed >>> 0
  return function () {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A unique document name per call (names allow [A-Za-z0-9_.-]). */
let docCounter = 0
export function docName (prefix) {
  docCounter += 1
  return `${prefix}-${process.pid}-${docCounter}`
}

/**
 * Starts a roomcast server: `--bind <bind> --log-format json --http-workers 1`
 * plus `args`, RUST_LOG=info. Resolves once its log says `roomcast listening`.
 * Its stdout/stderr are drained continuously (kept in `logs`).
 */
export async function startServer ({ args = [], bind = '127.0.0.1:0', startTimeout = 10000, dataDir } = {}) {
  // Each server persists into its own SQLite database unless told to reuse one
  // (a restart that must find its data passes the previous server's dataDir).
  const ownsDataDir = !dataDir
  dataDir ??= mkdtempSync(join(tmpdir(), 'roomcast-node-'))
  const child = spawn(
    SERVER_BIN,
    ['--bind', bind, '--log-format', 'json', '--http-workers', '1', '--data-dir', dataDir, ...args],
    { env: { ...process.env, RUST_LOG: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] }
  )
  const logs = []
  const keep = (line) => {
    logs.push(line)
    if (logs.length > MAX_LOG_LINES) logs.splice(0, logs.length - MAX_LOG_LINES)
  }
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  let exitStatus = null
  // Should this test process end abruptly, do not leave our server behind.
  const reap = () => { if (exitStatus === null) child.kill('SIGKILL') }
  process.once('exit', reap)
  exited.then((s) => {
    exitStatus = s
    process.off('exit', reap)
    if (ownsDataDir && !keepData) rmSync(dataDir, { recursive: true, force: true })
  })
  let keepData = false

  const addr = await new Promise((resolve, reject) => {
    let done = false
    const timer = setTimeout(() => finish(new Error(`roomcast did not report listening within ${startTimeout} ms`)), startTimeout)
    function finish (err, value) {
      if (done) return
      done = true
      clearTimeout(timer)
      if (err) {
        err.message += `\nserver output:\n${logs.join('\n')}`
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        reject(err)
      } else {
        resolve(value)
      }
    }
    child.once('error', (e) => finish(e))
    exited.then(({ code, signal }) => finish(new Error(`roomcast exited before listening (code ${code}, signal ${signal})`)))
    createInterface({ input: child.stderr }).on('line', (line) => keep(`[stderr] ${line}`))
    createInterface({ input: child.stdout }).on('line', (line) => {
      keep(line)
      let rec
      try { rec = JSON.parse(line) } catch { return }
      if (rec?.fields?.message === 'roomcast listening' && typeof rec.fields.addr === 'string') {
        finish(null, rec.fields.addr)
      }
    })
  })
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1))

  return {
    child,
    pid: child.pid,
    addr,
    port,
    /** Its SQLite data directory (removed when it exits, unless keepData() was called). */
    dataDir,
    /** Keep the data directory after exit (for a restart on the same data). */
    keepData () { keepData = true },
    /** Base URL for WebsocketProvider (`${url}/doc`) and roomcast-doc (`--url`). */
    url: `ws://127.0.0.1:${port}`,
    docUrl: `ws://127.0.0.1:${port}/doc`,
    logs,
    exited,
    get exitStatus () { return exitStatus },
    /** Recent log lines, for failure messages. */
    tail (n = 60) { return logs.slice(-n).join('\n') },
    /** Log records (parsed JSON) whose fields.message matches. */
    records (message) {
      const out = []
      for (const line of logs) {
        try {
          const rec = JSON.parse(line)
          if (rec?.fields?.message === message) out.push(rec)
        } catch {}
      }
      return out
    },
    /** SIGTERM, then SIGKILL if it has not exited after `graceMs`; resolves with its exit. */
    async stop (graceMs = 5000) {
      if (exitStatus) return exitStatus
      child.kill('SIGTERM')
      let timer
      const killed = new Promise((resolve) => {
        timer = setTimeout(() => {
          if (!exitStatus) child.kill('SIGKILL')
          resolve()
        }, graceMs)
      })
      await Promise.race([exited, killed])
      clearTimeout(timer)
      return exited
    },
    /** SIGKILL (a crash, as far as clients can tell); resolves with its exit. */
    async kill () {
      if (exitStatus) return exitStatus
      child.kill('SIGKILL')
      return exited
    }
  }
}

/**
 * A stock Yjs client: a Y.Doc with a Y.Text 't', a Y.Map 'm' and a Y.Array 'a',
 * synced by a WebsocketProvider over `ws`. The BroadcastChannel shortcut is
 * disabled so that clients in this process can only meet through the server.
 */
export function makeClient (baseUrl, room, providerOptions = {}) {
  const doc = new Y.Doc()
  const t = doc.getText('t')
  const m = doc.getMap('m')
  const a = doc.getArray('a')
  const closes = []
  const provider = new WebsocketProvider(baseUrl, room, doc, {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
    ...providerOptions
  })
  provider.on('connection-close', (event) => {
    if (event) closes.push({ code: event.code, reason: String(event.reason ?? '') })
  })
  let destroyed = false
  return {
    doc,
    provider,
    awareness: provider.awareness,
    t,
    m,
    a,
    /** Close events this provider saw (code, reason). */
    closes,
    /** The content as plain JSON: {t, m, a}. */
    json () {
      return { t: t.toString(), m: m.toJSON(), a: a.toJSON() }
    },
    destroy () {
      if (destroyed) return
      destroyed = true
      provider.destroy()
      doc.destroy() // also destroys the awareness (and its interval)
    }
  }
}

/** JSON with object keys sorted (a Y.Map's key order depends on local history). */
export function canonical (value) {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
      : v)
}

/** Same content and same state vector (nothing more in flight between them). */
export function converged (clients) {
  const [first, ...rest] = clients
  const sv = Buffer.from(Y.encodeStateVector(first.doc)).toString('base64')
  const json = canonical(first.json())
  return rest.every((c) =>
    Buffer.from(Y.encodeStateVector(c.doc)).toString('base64') === sv &&
    canonical(c.json()) === json
  )
}

/** A short description of clients' states, for failure messages. */
export function describeClients (clients) {
  return clients.map((c, i) => {
    const j = c.json()
    return `client ${i}: synced=${c.provider.synced} connected=${c.provider.wsconnected} ` +
      `t.length=${j.t.length} m.keys=${Object.keys(j.m).length} a.length=${j.a.length} ` +
      `sv=${JSON.stringify([...Y.decodeStateVector(Y.encodeStateVector(c.doc))])}`
  }).join('\n')
}

/**
 * Runs the Rust participant against `url` (the server base URL) and returns the
 * JSON it prints: {t, m, a} for the root types 't', 'm' and 'a'.
 */
export function runRustDoc (url, doc, { waitText, timeout = 10 } = {}) {
  const args = ['--url', url, '--doc', doc, '--text', 't', '--map', 'm', '--array', 'a', '--timeout', String(timeout)]
  if (waitText !== undefined) args.push('--wait-text', waitText)
  return new Promise((resolve, reject) => {
    execFile(DOC_BIN, args, { timeout: (timeout + 10) * 1000, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) {
        err.message += `\nroomcast-doc ${args.join(' ')}\nstderr: ${stderr}`
        reject(err)
        return
      }
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()))
      } catch (e) {
        reject(new Error(`roomcast-doc printed no JSON: ${stdout}\nstderr: ${stderr}`))
      }
    })
  })
}

/**
 * Opens a raw `ws` WebSocket; resolves once open. Binary messages received from
 * the start are collected in `ws.received`.
 */
export function openRawWs (url, { timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.received = []
    ws.on('message', (data) => ws.received.push(new Uint8Array(data)))
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`${url}: not open after ${timeout} ms`)) }, timeout)
    ws.once('open', () => { clearTimeout(timer); resolve(ws) })
    ws.once('error', (e) => { clearTimeout(timer); reject(e) })
  })
}

/** Resolves with {code, reason} when `ws` closes (bounded). */
export function closeOf (ws, { timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    if (ws.readyState === WebSocket.CLOSED) {
      reject(new Error('socket already closed before we listened'))
      return
    }
    const timer = setTimeout(() => reject(new Error(`socket not closed after ${timeout} ms`)), timeout)
    ws.once('close', (code, reason) => { clearTimeout(timer); resolve({ code, reason: reason.toString() }) })
  })
}

/** lib0 varuint encoding. */
export function varUint (n) {
  const out = []
  while (n > 0x7f) {
    out.push(0x80 | (n & 0x7f))
    n = Math.floor(n / 128)
  }
  out.push(n)
  return out
}

/** A deterministic pseudo-random ASCII string of `len` characters. */
export function randomAscii (rng, len) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n'
  let s = ''
  for (let i = 0; i < len; i++) s += alphabet[Math.floor(rng() * alphabet.length)]
  return s
}

/**
 * Attempts a WebSocket upgrade that is expected to be refused; resolves with the
 * HTTP status and body of the refusal (rejects if the upgrade succeeds).
 */
export function refusedUpgrade (url, { timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    let settled = false
    const settle = (fn, value) => { if (!settled) { settled = true; clearTimeout(timer); fn(value) } }
    const ws = new WebSocket(url)
    const timer = setTimeout(() => { ws.terminate(); settle(reject, new Error(`${url}: no response after ${timeout} ms`)) }, timeout)
    ws.on('unexpected-response', (req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { body += chunk })
      res.on('end', () => {
        req.destroy()
        settle(resolve, { status: res.statusCode, body })
      })
    })
    ws.on('open', () => { ws.terminate(); settle(reject, new Error(`${url}: the upgrade was accepted`)) })
    ws.on('error', (e) => settle(reject, e))
  })
}

/** GET `path` on the server's HTTP port (bounded); resolves with {status, text}. */
export async function httpGet (server, path, { headers = {}, timeout = 5000 } = {}) {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, {
    headers,
    signal: AbortSignal.timeout(timeout)
  })
  return { status: res.status, text: await res.text() }
}

/**
 * Reads `roomcast_refusals_total` from `GET /metrics` (no token: the metrics
 * endpoint is open). Resolves with {total, byReason: {reason: count}}; a counter
 * that was never incremented is simply absent (0).
 */
export async function readRefusals (server) {
  const { status, text } = await httpGet(server, '/metrics')
  if (status !== 200) throw new Error(`GET /metrics answered ${status}: ${text.slice(0, 200)}`)
  const byReason = {}
  let total = 0
  for (const line of text.split('\n')) {
    const m = /^roomcast_refusals_total(?:\{([^}]*)\})?\s+(\S+)/.exec(line)
    if (!m) continue
    const reason = /(?:^|,)\s*reason="((?:[^"\\]|\\.)*)"/.exec(m[1] ?? '')?.[1] ?? '(no reason label)'
    const n = Number(m[2])
    byReason[reason] = (byReason[reason] ?? 0) + n
    total += n
  }
  return { total, byReason }
}

/** What moved between two readRefusals() results: {total, byReason} of the increases. */
export function refusalsDelta (before, after) {
  const byReason = {}
  for (const [reason, n] of Object.entries(after.byReason)) {
    const d = n - (before.byReason[reason] ?? 0)
    if (d !== 0) byReason[reason] = d
  }
  return { total: after.total - before.total, byReason }
}

/** The PostgreSQL maintenance database tests create their databases through. */
export const POSTGRES_URL =
  process.env.ROOMCAST_TEST_POSTGRES_URL?.trim() || 'postgres://postgres@127.0.0.1:5432/postgres'

let pgDatabaseCounter = 0
/**
 * Creates a fresh, empty PostgreSQL database `roomcast_test_node_<pid>_<n>` through
 * POSTGRES_URL (the server migrates it on start). Resolves with {name, url, drop()};
 * drop() removes it again (`WITH (FORCE)`: connections still open are ended).
 */
export async function createPostgresDatabase () {
  const { default: pg } = await import('pg')
  pgDatabaseCounter += 1
  const name = `roomcast_test_node_${process.pid}_${pgDatabaseCounter}`
  const maintenance = async (sql) => {
    const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 10000 })
    try {
      await client.connect()
    } catch (e) {
      e.message = `cannot reach PostgreSQL at ${POSTGRES_URL.replace(/(:\/\/[^:@/]*):[^@/]*@/, '$1:***@')} ` +
        `(set ROOMCAST_TEST_POSTGRES_URL): ${e.message}`
      throw e
    }
    try {
      await client.query(sql)
    } finally {
      await client.end()
    }
  }
  // The name is our own prefix and digits: nothing to escape.
  await maintenance(`CREATE DATABASE "${name}"`)
  const url = new URL(POSTGRES_URL)
  url.pathname = `/${name}`
  let dropped = false
  return {
    name,
    url: url.toString(),
    async drop () {
      if (dropped) return
      dropped = true
      await maintenance(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    }
  }
}
