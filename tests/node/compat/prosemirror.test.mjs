// Check 3 of the Yjs compatibility suite: y-prosemirror. A document of the
// prosemirror-schema-basic schema (plus prosemirror-schema-list's lists) —
// headings with a level, links with href/title, an image with src/alt/title,
// strong/em/code marks, a code block, a blockquote, nested lists, a horizontal
// rule — is written into a Y.XmlFragment with y-prosemirror's own
// prosemirrorJSONToYXmlFragment, then edited concurrently from two clients: each
// applies ProseMirror transactions to its own ProseMirror doc (read from its
// fragment with initProseMirrorDoc) and writes the result back with the binding's
// updateYFragment, as the sync plugin does. All replicas and a late joiner give
// the same ProseMirror JSON (yXmlFragmentToProsemirrorJSON), a valid document of
// the schema. Human speed: the server keeps its default limits.
//
// Run twice: with link marks (their attributes are objects in the Yjs format
// attributes) and without (only attribute-less marks), so that a failure on one
// kind does not hide the state of the other.

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Schema } from 'prosemirror-model'
import { schema as basicSchema } from 'prosemirror-schema-basic'
import { addListNodes } from 'prosemirror-schema-list'
import { EditorState } from 'prosemirror-state'
import { findWrapping } from 'prosemirror-transform'
import {
  prosemirrorJSONToYXmlFragment, initProseMirrorDoc, updateYFragment, yXmlFragmentToProsemirrorJSON
} from 'y-prosemirror'
import { startServer, sleep } from '../helpers.mjs'
import { compatCheck, settle, waitOrThrow, typedDiff, selfCheck } from './compat-helpers.mjs'

const schema = new Schema({
  nodes: addListNodes(basicSchema.spec.nodes, 'paragraph block*', 'block'),
  marks: basicSchema.spec.marks
})
/** y-prosemirror's default fragment name. */
const FRAGMENT = 'prosemirror'
const ROOTS = { [FRAGMENT]: 'xml' }
/** Pacing between keystrokes (human speed; never a wait for a condition). */
const KEYSTROKE_MS = 15

function initialDoc ({ links }) {
  const link = (text, href, title) => links
    ? { type: 'text', marks: [{ type: 'link', attrs: { href, title } }], text }
    : { type: 'text', text }
  const para = (...content) => ({ type: 'paragraph', content })
  const text = (t, ...marks) => (marks.length ? { type: 'text', text: t, marks: marks.map((type) => ({ type })) } : { type: 'text', text: t })
  const item = (...content) => ({ type: 'list_item', content })
  return {
    type: 'doc',
    content: [
      { type: 'heading', attrs: { level: 1 }, content: [text('Roomcast ✨ compat')] },
      para(text('Plain text, '), text('strong', 'strong'), text(', '), text('emphasis', 'em'), text(', '),
        text('both', 'strong', 'em'), text(' and a '), link('link', 'https://example.com/a?b=c&d=é', 'Example 😀'),
        text(' and '), text('code()', 'code'), text('.')),
      // Many links: each one's attributes are an object in the Yjs format attributes.
      para(...Array.from({ length: 12 }, (_, i) => [
        link(`link ${i}`, `https://example.com/page/${i}?q=${i}`, i % 3 === 0 ? null : `Title ${i} ✓`),
        text(' · ')
      ]).flat(), text('end of links')),
      para(text('An image: '),
        { type: 'image', attrs: { src: 'https://example.com/i.png', alt: 'alt text 😀', title: 'An image' } },
        { type: 'hard_break' }, text('after a break')),
      { type: 'blockquote', content: [para(text('Quoted 😀 text'))] },
      { type: 'code_block', content: [text('fn main() {\n    println!("hi");\n}')] },
      {
        type: 'bullet_list',
        content: [
          item(para(text('first item'))),
          item(para(text('second item')), {
            type: 'ordered_list',
            attrs: { order: 3 },
            content: [item(para(text('nested three'))), item(para(text('nested four')))]
          })
        ]
      },
      { type: 'horizontal_rule' },
      { type: 'heading', attrs: { level: 3 }, content: [text('The end')] },
      para(text('Last paragraph.'))
    ]
  }
}

