// Check 8 of the Yjs compatibility suite: a seeded random differential test.
// Three stock clients make 1500 random edits each, concurrently, on every shared
// type — Y.Text with formats and embeds, Y.Map, Y.Array, nested Y.Map/Y.Array,
// Y.XmlFragment / Y.XmlElement (attributes) / Y.XmlText (formats) — with every
// value kind of the JSON-values check (objects of 2, 5 and 20 keys, nesting,
// Uint8Array, null, booleans, large/negative numbers, -0, floats, bigint, long
// strings, non-BMP text), and with disconnects and abrupt drops sprinkled in.
// Every update a client makes is also applied to a local reference Y.Doc (the
// merge Yjs itself computes). At the end every client and the server's copy (a
// fresh client) equal the reference. Zero refusals, zero closes the test did not
// cause. ROOMCAST_TEST_SEED sets the seed (printed). Programmatic writers: the
// per-connection limits are lifted.

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, mulberry32, sleep, Y } from '../helpers.mjs'
import { compatCheck, PROGRAMMATIC_LIMITS, tick, selfCheck } from './compat-helpers.mjs'

const SEED = Number(process.env.ROOMCAST_TEST_SEED ?? 20240611)
const CLIENTS = 3
const OPS_PER_CLIENT = 1500
const ROOTS = { t: 'text', m: 'map', a: 'array', x: 'xml' }

const CHARS = [...'abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789.,\n', 'é', 'ß', '中', '文', '😀', '🎉', '𝔘', '𠜎', '👩‍💻', 'e\u0301']
const MAP_KEYS = [...Array.from({ length: 16 }, (_, i) => `k${i}`), '😀', 'ключ', '中文', 'a b']
const NODE_NAMES = ['p', 'h1', 'blockquote', 'li', 'custom-node']

/** Random helpers over one seeded generator. */
function randomness (seed) {
  const rng = mulberry32(seed)
  const int = (n) => Math.floor(rng() * n)
  const pick = (xs) => xs[int(xs.length)]
  const text = (maxCodePoints = 8) => {
    let s = ''
    for (let i = 0, n = 1 + int(maxCodePoints); i < n; i++) s += pick(CHARS)
    return s
  }
  const key = (used) => {
    for (;;) {
      let k = ''
      for (let i = 0, n = 1 + int(10); i < n; i++) k += pick('abcdefghijklmnopqrstuvwxyzABCDEFGHIJ_'.split(''))
      if (rng() < 0.1) k += pick(['😀', 'ü', '中'])
      if (!used.has(k)) { used.add(k); return k }
    }
  }
  const objectOf = (size, value) => {
    const used = new Set()
    const o = {}
    for (let i = 0; i < size; i++) o[key(used)] = value()
    return o
  }
  const BIGINTS = [5n, -5n, 0n, -(2n ** 62n), 2n ** 63n - 1n, -(2n ** 63n)]
  const NUMBERS = [0, 1, -1, 42, -7, 2 ** 31, 2 ** 31 - 1, -(2 ** 31), 2 ** 53 - 1, -(2 ** 53 - 1), 1e300, -1e300, 5e-324, 0.1, -0.5, 1.5, 3.141592653589793]
  /** Any value Yjs stores as ContentAny (or ContentBinary at the top level). */
  const any = (depth = 2) => {
    const r = rng()
    if (r < 0.12) return pick(NUMBERS)
    if (r < 0.17) return -0
    if (r < 0.22) return (int(2e6) - 1e6) / 16
    if (r < 0.28) return rng() < 0.5 ? pick(BIGINTS) : BigInt(int(2 ** 31)) * BigInt(int(2 ** 31)) * (rng() < 0.5 ? -1n : 1n)
    if (r < 0.33) return rng() < 0.5
    if (r < 0.37) return null
    if (r < 0.50) return text(12)
    if (r < 0.503 && depth === 2) return 'long string 😀 '.repeat(7000) // ~100 kB, now and then at the top level
    if (r < 0.56) return Uint8Array.from({ length: int(64) }, () => int(256))
    if (depth > 0 && r < 0.80) return objectOf(pick([1, 2, 2, 5, 5, 20]), () => any(depth - 1))
    if (depth > 0) return Array.from({ length: int(5) }, () => any(depth - 1))
    return int(1000)
  }
  /** A value JSON keeps as it is (format attributes and embeds are stored as JSON). */
  const json = (depth = 2) => {
    const r = rng()
    if (r < 0.2) return int(2e6) - 1e6
    if (r < 0.3) return (int(2e6) - 1e6) / 8
    if (r < 0.5) return text(8)
    if (r < 0.6) return rng() < 0.5
    if (r < 0.65) return null
    if (depth > 0 && r < 0.9) return objectOf(pick([1, 2, 5]), () => json(depth - 1))
    if (depth > 0) return Array.from({ length: int(4) }, () => json(depth - 1))
    return text(4)
  }
  const formatAttrs = () => pick([
    () => ({ bold: true }),
    () => ({ bold: null }),
    () => ({ italic: rng() < 0.5 ? true : null }),
    () => ({ color: `#${int(0xffffff).toString(16).padStart(6, '0')}` }),
    () => ({ size: 8 + int(30) }),
    () => ({ link: { href: `https://example.com/${text(4)}`, target: pick(['_blank', '_self']) } }),
    () => ({ link: null }),
    () => ({ comment: { id: int(1000), author: { name: text(5), id: int(100) }, resolved: rng() < 0.5 } }),
    () => ({ data: json(2) })
  ])()
  const embed = () => pick([
    () => ({ image: { src: `https://example.com/${int(100)}.png`, alt: text(5), width: int(800) } }),
    () => ({ formula: text(6) }),
    () => ({ custom: json(2) }) // an embed is an object (Yjs refuses null and scalars)
  ])()
  return { rng, int, pick, text, any, json, formatAttrs, embed }
}

