// Awareness (presence) between stock y-websocket clients through roomcast: states
// are relayed, changes propagate, and a client's state disappears from the others
// when it leaves, both cleanly (provider.destroy()) and abruptly (socket torn down
// without an awareness removal: the server removes the ids of a member that goes).

import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, makeClient, waitFor, docName } from './helpers.mjs'

/** How long a departed client's state may linger on the others ("a few seconds"). */
const REMOVAL_WITHIN_MS = 3000

function nameSeenBy (observer, other) {
  return observer.awareness.getStates().get(other.doc.clientID)?.user?.name
}

function statesOf (c) {
  return JSON.stringify([...c.awareness.getStates()].map(([id, s]) => [id, s]))
}

describe('awareness', () => {
  let server
  let clients = []

  before(async () => { server = await startServer() })
  afterEach(() => { for (const c of clients) c.destroy(); clients = [] })
  after(async () => { await server?.stop() })

  it('relays states and removes those of clients that leave, cleanly or not', async () => {
    const name = docName('aware')
    const names = ['alice', 'bob', 'carol']
    clients = names.map(() => makeClient(server.docUrl, name))
    const [alice, bob, carol] = clients
    clients.forEach((c, i) => c.awareness.setLocalState({ user: { name: names[i] } }))
    await waitFor(() => clients.every((c) => c.provider.synced), { what: 'three providers synced' })

    const everyoneSeesEveryone = () => clients.every((c, i) =>
      clients.every((o, j) => i === j || nameSeenBy(c, o) === names[j]))
    await waitFor(everyoneSeesEveryone, {
      what: 'each client to see the two others\' states',
      details: () => clients.map(statesOf).join('\n')
    })
    for (const c of clients) assert.equal(c.awareness.getStates().size, 3)

    // A change of state propagates.
    alice.awareness.setLocalStateField('user', { name: 'alice-2' })
    await waitFor(() => nameSeenBy(bob, alice) === 'alice-2' && nameSeenBy(carol, alice) === 'alice-2', {
      what: 'alice\'s new name to reach bob and carol'
    })

    // Clean leave: destroy() sends a null state for its own id, then closes.
    const carolId = carol.doc.clientID
    carol.destroy()
    const t0 = Date.now()
    await waitFor(() => !alice.awareness.getStates().has(carolId) && !bob.awareness.getStates().has(carolId), {
      timeout: REMOVAL_WITHIN_MS,
      what: 'carol\'s state to disappear after provider.destroy()',
      details: () => [alice, bob].map(statesOf).join('\n')
    })
    const cleanMs = Date.now() - t0

    // Hard close: no reconnect, socket torn down, no awareness removal sent by bob.
    const bobId = bob.doc.clientID
    bob.provider.shouldConnect = false
    assert.ok(bob.provider.ws, 'bob has a socket')
    bob.provider.ws.terminate()
    const t1 = Date.now()
    await waitFor(() => !alice.awareness.getStates().has(bobId), {
      timeout: REMOVAL_WITHIN_MS,
      what: 'bob\'s state to disappear after his socket was terminated',
      details: () => statesOf(alice) + '\n' + server.tail(10)
    })
    const hardMs = Date.now() - t1
    assert.ok(bob.awareness.getLocalState() !== null, 'bob did not clear his own state: the removal came from the server')
    assert.equal(bob.provider.wsconnected, false)

    // Alice still knows herself and nobody else.
    assert.deepEqual([...alice.awareness.getStates().keys()], [alice.doc.clientID])

    // The server forgot them too: a newcomer only learns about alice.
    const dave = makeClient(server.docUrl, name)
    clients.push(dave)
    dave.awareness.setLocalState({ user: { name: 'dave' } })
    await waitFor(() => nameSeenBy(dave, alice) === 'alice-2' && nameSeenBy(alice, dave) === 'dave', {
      what: 'dave and alice to see each other'
    })
    assert.equal(dave.awareness.getStates().has(bobId), false, 'dave does not see bob')
    assert.equal(dave.awareness.getStates().has(carolId), false, 'dave does not see carol')

    // The server logged bob's departure with the one awareness id he introduced.
    const gone = server.records('member gone')
    assert.ok(gone.some((r) => r.fields.awareness_ids === 1), 'a member gone with its awareness id')
    console.log(`# awareness removal: clean ${cleanMs} ms, hard close ${hardMs} ms`)
  })
})
