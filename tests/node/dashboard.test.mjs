// The operator dashboard (/dashboard) in headless Chromium against a live server:
// 3 game clients in arena room A, 1 in room B, 2 y-websocket clients on one doc.
// Signs in, reads the rooms table, opens room A (members, state JSON), takes and
// views a snapshot, restores it, closes the room
// through the UI; also a wrong token, the API switched off, persistence off.
// The page must log no console error and throw nothing.
//
// Chromium: $CHROMIUM_BIN, else /usr/bin/chromium. A full-page screenshot of the
// room view is written to tests/node/output/ (its path is printed).

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { startServer, makeClient, waitFor, openRawWs, closeOf, converged, describeClients } from './helpers.mjs'

const TOKEN = `dashboard-token-${process.pid}`
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium'
const OUTPUT_DIR = fileURLToPath(new URL('./output/', import.meta.url))
/** Longest wait for anything on the page (the page refreshes every 2 s). */
const UI_TIMEOUT = 10000

const vectors = JSON.parse(readFileSync(new URL('../../shared/golden/vectors.json', import.meta.url), 'utf8'))
const JOIN = Buffer.from(vectors.find((v) => v.name === 'join').hex, 'hex')

/** A game client that joined `game/room` (it sends nothing else; ws answers pings). */
async function joinGame (server, game, room) {
  const ws = await openRawWs(`${server.url}/game/${game}/${room}`)
  ws.send(JOIN)
  return ws
}

