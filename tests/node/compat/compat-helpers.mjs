// Shared pieces of the Yjs compatibility suite (tests/node/compat):
//
// - compatClient(): a stock WebsocketProvider client whose every `connection-close`
//   is recorded and classified (caused by the test or not), and whose every local
//   update is also applied to a local reference Y.Doc;
// - readRoots()/viewOf(): a typed view of a document read through explicitly typed
//   getters (getMap, getArray, getText, getXmlFragment), never through doc.toJSON();
// - typedDiff()/show(): a deep comparison with exact type fidelity (-0, bigint,
//   Uint8Array, undefined), with object key order as a separate question;
// - settle()/joinLate()/waitOrThrow(): bounded waits that give up early once the
//   server has closed a connection the test did not close;
// - reportChecks()/compatCheck(): the checks every scenario ends with, as named
//   subtests: no unexpected close, replicas + late joiner equal the local Yjs merge,
//   key order kept, roomcast_refusals_total unchanged.

import assert from 'node:assert/strict'
import { Y, makeClient, sleep, docName, readRefusals, refusalsDelta } from '../helpers.mjs'

/**
 * Per-connection limits lifted for programmatic writers (bulk edits, trace
 * replay): a legitimate configuration for them. Human-speed checks keep the
 * defaults (200 messages/s, burst 400; 1 MiB/s).
 */
export const PROGRAMMATIC_LIMITS = ['--max-messages-per-sec', '1000000', '--max-bytes-per-sec', '1000000000']

/** Close codes a socket the test closed itself may report (normal, no status, abnormal). */
const TEST_CLOSE_CODES = new Set([1000, 1005, 1006])
const DROPPED_BY_TEST = Symbol('closed by the test')

/** Wall-clock ms since the module loaded, for close timestamps in messages. */
const T0 = Date.now()
const since = () => Date.now() - T0

/**
 * A stock Yjs client (y-websocket WebsocketProvider over `ws`, BroadcastChannel
 * off; reconnect backoff at most 500 ms). Every `connection-close` is recorded as {code, reason, intended}:
 * intended are only the closes the test causes through this object —
 * disconnect(), drop() (the socket closed by the client, then y-websocket
 * reconnects by itself) and destroy(). Every update made locally (origin other
 * than the provider) is also applied to `ref`, if given.
 */
export function compatClient (baseUrl, room, { label = 'client', ref = null, providerOptions = {} } = {}) {
  // helpers.makeClient: `ws` polyfill, BroadcastChannel off (roots t, m, a defined as
  // Text, Map, Array — the compat checks use those names for those types only).
  const base = makeClient(baseUrl, room, { maxBackoffTime: 500, ...providerOptions })
  const { doc, provider } = base
  const closes = []
  const errors = []
  let disconnecting = false
  let ended = false
  provider.on('connection-close', (event) => {
    // y-websocket emits this before it forgets the socket: provider.ws is the one closing.
    const ws = provider.ws
    if (event == null) {
      // y-websocket's own close: disconnect()/destroy(), or its 30 s silence timeout.
      const intended = disconnecting || ended
      closes.push({
        code: null,
        reason: intended ? 'provider.disconnect() by the test' : 'y-websocket closed a connection silent for 30 s',
        intended,
        at: since()
      })
    } else {
      const intended = ended || (ws?.[DROPPED_BY_TEST] === true && TEST_CLOSE_CODES.has(event.code))
      closes.push({ code: event.code, reason: String(event.reason ?? ''), intended, at: since() })
    }
  })
  provider.on('connection-error', (event) => {
    errors.push({ message: String(event?.message ?? event?.error?.message ?? event?.type ?? event), at: since() })
  })
  let localUpdates = 0
  doc.on('update', (update, origin) => {
    if (origin === provider) return
    localUpdates += 1
    if (ref) Y.applyUpdate(ref, update, label)
  })
  return {
    label,
    doc,
    provider,
    /** Every close seen: {code, reason, intended, at}. */
    closes,
    /** connection-error events (e.g. a refused upgrade). */
    errors,
    get localUpdates () { return localUpdates },
    /** Closes the test did not cause. */
    unexpectedCloses () { return closes.filter((c) => !c.intended) },
    /** Closes caused by the test (disconnect, drop, destroy). */
    intendedCloses () { return closes.filter((c) => c.intended) },
    /** provider.disconnect(): offline until connect(). */
    disconnect () {
      disconnecting = true
      try { provider.disconnect() } finally { disconnecting = false }
    },
    connect () { provider.connect() },
    /**
     * Closes the current socket from the client side (provider.ws.close()), as a
     * network drop would; y-websocket reconnects by itself. False if there is none.
     */
    drop () {
      const ws = provider.ws
      if (!ws) return false
      ws[DROPPED_BY_TEST] = true
      ws.close()
      return true
    },
    destroy () {
      if (ended) return
      ended = true
      base.destroy()
    }
  }
}