/** Canonical ProseMirror JSON: through the schema (attribute defaults filled in). */
const normalize = (json) => schema.nodeFromJSON(json).toJSON()

/** Position of `needle` in a text node of `doc`. */
function findText (doc, needle) {
  let found = -1
  doc.descendants((node, pos) => {
    if (found >= 0) return false
    if (node.isText) {
      const i = node.text.indexOf(needle)
      if (i >= 0) found = pos + i
    }
  })
  if (found < 0) throw new Error(`${JSON.stringify(needle)} is not in the ProseMirror document`)
  return found
}

/** The first node (and its position) for which `pred` holds. */
function findNode (doc, pred, what) {
  let found = null
  doc.descendants((node, pos) => {
    if (found) return false
    if (pred(node)) { found = { node, pos }; return false }
  })
  if (!found) throw new Error(`no ${what} in the ProseMirror document`)
  return found
}

/**
 * One local ProseMirror edit: read the client's fragment into a ProseMirror doc
 * (as the binding renders it), apply a transaction built by `build(tr, state)`,
 * write the new doc back with updateYFragment (as the sync plugin does).
 */
function pmEdit (client, build) {
  const fragment = client.doc.getXmlFragment(FRAGMENT)
  const { doc, meta } = initProseMirrorDoc(fragment, schema)
  const state = EditorState.create({ schema, doc })
  const tr = state.tr
  build(tr, state)
  const next = state.apply(tr)
  updateYFragment(client.doc, fragment, next.doc, meta)
}

async function settled (clients, ref) {
  const r = await settle(clients, ref)
  if (!r.ok) throw new Error(r.why)
}