/** The text of a Y.Text/Y.XmlText with one placeholder per embed: its indexes are the type's. */
function shapeOf (ytext) {
  return ytext.toDelta().map((op) => (typeof op.insert === 'string' ? op.insert : '\uFFFC')).join('')
}
/** An index moved off the middle of a surrogate pair (Yjs would replace both halves with U+FFFD). */
function safeIndex (shape, i) {
  const hi = shape.charCodeAt(i - 1)
  const lo = shape.charCodeAt(i)
  return i > 0 && hi >= 0xD800 && hi <= 0xDBFF && lo >= 0xDC00 && lo <= 0xDFFF ? i - 1 : i
}
/** A random range [index, length] of `ytext` that splits no surrogate pair. */
function safeRange (R, ytext, maxLen) {
  const shape = shapeOf(ytext)
  const from = safeIndex(shape, R.int(shape.length + 1))
  const to = safeIndex(shape, Math.min(shape.length, from + 1 + R.int(maxLen)))
  return [from, Math.max(0, to - from)]
}

function editText (R, ytext, big) {
  const r = R.rng()
  if (big || (r < 0.25 && ytext.length > 0)) {
    const [i, n] = safeRange(R, ytext, 12)
    if (n > 0) ytext.delete(i, n)
  } else if (r < 0.6) {
    const i = safeIndex(shapeOf(ytext), R.int(ytext.length + 1))
    if (R.rng() < 0.3) ytext.insert(i, R.text(), R.formatAttrs())
    else ytext.insert(i, R.text())
  } else if (r < 0.85) {
    const [i, n] = safeRange(R, ytext, 20)
    if (n > 0) ytext.format(i, n, R.formatAttrs())
  } else {
    const i = safeIndex(shapeOf(ytext), R.int(ytext.length + 1))
    if (R.rng() < 0.5) ytext.insertEmbed(i, R.embed())
    else ytext.insertEmbed(i, R.embed(), R.formatAttrs())
  }
}

/** A new Y.Map or Y.Array (integrated by the caller, then filled). */
function newNested (R) {
  return R.rng() < 0.5 ? new Y.Map() : new Y.Array()
}
function fillNested (R, type) {
  if (type instanceof Y.Map) {
    for (let i = 0, n = R.int(4); i < n; i++) type.set(R.pick(MAP_KEYS), R.any())
  } else {
    type.push(Array.from({ length: R.int(4) }, () => arrayItem(R)))
  }
}
/** A Y.Array item: bigint is not accepted as a Y.Array item of its own (Yjs), wrap it. */
function arrayItem (R) {
  const v = R.any()
  return typeof v === 'bigint' ? [v] : v
}