/** An admin API call from Node: {status, body}. */
async function apiCall (server, method, path, { token = TOKEN, body } = {}) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {}
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const res = await fetch(`http://127.0.0.1:${server.port}/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5000)
  })
  const text = await res.text()
  let json = null
  try { json = JSON.parse(text) } catch {}
  return { status: res.status, body: json ?? text }
}

/** Members per room id, from the API. */
async function memberCounts (server) {
  const { status, body } = await apiCall(server, 'GET', '/rooms?limit=500')
  assert.equal(status, 200, JSON.stringify(body))
  return Object.fromEntries(body.rooms.map((r) => [r.id, r.members]))
}

function launch () {
  return chromium.launch({
    executablePath: CHROMIUM_BIN,
    headless: true,
    timeout: 30000,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking']
  })
}

/**
 * A fresh page (own context, so own sessionStorage) that records console errors
 * and uncaught exceptions, and accepts confirm() dialogs (recording them).
 */
async function newPage (browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  page.setDefaultTimeout(UI_TIMEOUT)
  page.consoleErrors = []
  page.dialogs = []
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.consoleErrors.push(`${msg.text()} (${msg.location()?.url ?? '?'})`)
  })
  page.on('pageerror', (err) => page.consoleErrors.push(`uncaught: ${err.stack || err}`))
  page.on('dialog', (dialog) => {
    page.dialogs.push(dialog.message())
    dialog.accept().catch(() => {})
  })
  return page
}

/** The trimmed text of the first match of `selector` once it equals/matches `expected`. */
async function waitText (page, selector, expected, what = selector) {
  let last
  return waitFor(async () => {
    last = (await page.locator(selector).first().textContent({ timeout: 500 }).catch(() => null))?.trim()
    if (last === undefined || last === null) return false
    return (expected instanceof RegExp ? expected.test(last) : last === expected) ? last : false
  }, { timeout: UI_TIMEOUT, interval: 100, what: `${what} to read ${expected}`, details: () => `last read: ${JSON.stringify(last)}` })
}

async function signIn (page, token) {
  await page.locator('#token-input').fill(token)
  await page.locator('#token-submit').click()
}

describe('operator dashboard', () => {
  let server
  let browser
  let page
  const games = { A: [], B: [] }
  const docs = []
  const extraServers = []

  before(async () => {
    mkdirSync(OUTPUT_DIR, { recursive: true })
    server = await startServer({ args: ['--admin-token', TOKEN] })
    for (let i = 0; i < 3; i++) games.A.push(await joinGame(server, 'arena', 'A'))
    games.B.push(await joinGame(server, 'arena', 'B'))
    docs.push(makeClient(server.docUrl, 'notes'), makeClient(server.docUrl, 'notes'))
    await waitFor(() => docs.every((c) => c.provider.synced), { what: 'doc clients synced' })
    docs[0].t.insert(0, 'Meeting notes: ship the dashboard.\n')
    docs[1].t.insert(docs[1].t.length, 'Second writer was here.\n')
    await waitFor(() => converged(docs) && docs[0].t.length > 40, {
      what: 'doc clients converged', details: () => describeClients(docs)
    })
    // The server itself agrees before the page is asked to show it.
    await waitFor(async () => {
      const m = await memberCounts(server)
      return m['arena:A'] === 3 && m['arena:B'] === 1 && m.notes === 2
    }, { what: 'the API to list 3, 1 and 2 members', details: () => server.tail() })
    browser = await launch()
    page = await newPage(browser)
  })

  after(async () => {
    await browser?.close()
    for (const ws of [...games.A, ...games.B]) ws.terminate()
    for (const c of docs) c.destroy()
    for (const s of [server, ...extraServers]) await s?.stop()
  })

  it('serves the page with a self-only CSP and nosniff; unknown files are 404', async () => {
    const base = `http://127.0.0.1:${server.port}`
    for (const [path, type] of [
      ['/dashboard', 'text/html'], ['/dashboard/', 'text/html'],
      ['/dashboard/dashboard.js', 'text/javascript'], ['/dashboard/dashboard.css', 'text/css']
    ]) {
      const res = await fetch(base + path, { signal: AbortSignal.timeout(5000) })
      assert.equal(res.status, 200, path)
      assert.ok(res.headers.get('content-type').startsWith(type), `${path}: ${res.headers.get('content-type')}`)
      assert.match(res.headers.get('content-security-policy'), /default-src 'self'.*script-src 'self'.*frame-ancestors 'none'/)
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
      assert.equal(res.headers.get('cache-control'), 'no-cache')
      await res.arrayBuffer()
    }
    const missing = await fetch(`${base}/dashboard/nope.js`, { signal: AbortSignal.timeout(5000) })
    assert.equal(missing.status, 404)
    await missing.arrayBuffer()
  })

  it('a wrong token shows an error and asks again', async () => {
    const wrong = await newPage(browser)
    try {
      await wrong.goto(`http://127.0.0.1:${server.port}/dashboard`)
      await wrong.locator('#token-input').waitFor()
      await signIn(wrong, 'not-the-token')
      await waitText(wrong, '#login-error', /invalid admin token.*403/)
      assert.ok(await wrong.locator('#token-input').isVisible(), 'the token form is shown again')
      assert.ok(await wrong.locator('#rooms-view').isHidden(), 'no rooms are shown')
      assert.equal(await wrong.evaluate(() => sessionStorage.length), 0, 'the wrong token is not kept')
      // Chromium logs the refused request itself; nothing else may be logged.
      const unexpected = wrong.consoleErrors.filter((e) => !/status of 403/.test(e))
      assert.deepEqual(unexpected, [])
    } finally {
      await wrong.context().close()
    }
  })

  it('lists the rooms with their member counts', async () => {
    await page.goto(`http://127.0.0.1:${server.port}/dashboard`)
    await signIn(page, TOKEN)
    const members = (id) => `#rooms-table tr[data-room-id="${id}"] td[data-col="members"]`
    await waitText(page, members('arena:A'), '3')
    await waitText(page, members('arena:B'), '1')
    await waitText(page, members('notes'), '2')
    await waitText(page, '#rooms-total', /^3 rooms/)
    await waitText(page, '#rooms-refreshed', /^refreshed /)
    await waitText(page, '#rooms-table tr[data-room-id="arena:A"] td[data-col="kind"]', 'game')
    await waitText(page, '#rooms-table tr[data-room-id="notes"] td[data-col="kind"]', 'doc')
    await waitText(page, '#rooms-table tr[data-room-id="arena:A"] td[data-col="tick-rate"]', '30 Hz')
    await waitText(page, '#rooms-table tr[data-room-id="notes"] td[data-col="doc-size"]', /\d+ B$/)

    // Sorted by members, busiest first; then the kind filter.
    await page.locator('#rooms-table button[data-sort="members"]').click()
    await waitFor(async () => {
      const ids = await page.locator('#rooms-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.roomId))
      return ids.join(',') === 'arena:A,notes,arena:B'
    }, { what: 'rows sorted by members' })
    await page.locator('#kind-filter').selectOption('doc')
    await waitFor(async () => (await page.locator('#rooms-body tr').count()) === 1, { what: 'only the doc room' })
    await page.locator('#kind-filter').selectOption('')
    await page.locator('#text-filter').fill('arena')
    await waitFor(async () => (await page.locator('#rooms-body tr').count()) === 2, { what: 'only arena rooms' })
    await page.locator('#text-filter').fill('')
    await waitFor(async () => (await page.locator('#rooms-body tr').count()) === 3, { what: 'all rooms again' })
    const shot = join(OUTPUT_DIR, 'dashboard-rooms.png')
    await page.screenshot({ path: shot, fullPage: true })
    console.log(`dashboard screenshot: ${shot}`)
  })

  it('opens room A: 3 members, the state as JSON, figures', async () => {
    await page.locator('#rooms-table tr[data-room-id="arena:A"] a').click()
    await page.waitForURL(/#\/room\/game\/arena:A$/)
    await page.locator('#room-view').waitFor()
    await waitText(page, '#room-title', 'game room arena:A')
    await waitFor(async () => (await page.locator('#room-members-body tr').count()) === 3, {
      what: '3 member rows', timeout: UI_TIMEOUT
    })
    const head = await page.locator('#room-members-head th').allTextContents()
    assert.deepEqual(head, ['player', 'conn', 'connected', 'outbox', 'frames skipped', 'latency ms'])
    const state = await waitText(page, '#room-state', /^\{[\s\S]*\}$/, 'the state JSON')
    assert.equal(typeof JSON.parse(state), 'object')
    await waitText(page, '#room-figures dd[data-figure="game"]', 'arena')
    await waitText(page, '#room-figures dd[data-figure="tick-rate"]', '30 Hz')
  })

  let snapshotId
  it('takes a snapshot through the UI; it is listed and can be viewed', async () => {
    await page.locator('#take-snapshot').click()
    const status = await waitText(page, '#status', /snapshot #\d+ of arena:A taken/)
    snapshotId = status.match(/snapshot #(\d+)/)[1]
    const row = page.locator(`#snapshots-table tr[data-snapshot-id="${snapshotId}"]`)
    await row.waitFor()
    assert.equal(await row.locator('button.restore-snapshot').count(), 1, 'the row has a restore button')
    await row.locator('button.view-snapshot').click()
    await page.locator('#snapshot-view').waitFor()
    const json = await waitText(page, '#snapshot-json', /"state"/, 'the snapshot JSON')
    assert.equal(JSON.parse(json).snapshot.id, Number(snapshotId))

    const shot = join(OUTPUT_DIR, 'dashboard-room.png')
    await page.screenshot({ path: shot, fullPage: true })
    console.log(`dashboard screenshot: ${shot}`)
  })

  it('restores the snapshot through the UI', async () => {
    const dialogs = page.dialogs.length
    const row = page.locator(`#snapshots-table tr[data-snapshot-id="${snapshotId}"]`)
    await row.locator('button.restore-snapshot').click()
    await waitText(page, '#status', new RegExp(`arena:A restored from snapshot #${snapshotId}$`))
    assert.match(page.dialogs[dialogs] ?? '', /Restore game room arena:A to snapshot/)
  })

  it('closes room A through the UI: members get 1001 and it leaves the list', async () => {
    const closes = games.A.map((ws) => closeOf(ws, { timeout: UI_TIMEOUT }))
    const dialogs = page.dialogs.length
    await page.locator('#close-room').click()
    const codes = (await Promise.all(closes)).map((c) => c.code)
    assert.deepEqual(codes, [1001, 1001, 1001])
    assert.match(page.dialogs[dialogs] ?? '', /Close game room arena:A/)
    await waitText(page, '#status', /game room arena:A closed$/)
    await page.waitForURL(/#\/$/)
    await waitFor(async () =>
      (await page.locator('#rooms-table tr[data-room-id="arena:A"]').count()) === 0 &&
      (await page.locator('#rooms-table tr[data-room-id="arena:B"]').count()) === 1, {
      what: 'arena:A gone from the list, arena:B still there', timeout: UI_TIMEOUT
    })
    await waitText(page, '#rooms-total', /^2 rooms/)
  })

  it('opens the doc room: 2 members with the doc columns', async () => {
    await page.locator('#rooms-table tr[data-room-id="notes"] a').click()
    await page.waitForURL(/#\/room\/doc\/notes$/)
    await waitText(page, '#room-title', 'doc room notes')
    await waitFor(async () => (await page.locator('#room-members-body tr').count()) === 2, { what: '2 member rows' })
    const head = await page.locator('#room-members-head th').allTextContents()
    assert.deepEqual(head, ['conn', 'connected', 'outbox', 'latency ms'])
    await waitText(page, '#room-figures dd[data-figure="doc-size"]', /\d+ B$/)
    await page.locator('#back-to-list').click()
    await page.waitForURL(/#\/$/)
    await page.locator('#rooms-view').waitFor()
  })

  it('forgets the token on sign-out', async () => {
    await page.locator('#sign-out').click()
    await page.locator('#token-input').waitFor()
    assert.equal(await page.evaluate(() => sessionStorage.length), 0)
  })

  it('logged no console error and threw nothing', () => {
    assert.deepEqual(page.consoleErrors, [])
  })

  it('persistence off: the room view says there are no snapshots; a linked room opens after sign-in', async () => {
    const ephemeral = await startServer({ args: ['--admin-token', TOKEN, '--persistence', 'off'] })
    extraServers.push(ephemeral)
    const ws = await joinGame(ephemeral, 'arena', 'solo')
    const p = await newPage(browser)
    try {
      await waitFor(async () => (await memberCounts(ephemeral))['arena:solo'] === 1, { what: 'arena:solo joined' })
      await p.goto(`http://127.0.0.1:${ephemeral.port}/dashboard#/room/game/arena:solo`)
      await signIn(p, TOKEN)
      await waitText(p, '#room-title', 'game room arena:solo')
      await waitText(p, '#snapshots-message', /persistence is off/)
      assert.ok(await p.locator('#snapshots-table').isHidden())
      await waitFor(async () => (await p.locator('#room-members-body tr').count()) === 1, { what: '1 member row' })
    } finally {
      ws.terminate()
      await p.context().close()
    }
  })

  it('API disabled: the sign-in form says how to enable it', async () => {
    const closed = await startServer({ args: ['--persistence', 'off'] })
    extraServers.push(closed)
    const p = await newPage(browser)
    try {
      await p.goto(`http://127.0.0.1:${closed.port}/dashboard`)
      await signIn(p, TOKEN)
      await waitText(p, '#login-error', 'the admin API is disabled: set ROOMCAST_ADMIN_TOKEN')
    } finally {
      await p.context().close()
    }
  })
})
