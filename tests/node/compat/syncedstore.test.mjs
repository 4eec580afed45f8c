// Check 4 of the Yjs compatibility suite: @syncedstore/core. A store of nested
// objects and arrays (a todo list of objects with nested tag arrays and meta
// objects, a nested settings object) is mutated concurrently from two clients
// with plain JavaScript (push, splice, assignment, delete); the plain JSON of
// every replica's store and of a late joiner's store equals that of the local
// Yjs merge. Human speed: the server keeps its default limits.

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { syncedStore } from '@syncedstore/core'
import { startServer, sleep } from '../helpers.mjs'
import { compatCheck, settle, typedDiff, selfCheck } from './compat-helpers.mjs'

/** The store's shape: root 'todos' is a Y.Array, root 'settings' a Y.Map. */
const shape = () => ({ todos: [], settings: {} })
const ROOTS = { todos: 'array', settings: 'map' }
/** Pacing between two mutations of one client (human speed; never a wait for a condition). */
const PACE_MS = 10

/** The store's plain JSON, for the keys of its shape (a doc may have other, unrelated roots). */
const plain = (store) => ({ todos: JSON.parse(JSON.stringify(store.todos)), settings: JSON.parse(JSON.stringify(store.settings)) })

async function settled (clients, ref) {
  const r = await settle(clients, ref)
  if (!r.ok) throw new Error(r.why)
}

describe('compat: @syncedstore/core', () => {
  let server
  before(async () => { server = await startServer() })
  after(async () => { await server?.stop() })

  it('nested objects and arrays mutated concurrently from two clients (push, splice, set, delete)', async (t) => {
    const stores = new Map()
    await compatCheck(t, server, {
      prefix: 'syncedstore',
      roots: ROOTS,
      async edit ([a, b], { ref }) {
        const sa = syncedStore(shape(), a.doc)
        const sb = syncedStore(shape(), b.doc)
        stores.set(a, sa)
        stores.set(b, sb)

        // Round 1: both add content at once.
        sa.todos.push({ title: 'write tests', done: false, tags: ['dev', 'ci'], meta: { priority: 1, due: '2025-01-01' } })
        sb.settings.theme = { dark: true, accent: '#ff8800', font: { family: 'Inter', size: 14 } }
        await sleep(PACE_MS)
        sa.todos.push({ title: 'ship it 🚀', done: false, tags: [], meta: { priority: 2 } })
        sb.settings.locale = 'de-DE'
        sb.todos.push({ title: 'from B', done: true, tags: ['b'], meta: { priority: 3, owner: { name: 'Zoë' } } })
        await sleep(PACE_MS)
        sa.todos.push({ title: 'third', done: false, tags: ['x', 'y', 'z'], meta: { priority: 4, due: null } })
        await settled([a, b], ref)

        // Round 2: edits inside each other's objects, concurrently.
        sa.todos.splice(sa.todos.findIndex((x) => x.title === 'ship it 🚀'), 1, { title: 'replaced by A', done: false, tags: ['r'], meta: { priority: 9 } })
        const first = sb.todos.find((x) => x.title === 'write tests')
        first.tags.push('urgent')
        first.done = true
        delete sb.settings.locale
        sa.settings.theme.font.size = 16
        await sleep(PACE_MS)
        sa.todos.find((x) => x.title === 'write tests').tags.splice(0, 1)
        sb.settings.theme.accent = '#0088ff'
        await settled([a, b], ref)

        // Round 3: deletes, nested additions and conflicting assignments.
        delete sa.todos.find((x) => x.title === 'third').meta.due
        sb.todos.find((x) => x.title === 'third').tags.splice(1, 1, 'y2')
        sa.settings.nested = { level1: { level2: { list: [1, 2, 3], flag: false } } }
        sb.settings.theme.dark = false
        sa.settings.theme.dark = null
        await sleep(PACE_MS)
        sb.todos.splice(0, 0, { title: 'first now', done: false, tags: [], meta: {} })
        await settled([a, b], ref)
        sb.settings.nested.level1.level2.list.push(4)
        sa.settings.nested.level1.level2.list.unshift(0)
        await sleep(PACE_MS)
        sa.todos.splice(sa.todos.findIndex((x) => x.title === 'from B'), 1)
      },
      extra: (ctx) => {
        const refStore = syncedStore(shape(), ctx.ref)
        const lateStore = syncedStore(shape(), ctx.late.doc)
        const want = plain(refStore)
        return [
          ['every replica\'s and the late joiner\'s store read as the same plain JSON as the local Yjs merge', () => {
            const failures = []
            for (const [label, store] of [...ctx.clients.map((c) => [c.label, stores.get(c)]), [ctx.late.label, lateStore]]) {
              failures.push(...typedDiff(want, plain(store)).map((d) => `${label}: ${d}`))
            }
            assert.equal(failures.length, 0, failures.join('\n'))
          }],
          selfCheck(ctx, 'the local Yjs merge holds every mutation', () => {
            assert.equal(want.todos[0].title, 'first now')
            assert.deepEqual(want.settings.nested.level1.level2.list, [0, 1, 2, 3, 4])
            assert.equal(want.settings.locale, undefined)
            assert.equal(want.settings.theme.accent, '#0088ff')
            assert.equal(want.settings.theme.font.size, 16)
            assert.equal(want.todos.some((x) => x.title === 'from B' || x.title === 'ship it 🚀'), false)
            assert.deepEqual(want.todos.find((x) => x.title === 'write tests').tags, ['ci', 'urgent'])
            const third = want.todos.find((x) => x.title === 'third')
            assert.deepEqual(third, { title: 'third', done: false, tags: ['x', 'y2', 'z'], meta: { priority: 4 } })
          })
        ]
      }
    })
  })
})
