// A corrupted or truncated y-websocket frame closes only the connection that sent
// it (1007, with a reason); the document and the other members carry on unchanged.

import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  Y, startServer, makeClient, waitFor, converged, describeClients, runRustDoc,
  openRawWs, closeOf, varUint, mulberry32, docName
} from './helpers.mjs'

const SYNC = 0
const STEP2 = 1
const UPDATE = 2

function randomBytes (seed, n) {
  const rng = mulberry32(seed)
  return Array.from({ length: n }, () => Math.floor(rng() * 256))
}

/** A valid update (from an unrelated doc) inserting `text` into root text 't'. */
function validUpdate (text) {
  const d = new Y.Doc()
  d.getText('t').insert(0, text)
  const u = Y.encodeStateAsUpdate(d)
  d.destroy()
  return [...u]
}

const EVIL = 'EVIL-should-never-appear'

/** [label, frame bytes] */
function badFrames () {
  const evil = validUpdate(EVIL)
  return [
    ['update with random body (seed 1)', [SYNC, UPDATE, ...varUint(64), ...randomBytes(1, 64)]],
    ['update with random body (seed 2)', [SYNC, UPDATE, ...varUint(48), ...randomBytes(2, 48)]],
    ['sync step 2 with random body', [SYNC, STEP2, ...varUint(40), ...randomBytes(3, 40)]],
    ['truncated: declared 100 bytes, 10 sent', [SYNC, UPDATE, ...varUint(100), ...randomBytes(4, 10)]],
    ['truncated valid update: full length declared, half sent',
      [SYNC, UPDATE, ...varUint(evil.length), ...evil.slice(0, Math.floor(evil.length / 2))]],
    ['truncated length varuint', [SYNC, UPDATE, 0x80]]
  ]
}

describe('bad frames', () => {
  let server
  let clients = []

  before(async () => { server = await startServer() })
  afterEach(() => { for (const c of clients) c.destroy(); clients = [] })
  after(async () => { await server?.stop() })

  it('a corrupted or truncated update closes only its sender with 1007; the doc is unaffected', async () => {
    const name = docName('bad')
    const a = makeClient(server.docUrl, name)
    const b = makeClient(server.docUrl, name)
    clients.push(a, b)
    await waitFor(() => a.provider.synced && b.provider.synced, { what: 'a and b synced' })
    a.t.insert(0, 'hello from a')
    b.m.set('k', 'v')
    b.a.push([1, 'two'])
    await waitFor(() => converged([a, b]) && a.m.get('k') === 'v' && b.t.length > 0, {
      what: 'initial content on a and b',
      details: () => describeClients([a, b])
    })
    const before = a.json()

    for (const [label, frame] of badFrames()) {
      const raw = await openRawWs(`${server.docUrl}/${name}`)
      // It is a member: the server greets it with its sync step 1.
      await waitFor(() => raw.received.length > 0, { what: `greeting before sending: ${label}` })
      const closed = closeOf(raw)
      raw.send(Uint8Array.from(frame))
      const { code, reason } = await closed
      assert.equal(code, 1007, `${label}: close code (reason: ${reason})`)
      assert.ok(reason.length > 0, `${label}: a close reason`)
      console.log(`# ${label}: 1007 "${reason}"`)
    }

    // The providers never lost their connection, and the doc did not change.
    for (const c of [a, b]) {
      assert.equal(c.provider.wsconnected, true)
      assert.deepEqual(c.closes, [], 'no close event on the good clients')
      assert.deepEqual(c.json(), before)
    }

    // They still sync new edits both ways.
    a.t.insert(a.t.length, ' + more from a')
    b.a.push(['after'])
    await waitFor(() => converged([a, b]) && a.a.length === 3 && b.t.toString().endsWith(' + more from a'), {
      what: 'edits after the bad frames to sync both ways',
      details: () => describeClients([a, b])
    })
    const expected = {
      t: 'hello from a + more from a',
      m: { k: 'v' },
      a: [1, 'two', 'after']
    }
    assert.deepEqual(a.json(), expected)
    assert.deepEqual(b.json(), expected)

    // A newcomer and the Rust client get the same document, without any of the bad frames.
    const c = makeClient(server.docUrl, name)
    clients.push(c)
    await waitFor(() => c.provider.synced, { what: 'newcomer synced' })
    assert.deepEqual(c.json(), expected)
    assert.ok(!c.t.toString().includes('EVIL'))
    assert.deepEqual(await runRustDoc(server.url, name), expected)
  })
})