/**
 * The closes the test did not cause, one line per client, code and reason:
 * "client A: 17 × close code 1007 "reason" (first at 225 ms)".
 */
export function unexpectedCloseLines (clients) {
  const lines = []
  for (const c of clients) {
    const groups = new Map()
    for (const close of c.unexpectedCloses()) {
      const key = `close code ${close.code ?? '(none)'} reason ${JSON.stringify(close.reason)}`
      const g = groups.get(key)
      if (g) g.n += 1
      else groups.set(key, { n: 1, first: close.at })
    }
    for (const [key, g] of groups) lines.push(`${c.label}: ${g.n} × ${key} (first at ${g.first} ms)`)
  }
  return lines
}

/** Every close, intended or not, and connection errors, grouped the same way. */
export function allCloseLines (clients) {
  const lines = []
  for (const c of clients) {
    const groups = new Map()
    const add = (key, at) => {
      const g = groups.get(key)
      if (g) g.n += 1
      else groups.set(key, { n: 1, first: at })
    }
    for (const close of c.closes) {
      add(`${close.intended ? 'test-caused' : 'UNEXPECTED'} close code ${close.code ?? '(none)'} reason ${JSON.stringify(close.reason)}`, close.at)
    }
    for (const e of c.errors) add(`connection-error ${e.message}`, e.at)
    for (const [key, g] of groups) lines.push(`${c.label}: ${g.n} × ${key} (first at ${g.first} ms)`)
  }
  return lines
}

const unexpectedCount = (clients) => clients.reduce((n, c) => n + c.unexpectedCloses().length, 0)

/** How long waits go on once an unexpected close was seen (for later ones to arrive too). */
const CLOSE_GRACE_MS = 1000

/**
 * Polls `cond` until true (resolves {ok: true}), until `timeout` (resolves
 * {ok: false, why}), or until CLOSE_GRACE_MS after a close of any of `clients`
 * that the test did not cause, seen during this wait (resolves {ok: false, why}).
 * Never throws for a timeout.
 */
export async function waitUntil (clients, cond, { timeout = 10000, interval = 20, what = 'condition' } = {}) {
  const start = Date.now()
  const closesBefore = unexpectedCount(clients)
  let closeSeenAt = null
  let lastError
  for (;;) {
    try {
      if (await cond()) return { ok: true }
      lastError = undefined
    } catch (e) {
      lastError = e
    }
    const now = Date.now()
    if (closeSeenAt === null && unexpectedCount(clients) > closesBefore) closeSeenAt = now
    const gaveUp = closeSeenAt !== null && now - closeSeenAt >= CLOSE_GRACE_MS
    if (gaveUp || now - start >= timeout) {
      let why = gaveUp
        ? `gave up waiting for ${what}: the server closed a connection (${unexpectedCloseLines(clients).join('; ')})`
        : `timed out after ${timeout} ms waiting for ${what}`
      if (lastError) why += `\nlast error: ${lastError.stack || lastError}`
      return { ok: false, why }
    }
    await sleep(interval)
  }
}

/** waitUntil() that throws its `why` (with every close seen) on failure. */
export async function waitOrThrow (clients, cond, opts = {}) {
  const r = await waitUntil(clients, cond, opts)
  if (!r.ok) {
    const details = opts.details ? `\n${opts.details()}` : ''
    throw new Error(`${r.why}\ncloses:\n${allCloseLines(clients).join('\n') || '(none)'}${details}`)
  }
}

