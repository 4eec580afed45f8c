// Check 1 of the Yjs compatibility suite: every kind of value Yjs can store in a
// Y.Map or Y.Array (ContentAny / ContentBinary) reaches the other client and a
// late joiner exactly as written: objects of 2, 5 and 20 keys (many of them, in
// separate transactions and in batches: a server guard that fails only for some
// key orders fails only sometimes), nested objects and arrays, Uint8Array, null,
// booleans, large and negative numbers, -0, floats, bigint, 100 kB strings and
// non-BMP text in keys and values. Two writers; the server has the per-connection
// limits lifted (programmatic writers).

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, mulberry32, Y } from '../helpers.mjs'
import { compatCheck, PROGRAMMATIC_LIMITS, typedDiff, tick, selfCheck } from './compat-helpers.mjs'

const SEED = Number(process.env.ROOMCAST_TEST_SEED ?? 20240611)
const KEY_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-'

function randomKey (rng, used) {
  for (;;) {
    const len = 1 + Math.floor(rng() * 12)
    let k = ''
    for (let i = 0; i < len; i++) k += KEY_CHARS[Math.floor(rng() * KEY_CHARS.length)]
    if (rng() < 0.1) k += '😀'
    if (!used.has(k)) { used.add(k); return k }
  }
}

/** A JSON scalar (no floats that JSON would spell differently, no -0: those have their own tests). */
function scalar (rng) {
  const r = rng()
  if (r < 0.3) return Math.floor(rng() * 2e6) - 1e6
  if (r < 0.6) return `s${Math.floor(rng() * 1e6)}`
  if (r < 0.75) return rng() < 0.5
  if (r < 0.85) return null
  return Math.floor(rng() * 1e6) / 8
}

/** An object of `size` keys with random names (so key orders vary from object to object). */
function objectOf (rng, size) {
  const used = new Set()
  const o = {}
  for (let i = 0; i < size; i++) o[randomKey(rng, used)] = scalar(rng)
  return o
}

/** Self-check: the local Yjs merge holds exactly what was written (else the test, not the server, is wrong). */
function writtenCheck (ctx, expected) {
  return [selfCheck(ctx, 'the local Yjs merge holds exactly the values written', () => {
    const failures = []
    for (const [where, read, want] of expected(ctx.ref)) {
      failures.push(...typedDiff(want, read, { mode: 'values' }).map((d) => `${where}: ${d}`))
      failures.push(...typedDiff(want, read, { mode: 'order' }).map((d) => `${where}: ${d}`))
    }
    assert.equal(failures.length, 0, failures.join('\n'))
  })]
}

