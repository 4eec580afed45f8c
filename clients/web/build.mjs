// Builds the browser demos: bundles each page's TypeScript entry point with
// esbuild (the game client is imported straight from ../ts/src) and copies the
// static pages and stylesheet next to the bundles.
//
//   node build.mjs [OUT_DIR]     (default: dist/)
//
// server/build.rs runs this into $OUT_DIR/web and embeds every file written
// there. Everything a page loads comes from the same origin: no CDN, no fonts.

import { build } from 'esbuild'
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const defaultOut = join(here, 'dist')
const out = resolve(process.argv[2] ?? defaultOut)

/** Page scripts: output name → entry point. */
const entryPoints = {
  index: join(here, 'src/index.ts'),
  arena: join(here, 'src/arena.ts'),
  editor: join(here, 'src/editor.ts')
}

// dist/ is ours to clear; a directory given on the command line is the
// caller's (build.rs clears $OUT_DIR/web itself).
if (out === defaultOut) rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })

const result = await build({
  entryPoints,
  outdir: out,
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'iife',
  platform: 'browser',
  target: 'es2020',
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning'
})

const statics = readdirSync(here).filter((name) => name.endsWith('.html') || name.endsWith('.css'))
for (const name of statics) copyFileSync(join(here, name), join(out, name))

const written = [...Object.keys(result.metafile.outputs).map((p) => resolve(p)), ...statics.map((n) => join(out, n))]
for (const file of written.sort()) {
  console.log(`${String(statSync(file).size).padStart(8)}  ${file}`)
}
