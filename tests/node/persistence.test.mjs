// A document written by stock y-websocket clients survives a server restart: the
// server stores every update before relaying it, and a client joining the
// restarted server (same data directory) receives the full content.

import { describe, it, after } from 'node:test'
import { rmSync } from 'node:fs'
import assert from 'node:assert/strict'
import { startServer, makeClient, waitFor, runRustDoc, docName, canonical } from './helpers.mjs'

describe('persistence across a restart', () => {
  const servers = []
  const clients = []
  const dataDirs = []
  after(async () => {
    for (const c of clients) c.destroy()
    for (const s of servers) await s.stop()
    for (const d of dataDirs) rmSync(d, { recursive: true, force: true })
  })

  it('a doc written by y-websocket clients is there after a graceful restart', async () => {
    const first = await startServer()
    servers.push(first)
    first.keepData()
    dataDirs.push(first.dataDir)
    const name = docName('kept')
    const a = makeClient(first.docUrl, name)
    const b = makeClient(first.docUrl, name)
    clients.push(a, b)
    await waitFor(() => a.provider.synced && b.provider.synced, { what: 'both synced' })
    for (let i = 0; i < 50; i++) {
      a.t.insert(a.t.length, `a${i} `)
      b.m.set(`k${i % 7}`, i)
    }
    b.a.push(['x', 1, 'ü'])
    await waitFor(() => canonical(a.json()) === canonical(b.json()) && a.t.toString().includes('a49 '), {
      what: 'a and b to converge'
    })
    const expected = canonical(a.json())
    a.destroy()
    b.destroy()

    const exit = await first.stop()
    assert.equal(exit.code, 0, 'graceful stop exits 0')
    const second = await startServer({ dataDir: first.dataDir })
    servers.push(second)
    const late = makeClient(second.docUrl, name)
    clients.push(late)
    await waitFor(() => late.provider.synced && canonical(late.json()) === expected, {
      what: 'the late joiner to receive the whole stored doc',
      details: () => `got ${canonical(late.json())}\nwant ${expected}`
    })
    const rust = await runRustDoc(second.url, name)
    assert.equal(canonical(rust), expected, 'the Rust client sees the same stored doc')
  })
})