/** Nested Y.Map/Y.Array under the map and array roots, with their depth. */
function nestedTypes (doc) {
  const out = []
  const visit = (v, depth) => {
    if (v instanceof Y.Map) {
      out.push([v, depth])
      if (depth < 4) for (const x of v.values()) visit(x, depth + 1)
    } else if (v instanceof Y.Array) {
      out.push([v, depth])
      if (depth < 4) for (const x of v.toArray()) visit(x, depth + 1)
    }
  }
  for (const v of doc.getMap('m').values()) visit(v, 1)
  for (const v of doc.getArray('a').toArray()) visit(v, 1)
  return out
}

function editMap (R, m) {
  const r = R.rng()
  const key = R.pick(MAP_KEYS)
  if (r < 0.2 && m.has(key)) m.delete(key)
  else if (r < 0.35) fillNested(R, m.set(key, newNested(R)))
  else m.set(key, R.any())
}

function editArray (R, a) {
  const r = R.rng()
  if ((r < 0.3 || a.length > 150) && a.length > 0) {
    const i = R.int(a.length)
    a.delete(i, Math.min(a.length - i, 1 + R.int(3)))
  } else if (r < 0.45) {
    const nested = newNested(R)
    a.insert(R.int(a.length + 1), [nested])
    fillNested(R, nested)
  } else {
    a.insert(R.int(a.length + 1), Array.from({ length: 1 + R.int(3) }, () => arrayItem(R)))
  }
}

function editNested (R, doc) {
  const all = nestedTypes(doc)
  if (all.length === 0) return editMap(R, doc.getMap('m'))
  const [type, depth] = R.pick(all)
  if (type instanceof Y.Map) {
    const key = R.pick(MAP_KEYS)
    const r = R.rng()
    if (r < 0.25 && type.has(key)) type.delete(key)
    else if (r < 0.4 && depth < 3) fillNested(R, type.set(key, newNested(R)))
    else type.set(key, R.any())
  } else {
    const r = R.rng()
    if ((r < 0.3 || type.length > 30) && type.length > 0) {
      const i = R.int(type.length)
      type.delete(i, Math.min(type.length - i, 1 + R.int(2)))
    } else if (r < 0.45 && depth < 3) {
      const nested = newNested(R)
      type.insert(R.int(type.length + 1), [nested])
      fillNested(R, nested)
    } else {
      type.insert(R.int(type.length + 1), [arrayItem(R)])
    }
  }
}

/** Every Y.XmlElement (and the fragment) and every Y.XmlText under the root fragment. */
function xmlNodes (fragment) {
  const parents = [fragment]
  const texts = []
  const visit = (node) => {
    for (const child of node.toArray()) {
      if (child instanceof Y.XmlElement) { parents.push(child); visit(child) } else if (child instanceof Y.XmlText) texts.push(child)
    }
  }
  visit(fragment)
  return { parents, texts }
}

function attrValue (R) {
  return R.rng() < 0.6 ? R.text(6) : R.any(1)
}

function editXml (R, fragment) {
  const { parents, texts } = xmlNodes(fragment)
  const r = R.rng()
  if (r < 0.3 && texts.length > 0) return editText(R, R.pick(texts), false)
  const parent = R.pick(parents)
  const elements = parents.slice(1)
  if (r < 0.45 && elements.length > 0) {
    const el = R.pick(elements)
    const name = R.pick(['class', 'data-x', 'level', 'title', 'data-😀'])
    if (R.rng() < 0.2) el.removeAttribute(name)
    else el.setAttribute(name, attrValue(R))
    return
  }
  if ((r < 0.6 || parents.length > 60) && parent.length > 0) {
    const i = R.int(parent.length)
    parent.delete(i, Math.min(parent.length - i, 1 + R.int(2)))
    return
  }
  if (R.rng() < 0.6) {
    const el = new Y.XmlElement(R.pick(NODE_NAMES))
    parent.insert(R.int(parent.length + 1), [el])
    el.setAttribute('id', R.text(4))
    if (R.rng() < 0.5) el.setAttribute('data', attrValue(R))
    const xt = new Y.XmlText()
    el.insert(0, [xt])
    xt.insert(0, R.text(), R.rng() < 0.5 ? R.formatAttrs() : {})
  } else {
    const xt = new Y.XmlText()
    parent.insert(R.int(parent.length + 1), [xt])
    xt.insert(0, R.text())
  }
}

