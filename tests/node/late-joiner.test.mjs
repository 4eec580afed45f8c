// A client that joins after a ~1 MB text was written gets the whole document from
// the server through sync step 2 (the writer is gone by then).

import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, makeClient, waitFor, describeClients, runRustDoc, mulberry32, docName, randomAscii
} from './helpers.mjs'

const TEXT_BYTES = 1024 * 1024
const CHUNK = 16 * 1024

describe('late joiner', () => {
  let server
  let clients = []

  before(async () => { server = await startServer() })
  afterEach(() => { for (const c of clients) c.destroy(); clients = [] })
  after(async () => { await server?.stop() })

  it('receives the whole doc, including a 1 MB text, through sync step 2', async () => {
    const name = docName('late')
    const big = randomAscii(mulberry32(7), TEXT_BYTES)

    const writer = makeClient(server.docUrl, name)
    const watcher = makeClient(server.docUrl, name)
    clients.push(writer, watcher)
    await waitFor(() => writer.provider.synced && watcher.provider.synced, { what: 'writer and watcher synced' })

    // 64 appends of 16 KiB, each its own transaction (and update).
    for (let off = 0; off < big.length; off += CHUNK) {
      writer.t.insert(off, big.slice(off, off + CHUNK))
    }
    writer.doc.transact(() => {
      writer.m.set('bytes', TEXT_BYTES)
      writer.m.set('by', 'writer')
      writer.a.push(['first', 1, 'last'])
    })
    assert.equal(writer.t.length, TEXT_BYTES)

    // The server has everything once another member got it all back from it.
    await waitFor(() => watcher.t.length === TEXT_BYTES && watcher.a.length === 3, {
      timeout: 15000,
      what: 'the watcher to receive the 1 MB text',
      details: () => describeClients([writer, watcher])
    })
    assert.equal(watcher.t.toString(), big)
    const expected = writer.json()

    // Nobody but the server holds the document any more.
    writer.destroy()
    watcher.destroy()

    const late = makeClient(server.docUrl, name)
    clients.push(late)
    let lengthAtSync = null
    late.provider.on('sync', (synced) => {
      if (synced && lengthAtSync === null) lengthAtSync = late.t.length
    })
    await waitFor(() => late.provider.synced, {
      timeout: 15000,
      what: 'the late joiner to report synced',
      details: () => describeClients([late]) + '\n' + server.tail(20)
    })
    assert.equal(late.provider.synced, true)
    assert.equal(lengthAtSync, TEXT_BYTES, 'the whole text was there when the provider reported synced (sync step 2)')
    assert.equal(late.t.toString(), big, 'the late joiner holds exactly the 1 MB text')
    assert.deepEqual(late.json(), expected)

    const rust = await runRustDoc(server.url, name, { timeout: 15 })
    assert.equal(rust.t.length, TEXT_BYTES)
    assert.ok(rust.t === big, 'the Rust client holds exactly the 1 MB text')
    assert.deepEqual(rust, expected)
  })
})
