// Offline edits survive a reconnect: (1) provider.disconnect(), edit, connect();
// (2) the server process dies (SIGKILL) and a new one starts on the same port; the
// providers reconnect by themselves and the new, empty server's document is
// rebuilt from what the clients hold, offline edits included.

import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, makeClient, waitFor, converged, describeClients, runRustDoc, docName, sleep
} from './helpers.mjs'

/** Fast reconnects (y-websocket backs off exponentially up to this). */
const PROVIDER_OPTIONS = { maxBackoffTime: 300 }

describe('reconnect with offline edits', () => {
  let server
  let clients = []

  before(async () => { server = await startServer() })
  afterEach(() => { for (const c of clients) c.destroy(); clients = [] })
  after(async () => { await server?.stop() })

  it('provider.disconnect(), offline edits, connect(): nothing is lost', async () => {
    const name = docName('offline')
    const a = makeClient(server.docUrl, name, PROVIDER_OPTIONS)
    const b = makeClient(server.docUrl, name, PROVIDER_OPTIONS)
    clients.push(a, b)
    await waitFor(() => a.provider.synced && b.provider.synced, { what: 'both synced' })
    a.t.insert(0, 'shared ')
    await waitFor(() => b.t.toString() === 'shared ', { what: 'b to see a\'s first edit' })

    a.provider.disconnect()
    await waitFor(() => !a.provider.wsconnected && a.provider.ws === null, { what: 'a disconnected' })
    a.t.insert(a.t.length, 'offline-A ')
    a.m.set('fromA', 'offline')
    a.a.push(['A1', 1])
    b.t.insert(0, 'online-B ')
    b.m.set('fromB', 2)
    await waitFor(() => a.t.toString() === 'shared offline-A ' && b.t.toString() === 'online-B shared ', {
      what: 'each side to hold only its own edits while a is offline'
    })

    a.provider.connect()
    await waitFor(() => a.provider.synced && converged([a, b]), {
      what: 'a and b to converge after a reconnects',
      details: () => describeClients([a, b])
    })
    const expected = {
      t: 'online-B shared offline-A ',
      m: { fromA: 'offline', fromB: 2 },
      a: ['A1', 1]
    }
    assert.deepEqual(a.json(), expected)
    assert.deepEqual(b.json(), expected)
    assert.deepEqual(await runRustDoc(server.url, name), expected)
  })

  it('the server dies and restarts on the same port: clients reconnect and rebuild the doc', async () => {
    const name = docName('restart')
    const a = makeClient(server.docUrl, name, PROVIDER_OPTIONS)
    const b = makeClient(server.docUrl, name, PROVIDER_OPTIONS)
    clients.push(a, b)
    await waitFor(() => a.provider.synced && b.provider.synced, { what: 'both synced' })
    a.t.insert(0, 'before ')
    b.a.push(['b0'])
    await waitFor(() => converged([a, b]) && a.t.length > 0 && a.a.length === 1, { what: 'initial edits on both' })

    const port = server.port
    const old = server
    server = null
    const exit = await old.kill()
    assert.equal(exit.signal, 'SIGKILL')
    await waitFor(() => !a.provider.wsconnected && !b.provider.wsconnected, {
      what: 'both providers to notice the server is gone'
    })

    // Offline edits on both sides (they cannot reach each other).
    a.t.insert(a.t.length, 'offline-A ')
    a.m.set('fromA', 'while down')
    a.a.push([41])
    b.t.insert(0, 'offline-B ')
    b.m.set('fromB', 42)
    // Let a few reconnect attempts fail against the closed port (pacing only).
    await sleep(300)
    assert.equal(a.provider.wsconnected || b.provider.wsconnected, false)

    // Same port; the old listening socket is gone with the process, retry briefly if not.
    for (let attempt = 1; ; attempt++) {
      try {
        server = await startServer({ bind: `127.0.0.1:${port}` })
        break
      } catch (e) {
        if (attempt >= 20) throw e
        await sleep(250)
      }
    }
    assert.equal(server.port, port)

    await waitFor(() => a.provider.synced && b.provider.synced && converged([a, b]), {
      timeout: 15000,
      what: 'a and b to reconnect to the new server and converge',
      details: () => describeClients([a, b]) + '\nserver log:\n' + server.tail(20)
    })
    const union = a.json()
    assert.equal(union.t, 'offline-B before offline-A ')
    assert.deepEqual(union.m, { fromA: 'while down', fromB: 42 })
    assert.deepEqual(union.a, ['b0', 41])
    assert.deepEqual(b.json(), union)

    // The new server's document was rebuilt from the clients.
    assert.deepEqual(await runRustDoc(server.url, name), union)
  })
})