const svOf = (doc) => Buffer.from(Y.encodeStateVector(doc))
const hasPending = (doc) => doc.store.pendingStructs !== null || doc.store.pendingDs !== null

/** Decoded state vector, for messages. */
export function describeSv (doc) {
  return JSON.stringify(Object.fromEntries(Y.decodeStateVector(Y.encodeStateVector(doc))))
}

/**
 * Waits until every client is connected and synced and holds exactly the state
 * of `ref` (same state vector, nothing pending). Resolves {ok, why}.
 */
export async function settle (clients, ref, { timeout = 10000 } = {}) {
  const r = await waitUntil(clients, () => {
    const want = svOf(ref)
    return clients.every((c) =>
      c.provider.wsconnected && c.provider.synced && !hasPending(c.doc) && svOf(c.doc).equals(want))
  }, { timeout, what: 'every client to be synced and hold the whole reference state' })
  if (!r.ok) {
    r.why += `\nreference state vector ${describeSv(ref)}\n` + clients.map((c) =>
      `${c.label}: connected=${c.provider.wsconnected} synced=${c.provider.synced} pending=${hasPending(c.doc)} sv=${describeSv(c.doc)}`
    ).join('\n')
  }
  return r
}

/**
 * A late joiner: a fresh client that connects after the edits. Waits until it is
 * synced (the server's sync step 2 holds everything the server has) and, briefly,
 * until it holds the state of `ref`. Resolves {client, problems}.
 */
export async function joinLate (baseUrl, room, ref, { label = 'late joiner', others = [], timeout = 10000, providerOptions } = {}) {
  const client = compatClient(baseUrl, room, { label, providerOptions })
  const problems = []
  const all = [...others, client]
  const synced = await waitUntil(all, () => client.provider.synced, { timeout, what: 'the late joiner to sync' })
  if (!synced.ok) {
    problems.push(synced.why)
  } else {
    const want = svOf(ref)
    const full = await waitUntil(all, () => !hasPending(client.doc) && svOf(client.doc).equals(want), {
      timeout: 2000, what: 'the late joiner to hold the whole reference state'
    })
    if (!full.ok) {
      problems.push(`${full.why}\nreference state vector ${describeSv(ref)}\nlate joiner: sv=${describeSv(client.doc)} pending=${hasPending(client.doc)}`)
    }
  }
  return { client, problems }
}

// ---------------------------------------------------------------------------
// Typed views

/** A shared type as read through its own API (kind + fields). */
export class YView {
  constructor (kind, fields) {
    this.kind = kind
    Object.assign(this, fields)
  }
}