describe('compat: JSON values in Y.Map and Y.Array', () => {
  let server
  before(async () => { server = await startServer({ args: PROGRAMMATIC_LIMITS }) })
  after(async () => { await server?.stop() })

  it('objects of 2, 5 and 20 keys as Y.Map values (60 per size: 40 one per transaction, 20 in one; both clients)', async (t) => {
    const written = new Map()
    await compatCheck(t, server, {
      prefix: 'json-map-objects',
      roots: { m: 'map' },
      async edit ([a, b]) {
        const rng = mulberry32(SEED)
        for (const size of [2, 5, 20]) {
          for (let i = 0; i < 40; i++) {
            const c = i % 2 === 0 ? a : b
            const key = `o${size}-${i}`
            const value = objectOf(rng, size)
            written.set(key, value)
            c.doc.getMap('m').set(key, value)
            if (i % 4 === 3) await tick()
          }
          a.doc.transact(() => {
            for (let i = 40; i < 60; i++) {
              const key = `o${size}-${i}`
              const value = objectOf(rng, size)
              written.set(key, value)
              a.doc.getMap('m').set(key, value)
            }
          })
          await tick()
        }
      },
      extra: (ctx) => writtenCheck(ctx, (ref) => [...written].map(([k, v]) => [`m.${k}`, ref.getMap('m').get(k), v]))
    })
  })

  it('objects of 2, 5 and 20 keys as Y.Array items (60 per size: pushes, inserts, one batch; both clients)', async (t) => {
    await compatCheck(t, server, {
      prefix: 'json-array-objects',
      roots: { a: 'array' },
      async edit ([a, b]) {
        const rng = mulberry32(SEED + 1)
        for (const size of [2, 5, 20]) {
          for (let i = 0; i < 40; i++) {
            const c = i % 2 === 0 ? a : b
            const arr = c.doc.getArray('a')
            if (i % 3 === 0) arr.insert(Math.floor(rng() * (arr.length + 1)), [objectOf(rng, size)])
            else arr.push([objectOf(rng, size)])
            if (i % 4 === 3) await tick()
          }
          b.doc.getArray('a').push(Array.from({ length: 20 }, () => objectOf(rng, size)))
          await tick()
        }
      }
    })
  })

  it('nested objects and arrays (as Y.Map values and Y.Array items)', async (t) => {
    const rng = mulberry32(SEED + 2)
    const nested = (depth) => {
      if (depth === 0) return scalar(rng)
      if (rng() < 0.5) return Array.from({ length: 1 + Math.floor(rng() * 4) }, () => nested(depth - 1))
      const used = new Set()
      const o = {}
      for (let i = 0, n = 1 + Math.floor(rng() * 5); i < n; i++) o[randomKey(rng, used)] = nested(depth - 1)
      return o
    }
    const values = [
      { outer: { inner: { deepest: [1, 2, { x: 'y', z: [true, null] }] } }, list: [[1, 2], [3, [4, [5]]]] },
      [[[]], [{}], { a: [] }, { b: {} }],
      { matrix: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], rows: [{ id: 1, name: 'one' }, { id: 2, name: 'two', tags: ['x', 'y'] }] },
      ...Array.from({ length: 40 }, () => nested(4))
    ]
    await compatCheck(t, server, {
      prefix: 'json-nested',
      roots: { m: 'map', a: 'array' },
      async edit ([a, b]) {
        for (const [i, v] of values.entries()) {
          const c = i % 2 === 0 ? a : b
          c.doc.getMap('m').set(`n${i}`, v)
          c.doc.getArray('a').push([v])
          if (i % 4 === 3) await tick()
        }
      },
      extra: (ctx) => writtenCheck(ctx, (ref) => values.map((v, i) => [`m.n${i}`, ref.getMap('m').get(`n${i}`), v]))
    })
  })

  // Scalars only (and arrays / one-key objects of them): an object of two or more
  // keys would mix the key-order question into this one.
  const SCALARS = {
    bytesEmpty: new Uint8Array(0),
    bytesSmall: new Uint8Array([0, 1, 127, 128, 255]),
    bytesKB: Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff),
    null: null,
    true: true,
    false: false,
    twoTo31: 2 ** 31,
    twoTo31Minus1: 2 ** 31 - 1,
    minusTwoTo31: -(2 ** 31),
    maxSafe: 2 ** 53 - 1,
    minSafe: -(2 ** 53 - 1),
    big1e300: 1e300,
    minus1e300: -1e300,
    tiny: 5e-324,
    zero: 0,
    minus7: -7,
    minus123456789: -123456789,
    float32able: 1.5,
    pointOne: 0.1,
    minusHalf: -0.5,
    pi: 3.141592653589793
  }

  it('Uint8Array, null, booleans, large, negative and float numbers', async (t) => {
    const entries = Object.entries(SCALARS)
    await compatCheck(t, server, {
      prefix: 'json-scalars',
      roots: { m: 'map', a: 'array' },
      async edit ([a, b]) {
        for (const [i, [k, v]] of entries.entries()) {
          const c = i % 2 === 0 ? a : b
          c.doc.getMap('m').set(k, v)
          c.doc.getMap('m').set(`${k}InArray`, [v, v])
          c.doc.getMap('m').set(`${k}InObject`, { v })
          c.doc.getArray('a').push([v])
          await tick()
        }
        a.doc.getArray('a').push([entries.map(([, v]) => v)])
      },
      extra: (ctx) => writtenCheck(ctx, (ref) => entries.flatMap(([k, v]) => [
        [`m.${k}`, ref.getMap('m').get(k), v],
        [`m.${k}InArray`, ref.getMap('m').get(`${k}InArray`), [v, v]],
        [`m.${k}InObject`, ref.getMap('m').get(`${k}InObject`), { v }]
      ]))
    })
  })

  it('-0 (as a Y.Map value, a Y.Array item, in an array and in an object)', async (t) => {
    await compatCheck(t, server, {
      prefix: 'json-negzero',
      roots: { m: 'map', a: 'array' },
      async edit ([a, b]) {
        a.doc.getMap('m').set('negZero', -0)
        a.doc.getMap('m').set('posZero', 0)
        b.doc.getMap('m').set('negZeroInArray', [0, -0, 1])
        b.doc.getMap('m').set('negZeroInObject', { z: -0 })
        a.doc.getArray('a').push([-0, 0, -0])
        b.doc.getArray('a').push([[-0]])
      },
      extra: (ctx) => writtenCheck(ctx, (ref) => [
        ['m.negZero', ref.getMap('m').get('negZero'), -0],
        ['m.negZeroInArray', ref.getMap('m').get('negZeroInArray'), [0, -0, 1]],
        ['m.negZeroInObject', ref.getMap('m').get('negZeroInObject'), { z: -0 }]
      ])
    })
  })

  it('bigint values (5n, -(2n**62n), int64 extremes; Y.Map values, nested in Y.Array items)', async (t) => {
    const bigints = [5n, -5n, 0n, -(2n ** 62n), 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n]
    await compatCheck(t, server, {
      prefix: 'json-bigint',
      roots: { m: 'map', a: 'array' },
      async edit ([a, b]) {
        for (const [i, v] of bigints.entries()) {
          const c = i % 2 === 0 ? a : b
          c.doc.getMap('m').set(`big${i}`, v)
          // Yjs takes a bigint as a Y.Map value, and nested anywhere, but not as a
          // Y.Array item of its own (typeListInsertGenerics throws): wrap it.
          c.doc.getArray('a').push([[v], { v }])
          await tick()
        }
        a.doc.getMap('m').set('bigInArray', [...bigints])
        b.doc.getMap('m').set('bigInObject', { n: -(2n ** 62n) })
      },
      extra: (ctx) => writtenCheck(ctx, (ref) => [
        ...bigints.map((v, i) => [`m.big${i}`, ref.getMap('m').get(`big${i}`), v]),
        ['m.bigInArray', ref.getMap('m').get('bigInArray'), bigints],
        ['m.bigInObject', ref.getMap('m').get('bigInObject'), { n: -(2n ** 62n) }]
      ])
    })
  })

  it('values nested 100 and 1000 levels deep (arrays and objects)', async (t) => {
    const nest = (depth, wrap) => { let v = 'core'; for (let i = 0; i < depth; i++) v = wrap(v, i); return v }
    const deep = {
      arrays100: nest(100, (v) => [v]),
      objects100: nest(100, (v, i) => ({ [`k${i}`]: v, n: i })),
      arrays1000: nest(1000, (v) => [v, -0])
    }
    await compatCheck(t, server, {
      prefix: 'json-deep',
      roots: { m: 'map', a: 'array' },
      async edit ([a, b]) {
        for (const [key, v] of Object.entries(deep)) a.doc.getMap('m').set(key, v)
        b.doc.getArray('a').push([deep.objects100, deep.arrays100])
      },
      extra: (ctx) => writtenCheck(ctx, (ref) =>
        Object.entries(deep).map(([key, v]) => [`m.${key}`, ref.getMap('m').get(key), v]))
    })
  })

  it('subdocuments (Y.Doc as a Y.Map value and Y.Array item, with meta and autoLoad)', async (t) => {
    await compatCheck(t, server, {
      prefix: 'json-subdocs',
      roots: { m: 'map', a: 'array' },
      async edit ([a, b]) {
        a.doc.getMap('m').set('plain', new Y.Doc())
        a.doc.getMap('m').set('withMeta', new Y.Doc({ meta: { title: 'chapter 1', tags: ['a', 'b'], z: 1, y: 2 } }))
        b.doc.getArray('a').push([new Y.Doc({ autoLoad: true }), new Y.Doc({ meta: { n: -0 } })])
      }
    })
  })

  it('long strings (100 kB, ASCII and non-BMP)', async (t) => {
    const ascii = 'abcdefghij'.repeat(10000)
    const astral = '😀𝔘ü中a'.repeat(15000).slice(0, 100000) // ends on a whole code point
    assert.ok(!/[\uD800-\uDBFF]$/.test(astral))
    await compatCheck(t, server, {
      prefix: 'json-long-strings',
      roots: { m: 'map', a: 'array', t: 'text' },
      async edit ([a, b]) {
        a.doc.getMap('m').set('ascii', ascii)
        b.doc.getMap('m').set('astral', astral)
        a.doc.getArray('a').push([ascii])
        b.doc.getArray('a').push([astral, { s: ascii }])
        a.doc.getText('t').insert(0, astral)
      }
    })
  })

  it('emoji and other non-BMP text in map keys, object keys and string values', async (t) => {
    const texts = ['😀', '👩‍👩‍👧‍👦', '🇺🇳', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𠜎𠜱𠝹', 'e\u0301', 'ü中文日本語', '\u0000nul', 'tab\there', '']
    await compatCheck(t, server, {
      prefix: 'json-non-bmp',
      roots: { m: 'map', a: 'array', t: 'text' },
      async edit ([a, b]) {
        for (const [i, s] of texts.entries()) {
          const c = i % 2 === 0 ? a : b
          c.doc.getMap('m').set(`key ${s} ${i}`, s)
          c.doc.getMap('m').set(`obj${i}`, { [`${s}key`]: `${s}value` })
          c.doc.getArray('a').push([s, [s]])
          const t = c.doc.getText('t')
          t.insert(t.length, `${s}|`)
          await tick()
        }
      }
    })
  })
})
