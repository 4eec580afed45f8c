// Real keystroke traces (tests/fixtures/traces, CC BY 4.0, see the README there):
// loading, code point → UTF-16 conversion, and replay through a stock Yjs client
// with a second one observing. Used by traces.test.mjs and bench/replay-traces.mjs.

import { readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Y } from '../helpers.mjs'

/** The repository's copy of the traces (CI has no /work/shared). */
export const TRACE_DIR = fileURLToPath(new URL('../../fixtures/traces/', import.meta.url))
/** Every trace, smallest first. */
export const TRACE_NAMES = ['sveltecomponent', 'json-crdt-patch', 'rustcode']

/**
 * Reads `<name>.json.gz`: {name, startContent, endContent, txns, ops} where `ops`
 * are the transactions as UTF-16 [index, deleteCount, insertText] patches.
 */
export function loadTrace (name, dir = TRACE_DIR) {
  const data = JSON.parse(gunzipSync(readFileSync(join(dir, `${name}.json.gz`))).toString('utf8'))
  return { name, startContent: data.startContent, endContent: data.endContent, txns: data.txns, ops: toUtf16Ops(data) }
}

const SURROGATE = /[\uD800-\uDFFF]/

/**
 * Trace patches count Unicode code points; a Y.Text counts UTF-16 units. Converts
 * every transaction's patches to UTF-16 [index, deleteCount, insertText], by
 * following the document through the trace (patches within a transaction apply
 * one after another). Without any character outside the BMP the two agree.
 */
export function toUtf16Ops ({ startContent, txns }) {
  const astral = SURROGATE.test(startContent) || txns.some((t) => t.patches.some((p) => SURROGATE.test(p[2])))
  if (!astral) return txns.map((t) => t.patches.map(([pos, del, ins]) => [pos, del, ins]))
  let doc = Array.from(startContent) // one entry per code point
  const units = (from, to) => {
    let n = 0
    for (let i = from; i < to; i++) n += doc[i].length
    return n
  }
  return txns.map((t) => t.patches.map(([pos, del, ins]) => {
    if (pos + del > doc.length) throw new Error(`patch [${pos}, ${del}] beyond the document (${doc.length} code points)`)
    const op = [units(0, pos), units(pos, pos + del), ins]
    doc = doc.slice(0, pos).concat(Array.from(ins), doc.slice(pos + del))
    return op
  }))
}

/** Applies UTF-16 ops to a string (to check a conversion without Yjs). */
export function applyOpsToString (start, ops) {
  let s = start
  for (const txn of ops) for (const [i, d, ins] of txn) s = s.slice(0, i) + ins + s.slice(i + d)
  return s
}

/**
 * Replays `trace` into `writer` (a Y.Doc; its Y.Text `textName`), one Yjs
 * transaction per trace transaction, while `observer` (another Y.Doc, synced
 * through the server) receives. Yields to the event loop every `yieldEvery`
 * transactions, and stays at most `window` transactions ahead of what the
 * observer holds (flow control, so that the server's outbox limits are not what
 * is measured). Resolves, once the observer's text reads endContent, with
 * {txns, ms, sendMs, editsPerSec}: ms from the first send until then.
 * `abort()` returning a string stops the replay with that reason.
 */
export async function replayTrace ({
  trace, writer, observer, textName = 't', yieldEvery = 100, window = 2000, timeout = 180000, abort = () => null
}) {
  const wText = writer.getText(textName)
  const oText = observer.getText(textName)
  const writerId = writer.clientID
  const { ops, endContent } = trace
  if (wText.length !== 0 || oText.length !== 0) throw new Error('replayTrace wants an empty text on both sides')
  if (trace.startContent) wText.insert(0, trace.startContent)

  const clocks = new Array(ops.length)
  let sentAll = false
  let finalClock = Infinity
  let doneAt = null
  let wake = null
  const observerClock = () => Y.getState(observer.store, writerId)
  const checkDone = () => {
    if (doneAt === null && sentAll && observerClock() >= finalClock &&
        oText.length === endContent.length && oText.toString() === endContent) {
      doneAt = performance.now()
    }
  }
  const onObserverUpdate = () => {
    checkDone()
    if (wake) wake()
  }
  observer.on('update', onObserverUpdate)

  const deadline = Date.now() + timeout
  /** Resolves on the observer's next update, or after 100 ms (to re-check abort and the deadline). */
  const nextObserverUpdate = () => new Promise((resolve) => {
    const timer = setTimeout(() => { wake = null; resolve() }, 100)
    wake = () => { clearTimeout(timer); wake = null; resolve() }
  })
  const stopIfNeeded = (what) => {
    const reason = abort()
    if (reason) throw new Error(`trace ${trace.name}: stopped while ${what}: ${reason}`)
    if (Date.now() > deadline) {
      throw new Error(`trace ${trace.name}: not done after ${timeout} ms while ${what} ` +
        `(observer has clock ${observerClock()} of the writer's ${Y.getState(writer.store, writerId)}, ` +
        `${oText.length} of ${endContent.length} characters)`)
    }
  }

  try {
    const start = performance.now()
    for (let i = 0; i < ops.length; i++) {
      const txn = ops[i]
      writer.transact(() => {
        for (const [index, del, ins] of txn) {
          if (del > 0) wText.delete(index, del)
          if (ins.length > 0) wText.insert(index, ins)
        }
      })
      clocks[i] = Y.getState(writer.store, writerId)
      if (i >= window) {
        while (observerClock() < clocks[i - window]) {
          stopIfNeeded(`waiting for the observer to catch up (transaction ${i} of ${ops.length})`)
          await nextObserverUpdate()
        }
      }
      if (i % yieldEvery === yieldEvery - 1) {
        stopIfNeeded(`sending (transaction ${i} of ${ops.length})`)
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
    const sendMs = performance.now() - start
    finalClock = Y.getState(writer.store, writerId)
    sentAll = true
    checkDone()
    while (doneAt === null) {
      stopIfNeeded('waiting for the observer to read endContent')
      await nextObserverUpdate()
      checkDone()
    }
    const ms = doneAt - start
    return { txns: ops.length, ms, sendMs, editsPerSec: ops.length / (ms / 1000) }
  } finally {
    observer.off('update', onObserverUpdate)
  }
}

/** "trace replay: rustcode, persistence sqlite: 36981 txns in 24.46 s = 1512 edits/s (all sent after 2.37 s)" */
export function replayLine (name, mode, r) {
  return `trace replay: ${name}, ${mode}: ${r.txns} txns in ${(r.ms / 1000).toFixed(2)} s = ` +
    `${Math.round(r.editsPerSec)} edits/s (all sent after ${(r.sendMs / 1000).toFixed(2)} s)`
}
