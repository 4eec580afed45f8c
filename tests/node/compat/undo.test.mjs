// Check 5 of the Yjs compatibility suite: Y.UndoManager. Two clients edit a
// Y.Text (inserts, formats), a Y.Map and a Y.Array, each with its own
// UndoManager over the three, and undo and redo their own changes while the
// other edits; everyone, and a late joiner, converges on the local Yjs merge.
// Human speed: the server keeps its default limits.

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, sleep, Y } from '../helpers.mjs'
import { compatCheck, settle, selfCheck } from './compat-helpers.mjs'

const ROOTS = { t: 'text', m: 'map', a: 'array' }
/** Pacing between two edits of one client (human speed; never a wait for a condition). */
const PACE_MS = 10

async function settled (clients, ref) {
  const r = await settle(clients, ref)
  if (!r.ok) throw new Error(r.why)
}

function undoable (client) {
  const t = client.doc.getText('t')
  const m = client.doc.getMap('m')
  const a = client.doc.getArray('a')
  // captureTimeout 0: every transaction is its own undo step.
  const um = new Y.UndoManager([t, m, a], { captureTimeout: 0 })
  return { t, m, a, um }
}

describe('compat: Y.UndoManager', () => {
  let server
  before(async () => { server = await startServer() })
  after(async () => { await server?.stop() })

  it('edits, undo and redo on text, map and array from two clients', async (t) => {
    const undone = []
    await compatCheck(t, server, {
      prefix: 'undo',
      roots: ROOTS,
      async edit ([ca, cb], { ref }) {
        const A = undoable(ca)
        const B = undoable(cb)
        A.t.insert(0, 'Hello ')
        B.t.insert(0, 'World')
        await sleep(PACE_MS)
        A.m.set('k1', 'a1')
        B.m.set('k2', 'b1')
        A.a.push(['x', 1])
        B.a.push([{ from: 'B' }])
        await settled([ca, cb], ref)

        // Undo A's last two steps while B keeps typing; B undoes and redoes its own.
        undone.push(A.um.undo() !== null, A.um.undo() !== null)
        B.t.insert(B.t.length, '!')
        await sleep(PACE_MS)
        undone.push(B.um.undo() !== null)
        await sleep(PACE_MS)
        undone.push(B.um.redo() !== null)
        await settled([ca, cb], ref)
        undone.push(A.um.redo() !== null)

        // Formats and their undo.
        A.t.format(0, 5, { bold: true })
        await sleep(PACE_MS)
        B.t.format(2, 6, { italic: true, color: '#00f' })
        await settled([ca, cb], ref)
        undone.push(A.um.undo() !== null)
        await sleep(PACE_MS)

        // A multi-type transaction, undone as one step.
        ca.doc.transact(() => {
          A.t.insert(A.t.length, ' [tx]')
          A.m.set('tx', true)
          A.a.insert(0, ['tx-item'])
        })
        await settled([ca, cb], ref)
        undone.push(A.um.undo() !== null)

        // Concurrent conflicting writes, then undo on both sides.
        A.m.set('shared', 'A')
        B.m.set('shared', 'B')
        B.a.delete(0, 1)
        await settled([ca, cb], ref)
        undone.push(A.um.undo() !== null, B.um.undo() !== null)
        await sleep(PACE_MS)
        undone.push(B.um.undo() !== null)
        await settled([ca, cb], ref)
        undone.push(B.um.redo() !== null, A.um.redo() !== null)
      },
      extra: (ctx) => [
        selfCheck(ctx, 'every undo/redo had something to do, and the merge shows them', () => {
          assert.deepEqual(undone, Array(undone.length).fill(true))
          const text = ctx.ref.getText('t').toString()
          assert.ok(text.includes('!'), `B's redone "!" is in ${JSON.stringify(text)}`)
          assert.ok(!text.includes('[tx]'), `the undone transaction's text is gone from ${JSON.stringify(text)}`)
          assert.equal(ctx.ref.getMap('m').has('tx'), false)
        })
      ]
    })
  })
})
