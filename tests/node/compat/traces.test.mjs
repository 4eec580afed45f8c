// Check 6 of the Yjs compatibility suite: real keystroke traces
// (tests/fixtures/traces, CC BY 4.0 — see the README there). Each trace is
// replayed through one stock client, one Yjs transaction per trace transaction,
// while a second client observes: the observer ends with the trace's endContent
// (and so does a late joiner). With persistence on, the server is then stopped
// gracefully and restarted on the same data (SQLite, PostgreSQL) and a fresh
// client still reads endContent. Every replay logs its time and edits/s
// ("trace replay: …"). The writer is programmatic: per-connection limits lifted.
//
// Which traces run in which mode: all three on SQLite and on PostgreSQL, one
// with persistence off by default (about two minutes with the debug server
// build the test command uses); ROOMCAST_TEST_TRACES=all runs every trace in
// every mode. bench/replay-traces.mjs runs the grid as a benchmark.

import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import {
  startServer, docName, readRefusals, refusalsDelta, createPostgresDatabase, Y
} from '../helpers.mjs'
import {
  compatClient, PROGRAMMATIC_LIMITS, waitOrThrow, waitUntil, settle, joinLate, reportChecks,
  unexpectedCloseLines, allCloseLines, readRoots, typedDiff
} from './compat-helpers.mjs'
import { loadTrace, replayTrace, replayLine, toUtf16Ops, applyOpsToString, TRACE_NAMES } from './trace-replay.mjs'

const ROOTS = { t: 'text' }
const ALL = process.env.ROOMCAST_TEST_TRACES === 'all'
/** mode → traces. */
const PLAN = ALL
  ? { off: TRACE_NAMES, sqlite: TRACE_NAMES, postgres: TRACE_NAMES }
  : { off: ['sveltecomponent'], sqlite: TRACE_NAMES, postgres: TRACE_NAMES }

/** The server arguments of a mode (postgres: the database URL is added by the caller). */
function modeArgs (mode) {
  return mode === 'off' ? [...PROGRAMMATIC_LIMITS, '--persistence', 'off'] : [...PROGRAMMATIC_LIMITS]
}

