// Three stock WebsocketProvider clients edit a Y.Text, a Y.Map and a Y.Array
// concurrently (seeded, reproducible random edits); once quiet, all three and the
// Rust participant hold the same document.

import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, makeClient, waitFor, converged, describeClients, runRustDoc,
  mulberry32, docName, sleep
} from './helpers.mjs'

const SEED = Number(process.env.ROOMCAST_TEST_SEED ?? 20240611)
const OPS_PER_CLIENT = 200
const KEYS = 12
// Includes non-ASCII BMP characters: Yjs counts UTF-16 units, yrs must agree.
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz ABCDEFXYZ0123456789éßü中'

function word (rng) {
  const len = 1 + Math.floor(rng() * 6)
  let s = ''
  for (let i = 0; i < len; i++) s += ALPHABET[Math.floor(rng() * ALPHABET.length)]
  return s
}

/** An integer or a string (no floats: their JSON spelling differs between JS and Rust). */
function value (rng, tag) {
  return rng() < 0.5 ? Math.floor(rng() * 2000000) - 1000000 : `${tag}-${word(rng)}`
}

function editText (c, rng) {
  const { t } = c
  if (t.length > 0 && rng() < 0.35) {
    const pos = Math.floor(rng() * t.length)
    t.delete(pos, Math.min(t.length - pos, 1 + Math.floor(rng() * 6)))
  } else {
    t.insert(Math.floor(rng() * (t.length + 1)), word(rng))
  }
}

function editMap (c, rng, tag) {
  const key = `k${Math.floor(rng() * KEYS)}`
  if (c.m.has(key) && rng() < 0.25) c.m.delete(key)
  else c.m.set(key, value(rng, tag))
}

function editArray (c, rng, tag) {
  const { a } = c
  if (a.length > 0 && rng() < 0.3) {
    const pos = Math.floor(rng() * a.length)
    a.delete(pos, Math.min(a.length - pos, 1 + Math.floor(rng() * 3)))
  } else {
    const n = 1 + Math.floor(rng() * 3)
    const items = Array.from({ length: n }, () => value(rng, tag))
    a.insert(Math.floor(rng() * (a.length + 1)), items)
  }
}

function randomOp (c, rng, tag) {
  const r = rng()
  if (r < 0.1) {
    // Several edits in one transaction (one update spanning all three types).
    c.doc.transact(() => {
      editText(c, rng)
      editMap(c, rng, tag)
      editArray(c, rng, tag)
    })
  } else if (r < 0.45) {
    editText(c, rng)
  } else if (r < 0.7) {
    editMap(c, rng, tag)
  } else {
    editArray(c, rng, tag)
  }
}

async function randomEdits (c, seed, tag) {
  const rng = mulberry32(seed)
  for (let i = 0; i < OPS_PER_CLIENT; i++) {
    randomOp(c, rng, tag)
    // Pacing so that the three clients' messages interleave on the wire.
    if (rng() < 0.5) await new Promise((resolve) => setImmediate(resolve))
    else await sleep(Math.floor(rng() * 3))
  }
}

describe('convergence under concurrent edits', () => {
  let server
  let clients = []

  before(async () => { server = await startServer() })
  afterEach(() => { for (const c of clients) c.destroy(); clients = [] })
  after(async () => { await server?.stop() })

  it(`three JS clients and the Rust client converge after ${OPS_PER_CLIENT} random ops each (seed ${SEED})`, async () => {
    const name = docName('converge')
    clients = ['A', 'B', 'C'].map(() => makeClient(server.docUrl, name))
    await waitFor(() => clients.every((c) => c.provider.synced), { what: 'three providers synced' })

    // Count updates each client receives from the server while everyone is editing.
    const remoteUpdates = clients.map(() => 0)
    clients.forEach((c, i) => c.doc.on('update', (_u, origin) => {
      if (origin === c.provider) remoteUpdates[i] += 1
    }))

    await Promise.all(clients.map((c, i) => randomEdits(c, SEED + i, 'ABC'[i])))

    await waitFor(() => converged(clients), {
      timeout: 10000,
      what: 'the three clients to converge',
      details: () => describeClients(clients) + '\nserver log:\n' + server.tail(30)
    })
    const expected = clients[0].json()
    for (const c of clients) assert.deepEqual(c.json(), expected)
    for (const c of clients) assert.equal(c.provider.wsconnected, true, 'no client was disconnected')
    assert.ok(expected.t.length > 0 && Object.keys(expected.m).length > 0 && expected.a.length > 0,
      `the document is not trivial: ${JSON.stringify(expected).slice(0, 200)}`)
    for (const [i, n] of remoteUpdates.entries()) {
      assert.ok(n > 0, `client ${i} received remote updates while editing (${n})`)
    }

    const rust = await runRustDoc(server.url, name)
    assert.deepEqual(rust, expected, 'the Rust client holds the same document')
  })
})
