// Document names in the URL: percent-decoded, query parameters not part of the
// name; names outside [A-Za-z0-9_.-] (or too long) are refused with HTTP 400.

import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, makeClient, waitFor, converged, describeClients, runRustDoc, refusedUpgrade, docName
} from './helpers.mjs'

describe('document names', () => {
  let server
  let clients = []

  before(async () => { server = await startServer() })
  afterEach(() => { for (const c of clients) c.destroy(); clients = [] })
  after(async () => { await server?.stop() })

  it('query parameters are not part of the name and the name is percent-decoded', async () => {
    const name = docName('names') // e.g. names-1234-1
    const encoded = name.replace(/-/g, '%2D')
    assert.notEqual(encoded, name)
    const withParams = makeClient(server.docUrl, name, { params: { token: 'x' } })
    const plain = makeClient(server.docUrl, name)
    const pct = makeClient(server.docUrl, encoded)
    clients = [withParams, plain, pct]
    assert.match(withParams.provider.url, /\?token=x$/)
    assert.ok(pct.provider.url.endsWith(`/doc/${encoded}`))
    await waitFor(() => clients.every((c) => c.provider.synced), { what: 'three providers synced' })

    withParams.t.insert(0, 'params ')
    plain.m.set('plain', 1)
    pct.a.push(['percent'])
    await waitFor(() => converged(clients) && withParams.a.length === 1 && pct.t.length > 0 && pct.m.has('plain'), {
      what: 'the three URLs to share one document',
      details: () => describeClients(clients)
    })
    const expected = { t: 'params ', m: { plain: 1 }, a: ['percent'] }
    for (const c of clients) assert.deepEqual(c.json(), expected)
    assert.deepEqual(await runRustDoc(server.url, name), expected)

    // The server saw one document under the decoded name.
    const created = server.records('room created').map((r) => r.fields.key).filter((k) => k.startsWith('doc/names-'))
    assert.deepEqual(created, [`doc/${name}`])
    const joined = server.records('joined').map((r) => r.span?.doc)
    assert.ok(joined.length >= 3, `joins logged: ${JSON.stringify(joined)}`)
    for (const doc of joined) assert.equal(doc, name)
  })

  it('a bad name is refused with HTTP 400 before the upgrade', async () => {
    const cases = [
      ['a space', encodeURIComponent('bad name')],
      ['a non-ASCII letter', encodeURIComponent('café')],
      ['an encoded slash', 'bad%2Fname'],
      ['a percent sign', 'bad%25name'],
      ['129 characters', 'a'.repeat(129)]
    ]
    for (const [label, path] of cases) {
      const { status, body } = await refusedUpgrade(`${server.docUrl}/${path}`)
      assert.equal(status, 400, `${label} (/doc/${path}): status, body ${JSON.stringify(body)}`)
      assert.match(body, /room name/, `${label}: the body says why`)
      console.log(`# /doc/${path.length > 40 ? path.slice(0, 20) + '...' : path}: ${status} ${body.trim()}`)
    }
    // 128 characters of the allowed alphabet are fine (control case).
    const ok = makeClient(server.docUrl, 'A-z_0.9'.padEnd(128, 'x'))
    clients.push(ok)
    await waitFor(() => ok.provider.synced, { what: 'a 128-character name to be accepted' })
  })
})