function randomOp (R, doc) {
  const r = R.rng()
  if (r < 0.3) editText(R, doc.getText('t'), doc.getText('t').length > 2000 && R.rng() < 0.5)
  else if (r < 0.45) editMap(R, doc.getMap('m'))
  else if (r < 0.6) editArray(R, doc.getArray('a'))
  else if (r < 0.72) editNested(R, doc)
  else editXml(R, doc.getXmlFragment('x'))
}

describe('compat: seeded random differential test', () => {
  let server
  before(async () => { server = await startServer({ args: PROGRAMMATIC_LIMITS }) })
  after(async () => { await server?.stop() })

  it(`${CLIENTS} clients × ${OPS_PER_CLIENT} random edits on every shared type and value kind, with reconnects (seed ${SEED})`, async (t) => {
    console.log(`random differential test: ROOMCAST_TEST_SEED=${SEED}`)
    t.diagnostic(`seed ${SEED} (set ROOMCAST_TEST_SEED to change it)`)
    const done = []
    await compatCheck(t, server, {
      prefix: 'random',
      roots: ROOTS,
      writers: CLIENTS,
      settleTimeout: 20000,
      async edit (clients) {
        const anyClosed = () => clients.some((c) => c.unexpectedCloses().length > 0)
        await Promise.all(clients.map(async (c, ci) => {
          const R = randomness(SEED * 7919 + ci)
          let offlineFor = 0
          let ops = 0
          for (; ops < OPS_PER_CLIENT; ops++) {
            // No point going on once the server has closed a connection: the check fails.
            if (ops % 50 === 0 && anyClosed()) break
            if (R.rng() < 0.08) c.doc.transact(() => { for (let k = 0, n = 2 + R.int(3); k < n; k++) randomOp(R, c.doc) })
            else randomOp(R, c.doc)
            if (offlineFor > 0 && --offlineFor === 0) c.connect()
            const r = R.rng()
            if (offlineFor === 0 && r < 0.004) {
              c.disconnect()
              offlineFor = 5 + R.int(40)
            } else if (offlineFor === 0 && r < 0.008 && c.provider.wsconnected) {
              c.drop()
            }
            if (R.rng() < 0.7) await tick()
            else await sleep(R.int(3))
          }
          if (offlineFor > 0) c.connect()
          done[ci] = ops
        }))
      },
      extra: (ctx) => {
        const ref = ctx.ref
        t.diagnostic(`reference doc: ${Y.encodeStateAsUpdate(ref).length} bytes encoded; text ${ref.getText('t').length} units, ` +
          `map ${ref.getMap('m').size} keys, array ${ref.getArray('a').length} items, xml ${ref.getXmlFragment('x').length} top-level nodes; ` +
          `reconnects: ${ctx.clients.map((c) => c.intendedCloses().length).join('/')}`)
        const [name, check] = selfCheck(ctx, 'every client made all its edits', () => {
          assert.deepEqual(done, Array(CLIENTS).fill(OPS_PER_CLIENT), `edits made per client: ${done.join(', ')}`)
        })
        return [[name, (st) => {
          // The clients stop early once the server has closed a connection (reported above).
          if (done.some((n) => n !== OPS_PER_CLIENT) && ctx.clients.some((c) => c.unexpectedCloses().length > 0)) {
            st.skip(`the clients stopped early after the server closed a connection: ${done.join(', ')} of ${OPS_PER_CLIENT} edits`)
            return
          }
          return check(st)
        }]]
      }
    })
  })
})
