#!/usr/bin/env node
// Benchmark: replays the real keystroke traces (tests/fixtures/traces) through a
// stock Yjs client (y-websocket WebsocketProvider) while a second one observes,
// one Yjs transaction per trace transaction, and reports edits/s from the first
// send until the observer holds the trace's final text.
//
//   node tests/node/bench/replay-traces.mjs [--modes off,sqlite,postgres]
//       [--traces sveltecomponent,json-crdt-patch,rustcode] [--runs N]
//   node tests/node/bench/replay-traces.mjs --url ws://127.0.0.1:1234 [--pid PID] [--traces …] [--runs N]
//
// Without --url it starts roomcast ($ROOMCAST_BIN, else target/debug/roomcast;
// use a release build for real numbers) once per trace and mode, with the
// per-connection limits lifted; postgres creates a throwaway database through
// $ROOMCAST_TEST_POSTGRES_URL. With --url it uses any y-websocket server there
// (the room name is appended: ws://HOST:PORT/doc for roomcast, ws://HOST:PORT
// for the reference y-websocket server), so that the two can be compared.
// Server CPU (user + system, from /proc/PID/stat) over each replay is reported
// for the server it started, or for --pid with --url: the process serving it.

import { parseArgs } from 'node:util'
import { readFileSync } from 'node:fs'
import { startServer, docName, createPostgresDatabase, SERVER_BIN } from '../helpers.mjs'
import { compatClient, PROGRAMMATIC_LIMITS, waitOrThrow, unexpectedCloseLines, allCloseLines } from '../compat/compat-helpers.mjs'
import { loadTrace, replayTrace, replayLine, TRACE_NAMES } from '../compat/trace-replay.mjs'

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    pid: { type: 'string' },
    modes: { type: 'string', default: 'off,sqlite,postgres' },
    traces: { type: 'string', default: TRACE_NAMES.join(',') },
    runs: { type: 'string', default: '1' },
    window: { type: 'string', default: '2000' },
    help: { type: 'boolean', short: 'h' }
  }
})
if (opts.help) {
  console.log('usage: replay-traces.mjs [--url ws://HOST:PORT[/doc] [--pid PID]] [--modes off,sqlite,postgres] ' +
    '[--traces a,b] [--runs N] [--window TXNS]')
  process.exit(0)
}
const traces = opts.traces.split(',').filter(Boolean)
for (const name of traces) {
  if (!TRACE_NAMES.includes(name)) throw new Error(`unknown trace ${name} (have ${TRACE_NAMES.join(', ')})`)
}
const modes = opts.url ? ['external'] : opts.modes.split(',').filter(Boolean)
for (const mode of modes) {
  if (!['off', 'sqlite', 'postgres', 'external'].includes(mode)) throw new Error(`unknown mode ${mode}`)
}
const runs = Number(opts.runs)
const window = Number(opts.window)

/** One replay of `name` against `baseUrl`; resolves with replayTrace's result. */
async function replayOnce (baseUrl, trace) {
  const room = docName(`bench-${trace.name}`)
  const writer = compatClient(baseUrl, room, { label: 'writer' })
  const observer = compatClient(baseUrl, room, { label: 'observer' })
  const clients = [writer, observer]
  try {
    await waitOrThrow(clients, () => clients.every((c) => c.provider.synced), { what: 'writer and observer to sync' })
    const result = await replayTrace({
      trace,
      writer: writer.doc,
      observer: observer.doc,
      window,
      timeout: 600000,
      abort: () => {
        const lines = unexpectedCloseLines(clients)
        return lines.length ? `the server closed a connection: ${lines.join('; ')}` : null
      }
    })
    const closes = unexpectedCloseLines(clients)
    if (closes.length) console.warn(`warning: ${allCloseLines(clients).join('; ')}`)
    return result
  } finally {
    for (const c of clients) c.destroy()
  }
}

/** CPU seconds (user + system) process `pid` has used, or null (not Linux, gone). */
function cpuSeconds (pid) {
  try {
    // Fields after the command name (which may hold spaces): utime is the 14th
    // field of the line, stime the 15th, in clock ticks (100 a second here).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return null
  }
}

const rows = []
for (const mode of modes) {
  for (const name of traces) {
    const trace = loadTrace(name)
    for (let run = 1; run <= runs; run++) {
      let server = null
      let db = null
      try {
        let baseUrl = opts.url
        if (!baseUrl) {
          const args = [...PROGRAMMATIC_LIMITS]
          if (mode === 'off') args.push('--persistence', 'off')
          if (mode === 'postgres') {
            db = await createPostgresDatabase()
            args.push('--database-url', db.url)
          }
          server = await startServer({ args })
          baseUrl = server.docUrl
        }
        const pid = server?.pid ?? (opts.pid ? Number(opts.pid) : null)
        const cpuBefore = pid ? cpuSeconds(pid) : null
        const r = await replayOnce(baseUrl, trace)
        const cpuAfter = pid ? cpuSeconds(pid) : null
        const cpu = cpuBefore !== null && cpuAfter !== null ? cpuAfter - cpuBefore : null
        const label = opts.url ? `server ${opts.url}` : `roomcast ${SERVER_BIN}, persistence ${mode}`
        const cpuNote = cpu === null ? '' : `, server CPU ${cpu.toFixed(2)} s (${(cpu / r.txns * 1e6).toFixed(0)} µs an edit)`
        console.log(replayLine(name, runs > 1 ? `${label}, run ${run}` : label, r) + cpuNote)
        rows.push({ trace: name, mode, run, txns: r.txns, seconds: r.ms / 1000, editsPerSec: r.editsPerSec, cpu })
      } finally {
        await server?.stop(30000)
        await db?.drop()
      }
    }
  }
}

console.log('\n| trace | mode | txns | seconds | edits/s | server CPU s | µs CPU an edit |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |')
for (const r of rows) {
  const cpu = r.cpu === null ? '—' : r.cpu.toFixed(2)
  const per = r.cpu === null ? '—' : (r.cpu / r.txns * 1e6).toFixed(0)
  console.log(`| ${r.trace}${runs > 1 ? ` (run ${r.run})` : ''} | ${r.mode} | ${r.txns} | ${r.seconds.toFixed(2)} | ${Math.round(r.editsPerSec)} | ${cpu} | ${per} |`)
}
