// Check 2 of the Yjs compatibility suite: rich text in a Y.Text — insert with
// attributes, format with scalar and object-valued attributes (e.g. a link
// {href, target}) and their removal (null), insertEmbed with an object,
// applyDelta/toDelta round trips, concurrent overlapping formats. Two clients at
// human speed (the server keeps its default per-connection limits); toDelta() of
// every replica and of a late joiner equals the local Yjs merge.

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, sleep, Y } from '../helpers.mjs'
import { compatCheck, readRoots, typedDiff, viewOf, waitOrThrow, selfCheck } from './compat-helpers.mjs'

const ROOTS = { t: 'text' }
/** Pacing between two edits of one client (human speed; never a wait for a condition). */
const PACE_MS = 15

/** Waits until every client's Y.Text reads the same (both clients saw each other's edits). */
async function sameText (clients) {
  await waitOrThrow(clients, () => {
    const s = clients[0].doc.getText('t').toString()
    return clients.every((c) => c.doc.getText('t').toString() === s)
  }, { what: 'both clients to hold the same text' })
}

/** Extra check: toDelta() of every replica and the late joiner equals `expected` (typed, key order included). */
function deltaCheck (ctx, expected, name) {
  return [name, () => {
    const failures = []
    for (const c of [...ctx.clients, ctx.late]) {
      const got = viewOf(c.doc.getText('t'))
      failures.push(...typedDiff(expected, got, { mode: 'values' }).map((d) => `${c.label}: ${d}`))
      failures.push(...typedDiff(expected, got, { mode: 'order' }).map((d) => `${c.label} (key order): ${d}`))
    }
    assert.equal(failures.length, 0, failures.join('\n'))
  }]
}

