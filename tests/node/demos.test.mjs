// The browser demos served at / (clients/web, embedded in the binary) in
// headless Chromium against a live server:
// - the index page links both demos and its forms open them;
// - arena: two pages in one room see each other; holding a key in one moves its
//   player, the other page sees it move within a second, and the mover's
//   predicted position converges to the server's once the key is released;
// - editor: two pages on one document (CodeMirror + y-websocket) see each
//   other's typing, cursor and name, and say they are connected;
// - no page logs a console error or throws.
//
// Chromium: $CHROMIUM_BIN, else /usr/bin/chromium. Full-page screenshots are
// written to tests/node/output/ (their paths are printed). The pages expose
// read-only test hooks: window.__arena and window.__editor.

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { startServer, waitFor, sleep } from './helpers.mjs'

const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium'
const OUTPUT_DIR = fileURLToPath(new URL('./output/', import.meta.url))
/** Longest wait for anything on a page. */
const UI_TIMEOUT = 10000
/** How long the arrow key is held. */
const HOLD_MS = 500

function launch () {
  return chromium.launch({
    executablePath: CHROMIUM_BIN,
    headless: true,
    timeout: 30000,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking']
  })
}

/** Every page opened, for the final console check. */
const pages = []

/** A fresh page in its own context (own storage, own connections) recording console errors. */
async function newPage (browser, viewport = { width: 1100, height: 900 }) {
  const context = await browser.newContext({ viewport })
  const page = await context.newPage()
  page.setDefaultTimeout(UI_TIMEOUT)
  page.consoleErrors = []
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.consoleErrors.push(`${msg.text()} (${msg.location()?.url ?? '?'})`)
  })
  page.on('pageerror', (err) => page.consoleErrors.push(`uncaught: ${err.stack || err}`))
  pages.push(page)
  return page
}

async function screenshot (page, name) {
  const path = join(OUTPUT_DIR, name)
  await page.screenshot({ path, fullPage: true })
  console.log(`demo screenshot: ${path}`)
}

/** Polls `fn` evaluated in `page` until truthy; returns its value. */
function waitInPage (page, fn, arg, what, timeout = UI_TIMEOUT) {
  let last
  return waitFor(async () => {
    last = await page.evaluate(fn, arg)
    return last
  }, { timeout, interval: 25, what, details: () => `last value: ${JSON.stringify(last)}` })
}

const arenaView = (page) => page.evaluate(() => {
  const a = window.__arena
  return { playerId: a.playerId, connected: a.connected, status: a.status, predicted: a.predicted(), server: a.server(), others: a.others(), ackMs: a.ackMs, tickRateHz: a.tickRateHz }
})