async function traceCheck (t, name, mode) {
  const trace = loadTrace(name)
  let db = null
  let server = null
  let restarted = null
  const args = modeArgs(mode)
  const clients = []
  let late = null
  let fresh = null
  try {
    if (mode === 'postgres') {
      db = await createPostgresDatabase()
      args.push('--database-url', db.url)
    }
    server = await startServer({ args })
    if (mode === 'sqlite') server.keepData()
    const room = docName(`trace-${name}`)
    const refusalsBefore = await readRefusals(server)
    const writer = compatClient(server.docUrl, room, { label: 'writer' })
    const observer = compatClient(server.docUrl, room, { label: 'observer' })
    clients.push(writer, observer)
    const problems = []
    let result = null
    try {
      await waitOrThrow(clients, () => clients.every((c) => c.provider.synced), { what: 'writer and observer to sync' })
      result = await replayTrace({
        trace,
        writer: writer.doc,
        observer: observer.doc,
        abort: () => {
          const lines = unexpectedCloseLines(clients)
          return lines.length ? `the server closed a connection: ${lines.join('; ')}` : null
        }
      })
      const line = replayLine(name, `persistence ${mode}`, result)
      console.log(line)
      t.diagnostic(line)
    } catch (e) {
      problems.push(`the replay failed: ${e.stack || e}`)
    }
    const s = await settle(clients, writer.doc, { timeout: 20000 })
    if (!s.ok) problems.push(s.why)
    const joined = await joinLate(server.docUrl, room, writer.doc, { others: clients, timeout: 20000 })
    late = joined.client
    problems.push(...joined.problems)
    const refusalsAfter = await readRefusals(server)

    await reportChecks(t, {
      clients,
      late,
      ref: writer.doc,
      roots: ROOTS,
      refusalsBefore,
      refusalsAfter,
      problems,
      extra: [
        ['the observer and the late joiner read endContent', () => {
          for (const c of [observer, late]) {
            const got = c.doc.getText('t').toString()
            assert.ok(got === trace.endContent, `${c.label}: ${typedDiff(trace.endContent, got).join('; ')}`)
          }
        }],
        ['test self-check: the writer\'s own text is endContent (UTF-16 conversion of the trace)', (st) => {
          if (!result) {
            st.skip('the replay did not run to completion (reported above)')
            return
          }
          assert.equal(writer.doc.getText('t').toString(), trace.endContent)
        }]
      ]
    })

    if (mode === 'off') {
      for (const c of clients) c.destroy()
      late.destroy()
      await t.test('the server then stops gracefully: exit 0 within 10 s of SIGTERM, nobody connected', async () => {
        const started = Date.now()
        const exit = await server.stop(10000)
        assert.equal(exit.code, 0, `no graceful exit after ${Date.now() - started} ms (${JSON.stringify(exit)}; ` +
          `SIGKILLed after 10 s)\nlast server log lines:\n${server.tail(3)}`)
      })
      return
    }
    // The writer's final state, kept for the comparison after the restart.
    const ref = new Y.Doc()
    Y.applyUpdate(ref, Y.encodeStateAsUpdate(writer.doc))
    for (const c of clients) c.destroy()
    late.destroy()

    await t.test(`after a graceful restart on the same ${mode === 'sqlite' ? 'SQLite' : 'PostgreSQL'} data, a fresh client reads endContent`, async () => {
      const exit = await server.stop()
      assert.equal(exit.code, 0, `graceful stop exits 0 (got ${JSON.stringify(exit)})\n${server.tail(20)}`)
      restarted = await startServer({ args, dataDir: mode === 'sqlite' ? server.dataDir : undefined })
      const before = await readRefusals(restarted)
      fresh = compatClient(restarted.docUrl, room, { label: 'fresh client after the restart' })
      const second = compatClient(restarted.docUrl, room, { label: 'second fresh client after the restart' })
      clients.push(second)
      const all = [fresh, second]
      const r = await waitUntil(all, () => all.every((c) => c.provider.synced &&
        c.doc.getText('t').length === trace.endContent.length && c.doc.getText('t').toString() === trace.endContent),
      { timeout: 30000, what: 'the fresh clients to read endContent' })
      const after = await readRefusals(restarted)
      const failures = []
      if (!r.ok) failures.push(r.why)
      for (const c of all) {
        failures.push(...typedDiff(readRoots(ref, ROOTS), readRoots(c.doc, ROOTS)).map((d) => `${c.label}: ${d}`))
      }
      const closes = unexpectedCloseLines(all)
      if (closes.length) failures.push(`unexpected closes:\n${allCloseLines(all).join('\n')}`)
      const delta = refusalsDelta(before, after)
      if (delta.total !== 0) failures.push(`roomcast_refusals_total rose by ${delta.total}: ${JSON.stringify(delta.byReason)}`)
      assert.equal(failures.length, 0, failures.join('\n'))
    })
  } finally {
    for (const c of clients) c.destroy()
    late?.destroy()
    fresh?.destroy()
    await restarted?.stop()
    await server?.stop()
    if (mode === 'sqlite' && server) rmSync(server.dataDir, { recursive: true, force: true })
    await db?.drop()
  }
}

describe('compat: real keystroke traces', () => {
  it('test self-check: trace patches in code points become the right UTF-16 patches', () => {
    // A synthetic trace with characters outside the BMP (the shipped traces have none).
    const txns = [
      { patches: [[0, 0, 'a😀b𝔘c']] },
      { patches: [[2, 1, 'XY'], [5, 0, '🇺🇳']] }, // replaces b; inserts a flag (2 code points) after 𝔘
      { patches: [[1, 1, ''], [0, 0, '中']] }, // deletes 😀, inserts at 0
      { patches: [[4, 3, '!']] }
    ]
    const codePoints = (s) => Array.from(s)
    let want = codePoints('')
    for (const t of txns) {
      for (const [pos, del, ins] of t.patches) want = [...want.slice(0, pos), ...codePoints(ins), ...want.slice(pos + del)]
    }
    const ops = toUtf16Ops({ startContent: '', txns })
    assert.equal(applyOpsToString('', ops), want.join(''))
    const doc = new Y.Doc()
    for (const txn of ops) doc.transact(() => { for (const [i, d, s] of txn) { doc.getText('t').delete(i, d); doc.getText('t').insert(i, s) } })
    assert.equal(doc.getText('t').toString(), want.join(''))
  })

  for (const [mode, names] of Object.entries(PLAN)) {
    for (const name of names) {
      it(`${name}: replay with an observer, persistence ${mode}${mode === 'off' ? '' : ', then a graceful restart'}`, async (t) => {
        await traceCheck(t, name, mode)
      })
    }
  }
})