describe('compat: rich text (Y.Text)', () => {
  let server
  before(async () => { server = await startServer() })
  after(async () => { await server?.stop() })

  it('insert with scalar attributes and format with scalar attributes (bold, italic, color, size) and their removal', async (t) => {
    await compatCheck(t, server, {
      prefix: 'rich-scalar',
      roots: ROOTS,
      async edit ([a, b]) {
        const ta = a.doc.getText('t')
        const tb = b.doc.getText('t')
        ta.insert(0, 'Hello world, ', { bold: true })
        await sleep(PACE_MS)
        tb.insert(0, 'plain ', {})
        await sameText([a, b])
        ta.insert(ta.length, 'colored 😀 text', { color: '#ff0000', size: 14 })
        tb.format(0, 5, { italic: true })
        await sleep(PACE_MS)
        tb.insert(tb.length, ' tail', { italic: true, bold: false })
        await sameText([a, b])
        ta.format(2, 10, { bold: null })
        await sleep(PACE_MS)
        tb.format(6, 4, { size: 20 })
        await sleep(PACE_MS)
        ta.format(0, ta.length, { color: null })
      }
    })
  })

  it('format with object-valued attributes ({link: {href, target}}, nested objects) and their removal (null)', async (t) => {
    await compatCheck(t, server, {
      prefix: 'rich-object-format',
      roots: ROOTS,
      async edit ([a, b]) {
        const ta = a.doc.getText('t')
        const tb = b.doc.getText('t')
        ta.insert(0, 'Visit our site and read the comment here. Ünïcødé 😀 too.')
        await sameText([a, b])
        ta.format(0, 14, { link: { href: 'https://example.com/a?b=c&d=é', target: '_blank' } })
        await sleep(PACE_MS)
        tb.format(19, 11, { comment: { id: 'c1', author: { name: 'Zoë 😀', id: 7 }, resolved: false, replies: [{ by: 'x', at: 1 }] } })
        await sleep(PACE_MS)
        // 'Ünïcødé 😀' is 10 UTF-16 units: the range ends after the whole emoji (a range
        // ending inside a surrogate pair makes Yjs itself replace both halves with U+FFFD).
        tb.format(tb.toString().indexOf('Ünïcødé'), 10, { style: { a: 1, b: 2, c: 3, d: 4, e: 5 } })
        await sameText([a, b])
        ta.format(5, 4, { link: null })
        await sleep(PACE_MS)
        tb.format(19, 5, { comment: null })
        await sleep(PACE_MS)
        ta.insert(ta.length, ' new link', { link: { target: '_self', href: '/local', rel: 'noopener' } })
      }
    })
  })

  it('insertEmbed with an object (and with attributes)', async (t) => {
    await compatCheck(t, server, {
      prefix: 'rich-embed',
      roots: ROOTS,
      async edit ([a, b]) {
        const ta = a.doc.getText('t')
        const tb = b.doc.getText('t')
        ta.insert(0, 'before after')
        await sameText([a, b])
        ta.insertEmbed(7, { image: { src: 'https://example.com/i.png', alt: 'an image 😀', width: 300, height: 200 } })
        await sleep(PACE_MS)
        tb.insertEmbed(0, { formula: 'e=mc^2' })
        await sleep(PACE_MS)
        tb.insertEmbed(tb.length, { video: 'https://example.com/v.mp4' }, { align: 'center', caption: { text: 'a video', lang: 'en' } })
        await sleep(PACE_MS)
        ta.insertEmbed(3, { mention: { id: 42, name: 'Zoë' } }, { bold: true })
      }
    })
  })

  it('applyDelta/toDelta round trip: the delta applied on one client is what everyone reads', async (t) => {
    const delta1 = [
      { insert: 'Heading 😀', attributes: { header: 1 } },
      { insert: '\n' },
      { insert: 'bold', attributes: { bold: true } },
      { insert: ' and ' },
      { insert: 'a link', attributes: { link: { href: 'https://example.com', target: '_blank' } } },
      { insert: { image: { src: 'x.png', alt: 'x' } } },
      { insert: ' tail\n' }
    ]
    const delta2 = [
      { retain: 3 },
      { retain: 4, attributes: { italic: true } },
      { delete: 2 },
      { insert: 'INSERTED', attributes: { color: { r: 1, g: 2, b: 3 } } },
      { retain: 5, attributes: { header: null } }
    ]
    // What Yjs itself makes of these deltas (an offline doc), to compare with.
    const offline = new Y.Doc()
    offline.getText('t').applyDelta(delta1)
    offline.getText('t').applyDelta(delta2)
    const expected = viewOf(offline.getText('t'))
    await compatCheck(t, server, {
      prefix: 'rich-delta',
      roots: ROOTS,
      async edit ([a, b]) {
        a.doc.getText('t').applyDelta(delta1)
        await sameText([a, b])
        b.doc.getText('t').applyDelta(delta2)
      },
      extra: (ctx) => [
        deltaCheck(ctx, expected, 'toDelta() of every replica and the late joiner equals Yjs\'s own result of the deltas'),
        selfCheck(ctx, 'the local Yjs merge reads as the offline doc', () => {
          assert.deepEqual(typedDiff(readRoots(offline, ROOTS), readRoots(ctx.ref, ROOTS)), [])
        })
      ]
    })
  })

  it('concurrent formats over overlapping ranges (same and different keys, scalar and object values)', async (t) => {
    await compatCheck(t, server, {
      prefix: 'rich-concurrent',
      roots: ROOTS,
      async edit ([a, b]) {
        const ta = a.doc.getText('t')
        const tb = b.doc.getText('t')
        ta.insert(0, 'The quick brown fox jumps over the lazy dog. 😀 ÄÖÜ 中文')
        await sameText([a, b])
        for (let round = 0; round < 5; round++) {
          // Same tick: neither has seen the other's edit when making its own.
          ta.format(round * 3, 12, { bold: true, link: { href: `https://a.example/${round}`, title: `A${round}` } })
          tb.format(round * 3 + 5, 12, { bold: round % 2 === 0 ? null : false, color: `#00${round}` })
          ta.insert(round * 7, `[a${round}]`, { italic: true })
          tb.insert(round * 5, `[b${round}]`, { link: { title: `B${round}`, href: `https://b.example/${round}` } })
          await sameText([a, b])
          await sleep(PACE_MS)
        }
      }
    })
  })

  it('formats and embeds yrs cannot parse as written: a lone UTF-16 surrogate, nesting past 128 levels', async (t) => {
    // JSON.stringify escapes a lone surrogate ("\ud83d") and serde_json refuses
    // it; 200 nested arrays are past serde_json's recursion limit. Both are
    // what a stock client writes; the server must take and relay them as written.
    let deep = 'core'
    for (let i = 0; i < 200; i++) deep = [deep]
    await compatCheck(t, server, {
      prefix: 'rich-unparsable',
      roots: ROOTS,
      async edit ([a, b]) {
        const ta = a.doc.getText('t')
        ta.insert(0, 'half an emoji, deep embed: ')
        await sameText([a, b])
        ta.format(0, 4, { note: '\ud83d' })
        await sleep(PACE_MS)
        b.doc.getText('t').insertEmbed(5, { deep })
        await sameText([a, b])
        b.doc.getText('t').format(5, 10, { title: 'x\udc00y', link: { href: 'https://example.com/\ud800' } })
        await sleep(PACE_MS)
      }
    })
  })
})
