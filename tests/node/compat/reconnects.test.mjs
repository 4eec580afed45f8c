// Check 7 of the Yjs compatibility suite: a client that keeps typing while its
// connection drops and comes back converges, with no close it did not cause
// and no refusal:
//  - offline edits: provider.disconnect(), type, connect(), several rounds;
//  - edits made between the new socket's open and the server's sync step 2 —
//    typed in the provider's `status` → `connected` handler, or in an `open`
//    listener on the new socket — after offline edits, several rounds;
//  - abrupt drops (provider.ws.close()) while typing in a tight loop, with
//    y-websocket reconnecting by itself, several rounds.
// Human speed: the server keeps its default per-connection limits.

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, sleep } from '../helpers.mjs'
import { compatCheck, settle, waitOrThrow, selfCheck } from './compat-helpers.mjs'

const ROOTS = { t: 'text', m: 'map', a: 'array' }
/** y-websocket's first reconnect comes 100 ms after a drop; keep later ones quick too. */
const PROVIDER_OPTIONS = { maxBackoffTime: 300 }

async function settled (clients, ref) {
  const r = await settle(clients, ref)
  if (!r.ok) throw new Error(r.why)
}

/** One keystroke at the end of the client's text (its own transaction). */
function keystroke (client, s) {
  const t = client.doc.getText('t')
  t.insert(t.length, s)
}

describe('compat: reconnects while typing', () => {
  let server
  before(async () => { server = await startServer() })
  after(async () => { await server?.stop() })

  it('offline edits: disconnect(), type, connect() — 4 rounds, alternating who is offline', async (t) => {
    await compatCheck(t, server, {
      prefix: 'reconnect-offline',
      roots: ROOTS,
      providerOptions: PROVIDER_OPTIONS,
      async edit (clients, { ref }) {
        for (let round = 0; round < 4; round++) {
          const off = clients[round % 2]
          const on = clients[(round + 1) % 2]
          off.disconnect()
          for (let i = 0; i < 15; i++) {
            keystroke(off, `${off.label.at(-1)}${round}.${i} `)
            if (i % 3 === 0) off.doc.getMap('m').set(`${off.label}-${round}`, i)
            if (i % 5 === 0) off.doc.getArray('a').push([`${off.label}-${round}-${i}`])
            on.doc.getText('t').insert(0, `${on.label.at(-1)}`)
            await sleep(5)
          }
          off.connect()
          await settled(clients, ref)
        }
      }
    })
  })

  it('edits between the socket\'s open and the server\'s sync step 2, after offline edits — 6 rounds (status handler and ws open listener)', async (t) => {
    let typedOnOpen = 0
    let round = -1
    let roundsDone = 0
    const roundsTypedOnOpen = new Set()
    await compatCheck(t, server, {
      prefix: 'reconnect-before-step2',
      roots: ROOTS,
      providerOptions: PROVIDER_OPTIONS,
      async edit ([a, b], { ref }) {
        let armed = null
        // Typed in the provider's `connected` status handler: y-websocket emits it
        // from the socket's onopen, before it sends its sync step 1.
        a.provider.on('status', ({ status }) => {
          if (status === 'connected' && armed === 'status') {
            for (let k = 0; k < 5; k++) { keystroke(a, `s${typedOnOpen++} `) }
            a.doc.getMap('m').set('lastOnOpen', typedOnOpen)
            roundsTypedOnOpen.add(round)
          }
          // A listener on the new socket's `open` event runs after y-websocket's
          // onopen (it sent sync step 1), before the server's answer arrives.
          if (status === 'connecting' && armed === 'open') {
            a.provider.ws.addEventListener('open', () => {
              for (let k = 0; k < 5; k++) { keystroke(a, `o${typedOnOpen++} `) }
              a.doc.getArray('a').push([typedOnOpen])
              roundsTypedOnOpen.add(round)
            })
          }
        })
        for (round = 0; round < 6; round++) {
          armed = round % 2 === 0 ? 'status' : 'open'
          a.disconnect()
          for (let i = 0; i < 5; i++) keystroke(a, `off${round}.${i} `)
          b.doc.getText('t').insert(0, `B${round} `)
          a.connect()
          await settled([a, b], ref)
          armed = null
          roundsDone += 1
        }
      },
      extra: (ctx) => [selfCheck(ctx, 'every round typed in its open handler', () => {
        assert.equal(roundsDone, 6)
        for (let r = 0; r < roundsDone; r++) assert.ok(roundsTypedOnOpen.has(r), `round ${r} typed nothing on open`)
      })]
    })
  })

  it('abrupt drops (provider.ws.close()) while typing in a tight loop; y-websocket reconnects by itself — 6 drops', async (t) => {
    let drops = 0
    await compatCheck(t, server, {
      prefix: 'reconnect-drops',
      roots: ROOTS,
      providerOptions: PROVIDER_OPTIONS,
      async edit ([a, b], { ref }) {
        let typing = true
        let n = 0
        // Each reconnect: a burst of keystrokes as soon as the socket is open.
        a.provider.on('status', ({ status }) => {
          if (status === 'connected' && typing) {
            for (let k = 0; k < 10; k++) keystroke(a, `c${n++} `)
          }
        })
        const typer = (async () => {
          while (typing) {
            keystroke(a, `k${n++} `)
            if (n % 7 === 0) a.doc.getMap('m').set(`k${n % 5}`, n)
            await sleep(8)
          }
        })()
        const other = (async () => {
          let i = 0
          while (typing) {
            b.doc.getText('t').insert(0, `b${i++} `)
            await sleep(25)
          }
        })()
        try {
          for (let d = 0; d < 6; d++) {
            await sleep(120)
            await waitOrThrow([a, b], () => a.provider.wsconnected, { what: 'client A to be connected again' })
            if (a.drop()) drops += 1
          }
          await waitOrThrow([a, b], () => a.provider.wsconnected && a.provider.synced, { what: 'client A to reconnect after the last drop' })
          await sleep(100)
        } finally {
          typing = false
          await Promise.all([typer, other])
        }
        await settled([a, b], ref)
      },
      extra: (ctx) => [selfCheck(ctx, 'the drops were made, and seen as test-caused closes', () => {
        const a = ctx.clients[0]
        assert.equal(drops, 6)
        // A socket the server closed first (reported above) counts as an unexpected close instead.
        if (a.unexpectedCloses().length === 0) {
          assert.equal(a.intendedCloses().length, drops, `closes seen by client A: ${JSON.stringify(a.closes)}`)
        }
      })]
    })
  })
})