for (const links of [true, false]) {
  const variant = links ? 'with link marks (object-valued format attributes)' : 'without link marks'

  describe(`compat: y-prosemirror, ${variant}`, () => {
    let server
    before(async () => { server = await startServer() })
    after(async () => { await server?.stop() })

    it('a basic-schema document written with prosemirrorJSONToYXmlFragment, then edited concurrently from two clients', async (t) => {
      const input = initialDoc({ links })
      let readBack = null
      await compatCheck(t, server, {
        prefix: links ? 'pm-links' : 'pm-nolinks',
        roots: ROOTS,
        async edit ([a, b], { ref }) {
          prosemirrorJSONToYXmlFragment(schema, input, a.doc.getXmlFragment(FRAGMENT))
          await waitOrThrow([a, b], () => b.doc.getXmlFragment(FRAGMENT).length === input.content.length, {
            what: 'client B to receive the document'
          })
          await settled([a, b], ref)
          readBack = yXmlFragmentToProsemirrorJSON(b.doc.getXmlFragment(FRAGMENT))

          // Round 1, concurrent (same tick: neither sees the other's change first).
          pmEdit(a, (tr) => {
            const h = findNode(tr.doc, (n) => n.type.name === 'heading', 'heading')
            tr.insertText(' (edited by A)', h.pos + h.node.nodeSize - 1)
            tr.setNodeMarkup(h.pos, undefined, { level: 2 })
            const from = findText(tr.doc, 'Plain')
            tr.addMark(from, from + 5, links
              ? schema.marks.link.create({ href: 'https://a.example/plain', title: 'from A' })
              : schema.marks.em.create())
          })
          pmEdit(b, (tr) => {
            tr.insertText('B says hi. ', findText(tr.doc, 'Quoted'))
            const from = findText(tr.doc, 'after a break')
            tr.addMark(from, from + 'after a break'.length, schema.marks.strong.create())
            const img = findNode(tr.doc, (n) => n.type.name === 'image', 'image')
            tr.setNodeMarkup(img.pos, undefined, { ...img.node.attrs, alt: 'changed by B ✓' })
            tr.insert(tr.doc.content.size, schema.node('paragraph', null, [schema.text('Added by B, ', [schema.marks.em.create()]), schema.text('plain.')]))
          })
          await settled([a, b], ref)

          // Round 2, concurrent: structure changes.
          pmEdit(a, (tr) => {
            const code = findText(tr.doc, 'println!')
            tr.delete(code, code + 'println!'.length)
            if (links) {
              const l = findText(tr.doc, ' and a ') + ' and a '.length
              tr.removeMark(l, l + 'link'.length, schema.marks.link)
            }
            tr.insert(findText(tr.doc, 'after a break'), schema.nodes.image.create({ src: 'https://a.example/second.png', alt: 'second', title: null }))
            tr.split(findText(tr.doc, 'emphasis'))
          })
          pmEdit(b, (tr) => {
            const ol = findNode(tr.doc, (n) => n.type.name === 'ordered_list', 'ordered list')
            tr.setNodeMarkup(ol.pos, undefined, { order: 7 })
            const first = findNode(tr.doc, (n) => n.type.name === 'list_item', 'list item')
            tr.insert(first.pos + first.node.nodeSize, schema.node('list_item', null, [schema.node('paragraph', null, [schema.text('item by B')])]))
            const bq = findNode(tr.doc, (n) => n.type.name === 'blockquote', 'blockquote')
            tr.insert(bq.pos + bq.node.nodeSize, [
              schema.node('horizontal_rule'),
              schema.node('heading', { level: 4 }, [schema.text('Heading by B')])
            ])
            const last = findText(tr.doc, 'Last paragraph.')
            const $from = tr.doc.resolve(last)
            const range = $from.blockRange()
            const wrapping = range && findWrapping(range, schema.nodes.blockquote)
            if (!wrapping) throw new Error('cannot wrap the last paragraph in a blockquote')
            tr.wrap(range, wrapping)
          })
          await settled([a, b], ref)

          // Round 3: both type into the same paragraph, keystroke by keystroke.
          const typedA = 'typed by A 😀'
          const typedB = 'B>'
          for (let i = 0; i < Math.max([...typedA].length, typedB.length); i++) {
            const ca = [...typedA][i]
            if (ca) {
              pmEdit(a, (tr) => {
                const p = findText(tr.doc, 'Last paragraph.') + 'Last paragraph.'.length
                tr.insertText(ca, p + [...typedA].slice(0, i).join('').length)
              })
            }
            const cb = typedB[i]
            if (cb) pmEdit(b, (tr) => tr.insertText(cb, findText(tr.doc, 'Last paragraph.')))
            if (i === 5) {
              pmEdit(b, (tr) => {
                const p = findText(tr.doc, 'Added by B')
                tr.addMark(p, p + 5, schema.marks.code.create())
              })
            }
            await sleep(KEYSTROKE_MS)
          }
        },
        extra: (ctx) => {
          const subjects = [...ctx.clients, ctx.late]
          const refJson = yXmlFragmentToProsemirrorJSON(ctx.ref.getXmlFragment(FRAGMENT))
          return [
            ['the document reads back from the other client as written (ProseMirror JSON)', () => {
              assert.ok(readBack, 'client B never read the document back')
              assert.deepEqual(typedDiff(normalize(input), normalize(readBack)), [])
            }],
            ['every replica and the late joiner give the ProseMirror JSON of the local Yjs merge, a valid document of the schema', () => {
              const failures = []
              for (const c of subjects) {
                const json = yXmlFragmentToProsemirrorJSON(c.doc.getXmlFragment(FRAGMENT))
                try {
                  schema.nodeFromJSON(json).check()
                } catch (e) {
                  failures.push(`${c.label}: not a valid document of the schema: ${e.message}`)
                  continue
                }
                // Attribute key order of ProseMirror JSON comes from Y.XmlElement
                // attributes (a map: its order depends on local history), so compare
                // canonically; plain-object key order is checked on the Yjs level.
                failures.push(...typedDiff(normalize(refJson), normalize(json)).map((d) => `${c.label}: ${d}`))
              }
              assert.equal(failures.length, 0, failures.join('\n'))
            }],
            selfCheck(ctx, 'the local Yjs merge is a valid document of the schema with every edit in it', () => {
              const doc = schema.nodeFromJSON(refJson)
              doc.check()
              const text = doc.textContent
              for (const s of ['(edited by A)', 'B says hi.', 'Added by B', 'item by B', 'Heading by B', 'typed by A 😀', 'B>']) {
                assert.ok(text.includes(s), `${JSON.stringify(s)} missing from ${JSON.stringify(text)}`)
              }
            })
          ]
        }
      })
    })
  })
}