const byKey = (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
/** Keyed entries of a Y.Map-like container, sorted (a Y.Map's own order depends on local history). */
const sortedEntries = (obj) => Object.entries(obj).map(([k, v]) => [k, viewOf(v)]).sort(byKey)

function viewDelta (delta) {
  return delta.map((op) => {
    const out = { insert: typeof op.insert === 'string' ? op.insert : viewOf(op.insert) }
    if (op.attributes) out.attributes = new YView('format attributes', { entries: sortedEntries(op.attributes) })
    return out
  })
}

/** The typed view of a value read out of a Y.Doc; plain values are returned as they are. */
export function viewOf (value) {
  if (value instanceof Y.XmlText) {
    return new YView('Y.XmlText', { attrs: sortedEntries(value.getAttributes()), delta: viewDelta(value.toDelta()) })
  }
  if (value instanceof Y.Text) return new YView('Y.Text', { delta: viewDelta(value.toDelta()) })
  if (value instanceof Y.XmlElement) {
    return new YView('Y.XmlElement', {
      nodeName: value.nodeName,
      attrs: sortedEntries(value.getAttributes()),
      children: value.toArray().map(viewOf)
    })
  }
  if (value instanceof Y.XmlFragment) return new YView('Y.XmlFragment', { children: value.toArray().map(viewOf) })
  if (value instanceof Y.XmlHook) return new YView('Y.XmlHook', { hookName: value.hookName, entries: [...value.entries()].map(([k, v]) => [k, viewOf(v)]).sort(byKey) })
  if (value instanceof Y.Map) return new YView('Y.Map', { entries: [...value.entries()].map(([k, v]) => [k, viewOf(v)]).sort(byKey) })
  if (value instanceof Y.Array) return new YView('Y.Array', { items: value.toArray().map(viewOf) })
  if (value instanceof Y.Doc) return new YView('Y.Doc', { guid: value.guid, meta: value.meta, autoLoad: value.autoLoad })
  if (value instanceof Y.AbstractType) return new YView(`unknown ${value.constructor.name}`, {})
  return value
}

/**
 * The roots of `doc`, each through its explicitly typed getter. `roots` maps a
 * root name to 'map' | 'array' | 'text' | 'xml'.
 */
export function readRoots (doc, roots) {
  const entries = Object.entries(roots).map(([name, kind]) => {
    let type
    switch (kind) {
      case 'map': type = doc.getMap(name); break
      case 'array': type = doc.getArray(name); break
      case 'text': type = doc.getText(name); break
      case 'xml': type = doc.getXmlFragment(name); break
      default: throw new Error(`unknown root kind ${kind} for ${name}`)
    }
    return [name, viewOf(type)]
  })
  return new YView('Y.Doc roots', { entries })
}

// ---------------------------------------------------------------------------
// Typed comparison

function typeName (v) {
  if (v === null) return 'null'
  if (v instanceof Uint8Array) return 'Uint8Array'
  if (Array.isArray(v)) return 'array'
  if (v instanceof YView) return v.kind
  const t = typeof v
  if (t === 'object') {
    const proto = Object.getPrototypeOf(v)
    return proto === Object.prototype || proto === null ? 'object' : `object ${v.constructor?.name}`
  }
  return t
}

const SHOW_MAX = 160

/** s.slice(from, to) without cutting a surrogate pair at either end (for messages). */
function cut (s, from, to) {
  const isLow = (i) => { const c = s.charCodeAt(i); return c >= 0xDC00 && c <= 0xDFFF }
  if (from > 0 && isLow(from)) from -= 1
  if (to < s.length && isLow(to)) to += 1
  return s.slice(from, to)
}

/** A compact, type-faithful rendering: -0, 5n, Uint8Array[…], "…"(len). */
export function show (v, max = SHOW_MAX) {
  const s = showInner(v, 0)
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s
}

function showInner (v, depth) {
  if (depth > 6) return '…'
  if (v === undefined) return 'undefined'
  if (v === null) return 'null'
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v)
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'string') {
    return v.length > 60 ? `${JSON.stringify(cut(v, 0, 40))}…(string of ${v.length} UTF-16 units)` : JSON.stringify(v)
  }
  if (typeof v === 'boolean') return String(v)
  if (v instanceof Uint8Array) {
    return `Uint8Array[${[...v.subarray(0, 12)].join(',')}${v.length > 12 ? `,…(${v.length} bytes)` : ''}]`
  }
  if (Array.isArray(v)) return `[${v.slice(0, 20).map((x) => showInner(x, depth + 1)).join(',')}${v.length > 20 ? ',…' : ''}]`
  if (v instanceof YView) return showView(v, depth)
  if (typeof v === 'object') {
    const keys = Object.keys(v)
    return `{${keys.slice(0, 25).map((k) => `${JSON.stringify(k)}:${showInner(v[k], depth + 1)}`).join(',')}${keys.length > 25 ? ',…' : ''}}`
  }
  return `${typeof v} ${String(v)}`
}

function showView (v, depth) {
  const entries = (es) => es.map(([k, x]) => `${JSON.stringify(k)}:${showInner(x, depth + 1)}`).join(',')
  const delta = (d) => d.map((op) => showInner(op.insert, depth + 1) + (op.attributes ? showInner(op.attributes, depth + 1) : '')).join(',')
  switch (v.kind) {
    case 'format attributes':
    case 'Y.Doc roots':
      return `{${entries(v.entries)}}`
    case 'Y.Map':
      return `Y.Map{${entries(v.entries)}}`
    case 'Y.XmlHook':
      return `Y.XmlHook(${v.hookName}){${entries(v.entries)}}`
    case 'Y.Array':
      return `Y.Array${showInner(v.items, depth + 1)}`
    case 'Y.Text':
      return `Y.Text(${delta(v.delta)})`
    case 'Y.XmlText':
      return `Y.XmlText{${entries(v.attrs)}}(${delta(v.delta)})`
    case 'Y.XmlElement':
      return `<${v.nodeName} ${entries(v.attrs)}>${v.children.map((c) => showInner(c, depth + 1)).join('')}</${v.nodeName}>`
    case 'Y.XmlFragment':
      return `Y.XmlFragment(${v.children.map((c) => showInner(c, depth + 1)).join('')})`
    default:
      return v.kind
  }
}