describe('browser demos', () => {
  let server
  let browser
  let base

  before(async () => {
    mkdirSync(OUTPUT_DIR, { recursive: true })
    server = await startServer({ args: ['--persistence', 'off'] })
    base = `http://127.0.0.1:${server.port}`
    browser = await launch()
  })

  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('serves the pages with a self-only CSP; other routes are untouched', async () => {
    for (const [path, type] of [
      ['/', 'text/html'], ['/index.html', 'text/html'], ['/arena.html', 'text/html'], ['/editor.html', 'text/html'],
      ['/arena.js', 'text/javascript'], ['/editor.js', 'text/javascript'], ['/demos.css', 'text/css']
    ]) {
      const res = await fetch(base + path, { signal: AbortSignal.timeout(5000) })
      assert.equal(res.status, 200, path)
      assert.ok(res.headers.get('content-type').startsWith(type), `${path}: ${res.headers.get('content-type')}`)
      assert.match(res.headers.get('content-security-policy'), /^default-src 'self'; script-src 'self';.*connect-src 'self' ws: wss:/)
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
      assert.equal(res.headers.get('cache-control'), 'no-cache')
      await res.arrayBuffer()
    }
    for (const [path, status] of [['/nope.js', 404], ['/healthz', 200], ['/readyz', 200], ['/metrics', 200], ['/dashboard', 200]]) {
      const res = await fetch(base + path, { signal: AbortSignal.timeout(5000) })
      assert.equal(res.status, status, path)
      await res.arrayBuffer()
    }
  })

  it('the index page links both demos, and its forms open them', async () => {
    const page = await newPage(browser, { width: 1000, height: 700 })
    await page.goto(`${base}/`)
    const hrefs = await page.locator('a[href]').evaluateAll((as) => as.map((a) => a.getAttribute('href')))
    assert.ok(hrefs.includes('/arena.html#lobby'), `links: ${hrefs}`)
    assert.ok(hrefs.includes('/editor.html#notes'), `links: ${hrefs}`)
    await screenshot(page, 'index.png')

    const room = `idx-${process.pid}`
    await page.locator('form[data-demo="arena"] input[name="room"]').fill(room)
    await page.locator('form[data-demo="arena"] button').click()
    await page.waitForURL(`${base}/arena.html#${room}`)
    await waitInPage(page, () => window.__arena?.connected && window.__arena.room, undefined, 'the arena page joined')
    assert.equal(await page.evaluate(() => window.__arena.room), room)

    // A new hash joins the new room.
    await page.evaluate(() => { location.hash = 'other-room' })
    await waitInPage(page, () => window.__arena.room === 'other-room' && window.__arena.connected, undefined, 'rejoined other-room')
    await page.context().close()
  })

  it('arena: a key held in one page moves its player in both; prediction converges', async () => {
    const room = `t-${process.pid}`
    const p1 = await newPage(browser)
    const p2 = await newPage(browser)
    for (const p of [p1, p2]) await p.goto(`${base}/arena.html#${room}`)
    for (const p of [p1, p2]) {
      await waitInPage(p, () => window.__arena?.connected && window.__arena.playerId !== null && window.__arena.predicted() !== null,
        undefined, 'joined with a position')
    }
    const id1 = await p1.evaluate(() => window.__arena.playerId)
    const id2 = await p2.evaluate(() => window.__arena.playerId)
    assert.notEqual(id1, id2)
    await waitInPage(p2, (id) => window.__arena.others().some((o) => o.id === id), id1, 'page 2 to see player 1')
    await waitInPage(p1, (id) => window.__arena.others().some((o) => o.id === id), id2, 'page 1 to see player 2')

    const start = await arenaView(p1)
    assert.equal(start.tickRateHz, 30)
    const seenBefore = (await arenaView(p2)).others.find((o) => o.id === id1)
    assert.ok(Math.abs(seenBefore.x - start.server.x) < 1, 'page 2 sees player 1 where the server has it')
    // Far from the right edge, so the move is not clamped (spawn x is 100..900).
    assert.ok(start.server.x <= 900, `spawn x ${start.server.x}`)

    // Timestamps taken inside the pages (one machine, one clock), so that the
    // test's own polling delays do not count: the key going down in page 1,
    // and page 2 first drawing player 1 elsewhere.
    await p1.evaluate(() => {
      window.__keyDownAt = null
      addEventListener('keydown', () => { window.__keyDownAt = Date.now() }, { capture: true, once: true })
    })
    await p2.evaluate(({ id, x }) => {
      window.__movedAt = null
      const timer = setInterval(() => {
        const o = window.__arena.others().find((o) => o.id === id)
        if (o !== undefined && o.x > x + 1) {
          window.__movedAt = Date.now()
          clearInterval(timer)
        }
      }, 5)
    }, { id: id1, x: seenBefore.x })
    const pressedAt = Date.now()
    await p1.keyboard.down('ArrowRight')
    const movedAt = await waitInPage(p2, () => window.__movedAt, undefined, 'page 2 to see player 1 move')
    const keyDownAt = await p1.evaluate(() => window.__keyDownAt)
    const seenAfterMs = movedAt - keyDownAt
    assert.ok(seenAfterMs < 1000, `page 2 saw the move ${seenAfterMs} ms after the key went down`)
    const moved = (await arenaView(p2)).others.find((o) => o.id === id1).x
    // The mover runs ahead of the server while the key is down.
    const during = await arenaView(p1)
    await sleep(Math.max(0, HOLD_MS - (Date.now() - pressedAt))) // pacing: hold the key ~500 ms
    await p1.keyboard.up('ArrowRight')
    const heldMs = Date.now() - pressedAt

    // After the release (zero input acknowledged), prediction and server agree.
    const settled = await waitInPage(p1, () => {
      const a = window.__arena
      const p = a.predicted()
      const s = a.server()
      const d = Math.hypot(p.x - s.x, p.y - s.y)
      return d < 1 ? { p, s, d } : false
    }, undefined, '|predicted - server| < 1 after release', 3000)
    // ...and stay so for a few ticks (no drift: the player has stopped).
    await sleep(200)
    const end = await arenaView(p1)
    assert.ok(Math.hypot(end.predicted.x - end.server.x, end.predicted.y - end.server.y) < 1,
      `predicted ${JSON.stringify(end.predicted)} vs server ${JSON.stringify(end.server)}`)
    assert.equal(end.server.y, start.server.y, 'moved along x only')
    const travelled = end.server.x - start.server.x
    // 200 units/s for about the time the key was held (± a few ticks of timing).
    assert.ok(travelled > 200 * (HOLD_MS / 1000) * 0.6 && travelled < 200 * (heldMs / 1000) + 30,
      `travelled ${travelled} in ${heldMs} ms`)
    assert.ok(end.ackMs !== null && end.ackMs >= 0, 'the input-to-ack latency was measured')

    // Page 2 ends up drawing player 1 where the server has it.
    await waitInPage(p2, ({ id, x }) => {
      const o = window.__arena.others().find((o) => o.id === id)
      return o !== undefined && Math.abs(o.x - x) < 1
    }, { id: id1, x: end.server.x }, 'page 2 to draw player 1 at its final position', 2000)
    console.log(`arena: page 2 saw the move after ${seenAfterMs} ms (x ${seenBefore.x.toFixed(1)} → ${moved.toFixed(1)}); ` +
      `while held, predicted x ${during.predicted.x.toFixed(1)} vs server ${during.server.x.toFixed(1)}; ` +
      `after release |predicted - server| = ${settled.d.toFixed(3)}; travelled ${travelled.toFixed(1)} in ${heldMs} ms; ` +
      `ack latency ${end.ackMs.toFixed(1)} ms`)

    // The overlay shows the figures.
    const overlay = await p1.locator('.overlay').innerText()
    assert.match(overlay, new RegExp(`player\\s+${id1}`))
    assert.match(overlay, /tick\s+30 Hz/)
    assert.match(overlay, /received\s+[\d.]+ (B|KiB)\/s/)
    assert.equal((await p1.locator('#status').innerText()).trim(), 'connected')

    await screenshot(p1, 'arena-1.png')
    await screenshot(p2, 'arena-2.png')
  })

  it('editor: each page sees the other\'s text, cursor and name', async () => {
    const doc = `t-${process.pid}`
    const e1 = await newPage(browser)
    const e2 = await newPage(browser)
    for (const p of [e1, e2]) await p.goto(`${base}/editor.html#${doc}`)
    for (const p of [e1, e2]) {
      await waitInPage(p, () => window.__editor?.status === 'connected' && window.__editor.synced, undefined, 'editor connected and synced')
    }
    const nameOf = (p) => p.evaluate(() => JSON.parse(sessionStorage.getItem('roomcast-editor-user')).name)
    const name1 = await nameOf(e1)
    const name2 = await nameOf(e2)

    const first = 'Hello from page one.'
    await e1.locator('.cm-content').click()
    await e1.keyboard.type(first)
    await waitInPage(e2, (t) => window.__editor.text().includes(t), first, 'page 2 to receive the text of page 1')

    const second = ' And hello from page two!'
    await e2.locator('.cm-content').click()
    await e2.keyboard.press('End')
    await e2.keyboard.type(second)
    await waitInPage(e1, (t) => window.__editor.text() === t, first + second, 'page 1 to receive the text of page 2')
    await waitInPage(e2, (t) => window.__editor.text() === t, first + second, 'page 2 to hold the same text')

    for (const [page, other] of [[e1, name2], [e2, name1]]) {
      await waitInPage(page, () => window.__editor.peers() === 1, undefined, 'one peer')
      // y-codemirror.next's remote caret, labelled with the other user's name.
      const caret = page.locator('.cm-ySelectionCaret .cm-ySelectionInfo', { hasText: other })
      await caret.first().waitFor({ state: 'visible', timeout: UI_TIMEOUT })
      const peers = await page.locator('#peers li').allInnerTexts()
      assert.equal(peers.length, 2, `who is here: ${peers}`)
      assert.ok(peers.some((p) => p.includes(other)), `who is here lists ${other}: ${peers}`)
      assert.equal((await page.locator('#status').innerText()).trim(), 'connected')
      // The text is on screen (without the remote caret, which sits inside it).
      const shown = await page.locator('.cm-content').evaluate((el) => {
        const copy = el.cloneNode(true)
        for (const caret of copy.querySelectorAll('.cm-ySelectionCaret')) caret.remove()
        return copy.textContent
      })
      assert.equal(shown, first + second)
    }
    await screenshot(e1, 'editor-1.png')
    await screenshot(e2, 'editor-2.png')
  })

  it('no page logged a console error or threw', () => {
    assert.ok(pages.length >= 5)
    assert.deepEqual(pages.flatMap((p) => p.consoleErrors), [])
  })
})