const fmtKey = (k) => (/^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`)

/**
 * Differences between `a` (left) and `b` (right), as "path: …" lines (at most
 * `limit`). mode 'values': every difference in type or value, object keys
 * compared as sets (canonical). mode 'order': only plain objects with the same
 * keys in a different order (Y.Map-like containers are unordered by nature).
 */
export function typedDiff (a, b, { mode = 'values', limit = 30 } = {}) {
  const out = []
  diffInto(out, '', a, b, mode, limit)
  return out
}

function diffInto (out, path, a, b, mode, limit) {
  if (out.length >= limit) return
  const at = path || '(root)'
  const report = (msg) => { if (mode === 'values' && out.length < limit) out.push(`${at}: ${msg}`) }
  const ta = typeName(a)
  const tb = typeName(b)
  if (ta !== tb) return report(`${show(a)} (${ta}) vs ${show(b)} (${tb})`)
  if (a instanceof YView) return diffView(out, path, a, b, mode, limit, report)
  switch (ta) {
    case 'number':
      if (!Object.is(a, b)) report(`${show(a)} vs ${show(b)}`)
      return
    case 'string':
      if (a !== b) {
        let i = 0
        while (i < a.length && i < b.length && a[i] === b[i]) i++
        report(`strings differ at UTF-16 index ${i} (lengths ${a.length} vs ${b.length}): ` +
          `${JSON.stringify(cut(a, Math.max(0, i - 10), i + 20))} vs ${JSON.stringify(cut(b, Math.max(0, i - 10), i + 20))}`)
      }
      return
    case 'bigint':
    case 'boolean':
    case 'null':
    case 'undefined':
      if (a !== b) report(`${show(a)} vs ${show(b)}`)
      return
    case 'Uint8Array':
      if (a.length !== b.length || a.some((x, i) => x !== b[i])) report(`${show(a)} vs ${show(b)}`)
      return
    case 'array':
      if (a.length !== b.length) report(`array lengths ${a.length} vs ${b.length}`)
      for (let i = 0; i < Math.min(a.length, b.length); i++) diffInto(out, `${path}[${i}]`, a[i], b[i], mode, limit)
      return
    case 'object': {
      const ka = Object.keys(a)
      const kb = Object.keys(b)
      const sb = new Set(kb)
      const sa = new Set(ka)
      const onlyA = ka.filter((k) => !sb.has(k))
      const onlyB = kb.filter((k) => !sa.has(k))
      if (onlyA.length || onlyB.length) {
        report(`object keys differ: only left ${JSON.stringify(onlyA)}, only right ${JSON.stringify(onlyB)}`)
      } else if (mode === 'order' && ka.some((k, i) => k !== kb[i]) && out.length < limit) {
        out.push(`${at}: key order ${JSON.stringify(ka)} vs ${JSON.stringify(kb)}`)
      }
      for (const k of ka) if (sb.has(k)) diffInto(out, `${path}${fmtKey(k)}`, a[k], b[k], mode, limit)
      return
    }
    default:
      if (a !== b) report(`${show(a)} vs ${show(b)}`)
  }
}

function diffEntries (out, path, ea, eb, mode, limit, report) {
  const ma = new Map(ea)
  const mb = new Map(eb)
  const onlyA = ea.map((e) => e[0]).filter((k) => !mb.has(k))
  const onlyB = eb.map((e) => e[0]).filter((k) => !ma.has(k))
  if (onlyA.length || onlyB.length) report(`keys differ: only left ${JSON.stringify(onlyA)}, only right ${JSON.stringify(onlyB)}`)
  for (const [k, v] of ea) if (mb.has(k)) diffInto(out, `${path}${fmtKey(k)}`, v, mb.get(k), mode, limit)
}

function diffView (out, path, a, b, mode, limit, report) {
  switch (a.kind) {
    case 'Y.Doc roots':
    case 'Y.Map':
    case 'format attributes':
      return diffEntries(out, path, a.entries, b.entries, mode, limit, report)
    case 'Y.XmlHook':
      if (a.hookName !== b.hookName) report(`hook names ${a.hookName} vs ${b.hookName}`)
      return diffEntries(out, path, a.entries, b.entries, mode, limit, report)
    case 'Y.Array':
      return diffInto(out, path, a.items, b.items, mode, limit)
    case 'Y.XmlFragment':
      return diffInto(out, `${path}.children`, a.children, b.children, mode, limit)
    case 'Y.XmlElement':
      if (a.nodeName !== b.nodeName) report(`node names ${a.nodeName} vs ${b.nodeName}`)
      diffEntries(out, `${path}@attrs`, a.attrs, b.attrs, mode, limit, report)
      return diffInto(out, `${path}.children`, a.children, b.children, mode, limit)
    case 'Y.XmlText':
      diffEntries(out, `${path}@attrs`, a.attrs, b.attrs, mode, limit, report)
      return diffDelta(out, path, a.delta, b.delta, mode, limit, report)
    case 'Y.Text':
      return diffDelta(out, path, a.delta, b.delta, mode, limit, report)
    case 'Y.Doc':
      if (a.guid !== b.guid) report(`subdoc guids ${a.guid} vs ${b.guid}`)
      if (a.autoLoad !== b.autoLoad) report(`subdoc autoLoad ${a.autoLoad} vs ${b.autoLoad}`)
      return diffInto(out, `${path}.meta`, a.meta, b.meta, mode, limit)
    default:
      report(`cannot compare ${a.kind}`)
  }
}

function diffDelta (out, path, da, db, mode, limit, report) {
  const text = (d) => d.map((op) => (typeof op.insert === 'string' ? op.insert : '\uFFFC')).join('')
  const sa = text(da)
  const sb = text(db)
  if (sa !== sb) diffInto(out, `${path}.toString()`, sa, sb, mode, limit)
  if (da.length !== db.length) {
    // Ops no longer line up: show both deltas instead of op-by-op noise.
    const compact = (d) => d.map((op) => (op.attributes ? [op.insert, op.attributes] : [op.insert]))
    report(`deltas of ${da.length} vs ${db.length} ops:\n      left  ${show(compact(da), 600)}\n      right ${show(compact(db), 600)}`)
    return
  }
  for (let i = 0; i < Math.min(da.length, db.length); i++) {
    if (out.length >= limit) return
    const p = `${path}.delta[${i}]`
    if (sa === sb) diffInto(out, `${p}.insert`, da[i].insert, db[i].insert, mode, limit)
    else if (typeof da[i].insert !== 'string' || typeof db[i].insert !== 'string') diffInto(out, `${p}.insert`, da[i].insert, db[i].insert, mode, limit)
    const aa = da[i].attributes ?? new YView('format attributes', { entries: [] })
    const ab = db[i].attributes ?? new YView('format attributes', { entries: [] })
    diffInto(out, `${p}.attributes`, aa, ab, mode, limit)
  }
}

// ---------------------------------------------------------------------------
// The standard checks

/**
 * Runs the checks every scenario ends with as named subtests of `t`:
 * the scenario itself, no close the test did not cause, every replica and the
 * late joiner equal to the local Yjs merge `ref` (typed, key order aside), object
 * key order kept, and roomcast_refusals_total unchanged. `extra` adds named
 * checks: [[name, fn], …].
 */
export async function reportChecks (t, {
  clients, late = null, ref, roots, refusalsBefore, refusalsAfter, problems = [], extra = []
}) {
  const subjects = late ? [...clients, late] : clients
  const refView = readRoots(ref, roots)
  const views = subjects.map((c) => [c.label, readRoots(c.doc, roots)])

  await t.test('the scenario ran to completion (bounded waits)', () => {
    assert.equal(problems.length, 0, problems.join('\n\n'))
  })

  await t.test('no connection was closed except by the test', () => {
    const lines = unexpectedCloseLines(subjects)
    assert.equal(lines.length, 0, `${lines.length} unexpected close(s):\n${lines.join('\n')}\n` +
      `all closes and connection errors:\n${allCloseLines(subjects).join('\n')}`)
  })

  await t.test('every replica and the late joiner equal the local Yjs merge (typed values; object key order aside)', () => {
    const failures = []
    for (const [label, view] of views) {
      const d = typedDiff(refView, view, { mode: 'values' })
      if (d.length) failures.push(`${label} (left: local Yjs merge, right: ${label}):\n  ${d.join('\n  ')}`)
    }
    assert.equal(failures.length, 0, failures.join('\n'))
  })

  await t.test('object key order is kept (the reference y-websocket server keeps it)', () => {
    const failures = []
    for (const [label, view] of views) {
      const d = typedDiff(refView, view, { mode: 'order' })
      if (d.length) failures.push(`${label} (left: local Yjs merge, right: ${label}):\n  ${d.join('\n  ')}`)
    }
    assert.equal(failures.length, 0, failures.join('\n'))
  })

  await t.test('roomcast_refusals_total did not move', () => {
    const delta = refusalsDelta(refusalsBefore, refusalsAfter)
    assert.equal(delta.total, 0, `refusals rose by ${delta.total}: ${JSON.stringify(delta.byReason)} ` +
      `(before ${JSON.stringify(refusalsBefore.byReason)}, after ${JSON.stringify(refusalsAfter.byReason)})`)
  })

  for (const [name, fn] of extra) await t.test(name, fn)
}

/**
 * One compatibility scenario on `server`: `writers` stock clients on a fresh doc
 * (every local update also merged into a local reference Y.Doc), `edit(clients,
 * ctx)` run, everyone settled, a late joiner, then reportChecks(). The scenario
 * may throw (e.g. a waitOrThrow): the failure is reported and the remaining
 * checks still run. `extra(ctx)` returns further named checks.
 */
export async function compatCheck (t, server, {
  prefix, roots, writers = 2, providerOptions, edit, settleTimeout = 10000, extra
}) {
  const room = docName(prefix)
  const ref = new Y.Doc()
  const problems = []
  const clients = []
  let late = null
  try {
    const refusalsBefore = await readRefusals(server)
    for (let i = 0; i < writers; i++) {
      clients.push(compatClient(server.docUrl, room, { label: `client ${'ABCDEFGH'[i]}`, ref, providerOptions }))
    }
    const ctx = { server, room, ref, clients, completed: false }
    try {
      await waitOrThrow(clients, () => clients.every((c) => c.provider.synced), { what: 'every client to sync' })
      await edit(clients, ctx)
      ctx.completed = true
    } catch (e) {
      problems.push(`the scenario failed: ${e.stack || e}`)
    }
    const settled = await settle(clients, ref, { timeout: settleTimeout })
    if (!settled.ok) problems.push(settled.why)
    const joined = await joinLate(server.docUrl, room, ref, { others: clients })
    late = joined.client
    ctx.late = late
    problems.push(...joined.problems)
    const refusalsAfter = await readRefusals(server)
    await reportChecks(t, {
      clients, late, ref, roots, refusalsBefore, refusalsAfter, problems, extra: extra ? extra(ctx) : []
    })
  } finally {
    for (const c of clients) c.destroy()
    late?.destroy()
    ref.destroy()
  }
}

/**
 * A named check of the test itself (that the scenario did what it meant to), for
 * `extra`: skipped when the scenario did not run to completion — that failure is
 * reported by the standard checks, and the self-check would only repeat it.
 */
export function selfCheck (ctx, name, fn) {
  return [`test self-check: ${name}`, (st) => {
    if (!ctx.completed) {
      st.skip('the scenario did not run to completion (reported above)')
      return
    }
    return fn()
  }]
}

/** Yields to the event loop (lets socket I/O run) without waiting for a condition. */
export const tick = () => new Promise((resolve) => setImmediate(resolve))
