// The roomcast operator dashboard: a plain ES module, no dependencies, no build.
//
// Everything shown comes from the admin API (/api/v1) with the operator's token,
// which is kept in sessionStorage (this tab only). Views are picked by the URL
// hash: `#/` lists the rooms, `#/room/{kind}/{id}` shows one room, so a room view
// can be linked to.
//
// Room names are chosen by clients: server data reaches the page only through
// textContent and text nodes, never as markup.

const API = '/api/v1'
/** How often the open view is refreshed. */
const REFRESH_MS = 2000
/** A request not answered by then counts as failed (and frees its view's refresh). */
const REQUEST_TIMEOUT_MS = 10000
/** Rooms fetched per refresh (the API's page maximum). */
const ROOMS_LIMIT = 500
/** JSON longer than this is cut until the operator asks for all of it. */
const JSON_PREVIEW_CHARS = 20000
const TOKEN_KEY = 'roomcast.admin-token'
const DASH = '—'

const $ = (id) => document.getElementById(id)

/**
 * Creates an element. `props`: `text` (textContent), `class`, `data` (dataset
 * entries), `title`, `on<event>` (listeners), other keys as attributes.
 * Children are nodes or strings (which become text nodes).
 */
function el (tag, props = {}, ...children) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue
    if (key === 'text') node.textContent = value
    else if (key === 'class') node.className = value
    else if (key === 'data') Object.assign(node.dataset, value)
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value)
    else node.setAttribute(key, value)
  }
  node.append(...children)
  return node
}

// ---------------------------------------------------------------- formatting

const isNum = (v) => typeof v === 'number' && Number.isFinite(v)

function fmtNum (v, digits = 0) {
  if (!isNum(v)) return DASH
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function fmtBytes (v) {
  if (!isNum(v)) return DASH
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024
    i += 1
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[i]}`
}

const fmtRate = (v) => (isNum(v) ? `${fmtBytes(v)}/s` : DASH)

function fmtSecs (s) {
  if (!isNum(s)) return DASH
  if (s < 60) return `${s.toFixed(1)} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
}

/** "12 s ago" for a unix time in ms. */
function fmtAge (ms) {
  if (!isNum(ms)) return DASH
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`
  return `${Math.floor(s / 86400)} d ago`
}

const fmtDate = (ms) => (isNum(ms) ? new Date(ms).toLocaleString() : undefined)
const fmtClock = (date) => date.toLocaleTimeString()
/** Microseconds as milliseconds. */
const fmtUs = (us) => (isNum(us) ? `${fmtNum(us / 1000, 3)} ms` : DASH)
const text = (v) => (v === undefined || v === null || v === '' ? DASH : String(v))

function fmtSnapshot (meta) {
  if (!meta || typeof meta !== 'object') return DASH
  return `#${text(meta.id)} · ${fmtAge(meta.created_at)}`
}

// ----------------------------------------------------------------- the token

/** The token in sessionStorage (or in memory where storage is refused). */
const tokenStore = {
  memory: null,
  get () {
    try { return sessionStorage.getItem(TOKEN_KEY) } catch { return this.memory }
  },
  set (token) {
    this.memory = token
    try { sessionStorage.setItem(TOKEN_KEY, token) } catch {}
  },
  clear () {
    this.memory = null
    try { sessionStorage.removeItem(TOKEN_KEY) } catch {}
  }
}

// ------------------------------------------------------------------- the API

class ApiError extends Error {
  constructor (status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }

  /** The token is missing or wrong, or the API is off: ask for a token again. */
  get isAuth () {
    return this.status === 401 || this.status === 403 || this.code === 'api_disabled'
  }
}

function describeError (err) {
  if (err.code === 'api_disabled') return 'the admin API is disabled: set ROOMCAST_ADMIN_TOKEN'
  if (err instanceof ApiError && err.status) return `${err.message} (${err.status} ${err.code})`
  return err.message || String(err)
}

/**
 * One API call; resolves with the JSON answer. Rejects with an ApiError; on an
 * authentication error it also signs out (the login form shows why).
 */
async function api (method, path, body) {
  const token = tokenStore.get()
  if (!token) {
    const err = new ApiError(401, 'unauthorized', 'no admin token')
    signOut(describeError(err))
    throw err
  }
  const init = {
    method,
    headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
    cache: 'no-store',
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  }
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  let res
  let data = null
  try {
    res = await fetch(API + path, init)
    const raw = await res.text()
    if (raw) {
      try { data = JSON.parse(raw) } catch {}
    }
  } catch (e) {
    const why = e?.name === 'TimeoutError'
      ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`
      : 'the server is unreachable'
    throw new ApiError(0, 'network', why)
  }
  if (res.ok) return data
  const err = new ApiError(
    res.status,
    typeof data?.error === 'string' ? data.error : `http_${res.status}`,
    typeof data?.message === 'string' ? data.message : `${res.status} ${res.statusText}`.trim()
  )
  if (err.isAuth) signOut(describeError(err))
  throw err
}

const roomPath = (target) => `/rooms/${encodeURIComponent(target.kind)}/${encodeURIComponent(target.id)}`

/** `#/room/game/arena:lobby` (ids are encoded, but `:` is kept readable). */
const roomHash = (kind, id) =>
  `#/room/${encodeURIComponent(kind)}/${encodeURIComponent(String(id)).replace(/%3A/gi, ':')}`

// ------------------------------------------------------------------- polling

/**
 * Runs `task` now and then `every` ms after each run ends, so a slow answer
 * delays the next request instead of stacking requests.
 */
class Poller {
  constructor (task, every) {
    this.task = task
    this.every = every
    this.active = false
    this.timer = undefined
    this.running = null
    this.again = false
  }

  start () {
    if (this.active) return
    this.active = true
    this.kick()
  }

  /** Runs the task as soon as the current run (if any) ends. */
  now () {
    if (this.active) this.kick()
  }

  kick () {
    clearTimeout(this.timer)
    if (this.running) {
      this.again = true
      return
    }
    this.running = Promise.resolve()
      .then(() => this.task())
      .catch((err) => console.error('dashboard refresh failed', err))
      .then(() => {
        this.running = null
        if (!this.active) return
        if (this.again) {
          this.again = false
          this.kick()
        } else {
          this.timer = setTimeout(() => this.kick(), this.every)
        }
      })
  }

  /** Stops; resolves once a run in progress (if any) has ended. */
  async stop () {
    this.active = false
    this.again = false
    clearTimeout(this.timer)
    await this.running
  }
}

// -------------------------------------------------------------- status line

function setStatus (message, isError = false) {
  const status = $('status')
  status.textContent = message ? `${fmtClock(new Date())} ${message}` : ''
  status.classList.toggle('error', isError)
}

// ------------------------------------------------------------------ JSON view

/** A <pre> showing pretty JSON, cut at JSON_PREVIEW_CHARS unless expanded. */
class JsonView {
  constructor (pre, toggle) {
    this.pre = pre
    this.toggle = toggle
    this.expanded = false
    this.json = null
    toggle.addEventListener('click', () => {
      this.expanded = !this.expanded
      this.render()
    })
  }

  reset () {
    this.expanded = false
    this.json = null
    this.pre.textContent = ''
    this.toggle.hidden = true
  }

  show (value) {
    const json = value === undefined ? DASH : JSON.stringify(value, null, 2)
    if (json === this.json) return // keeps the operator's text selection
    this.json = json
    this.render()
  }

  render () {
    const json = this.json ?? ''
    const long = json.length > JSON_PREVIEW_CHARS
    this.toggle.hidden = !long
    this.toggle.textContent = this.expanded ? 'show less' : `show all (${fmtBytes(json.length)})`
    this.pre.textContent = long && !this.expanded
      ? `${json.slice(0, JSON_PREVIEW_CHARS)}\n… ${fmtNum(json.length - JSON_PREVIEW_CHARS)} more characters`
      : json
    this.pre.classList.toggle('cut', long && !this.expanded)
  }
}

// ---------------------------------------------------------------------- views

const VIEWS = ['login', 'rooms-view', 'room-view']

function showView (id) {
  for (const view of VIEWS) $(view).hidden = view !== id
  $('sign-out').hidden = id === 'login'
}

/** Shows the view the hash names (or the login form without a token). */
function route () {
  if (!tokenStore.get()) {
    showLogin()
    return
  }
  const m = /^#\/room\/([^/]+)\/(.+)$/.exec(location.hash)
  if (m) openRoom(decode(m[1]), decode(m[2]))
  else openList()
}

function decode (part) {
  try { return decodeURIComponent(part) } catch { return part }
}

// ---------------------------------------------------------------------- login

function showLogin (message) {
  list.poller.stop()
  room.poller.stop()
  room.current = null
  // Nothing read with the old token stays on the page.
  list.rooms = []
  list.total = 0
  list.refreshedAt = null
  $('rooms-body').replaceChildren()
  showView('login')
  const error = $('login-error')
  error.textContent = message || ''
  error.hidden = !message
  const input = $('token-input')
  input.value = ''
  input.focus()
}

function signOut (message) {
  tokenStore.clear()
  showLogin(message)
}

async function onTokenSubmit (event) {
  event.preventDefault()
  const token = $('token-input').value.trim()
  const error = $('login-error')
  if (!token) return
  if (!/^[\x20-\x7e]+$/.test(token)) {
    error.textContent = 'the token must be printable ASCII'
    error.hidden = false
    return
  }
  tokenStore.set(token)
  error.hidden = true
  const submit = $('token-submit')
  submit.disabled = true
  try {
    // Checked before anything else is shown: a wrong token lands back here.
    await api('GET', '/rooms?limit=1')
  } catch (err) {
    if (!err.isAuth) {
      tokenStore.clear()
      error.textContent = describeError(err)
      error.hidden = false
    }
    return
  } finally {
    submit.disabled = false
  }
  setStatus('')
  route()
}

// ----------------------------------------------------------------- rooms list

const list = {
  /** Rooms of the last successful refresh. */
  rooms: [],
  /** Live rooms in all (may exceed the rooms listed). */
  total: 0,
  refreshedAt: null,
  sort: { key: 'id', desc: false },
  poller: new Poller(refreshRooms, REFRESH_MS)
}

/** Sort keys: how each reads a room, and its first direction (busiest first). */
const SORTS = {
  id: { value: (r) => String(r.id ?? ''), desc: false },
  members: { value: (r) => r.members, desc: true },
  bytes: { value: (r) => r.bytes_out_per_sec, desc: true },
  p99: { value: (r) => r.tick_p99_ms, desc: true }
}

function openList () {
  room.poller.stop()
  room.current = null
  showView('rooms-view')
  renderRooms()
  list.poller.start()
}

async function refreshRooms () {
  let data
  try {
    data = await api('GET', `/rooms?limit=${ROOMS_LIMIT}`)
  } catch (err) {
    if (err.isAuth) return
    const error = $('rooms-error')
    error.textContent = `refresh failed at ${fmtClock(new Date())}: ${describeError(err)}`
    error.hidden = false
    return
  }
  list.rooms = Array.isArray(data?.rooms) ? data.rooms.filter((r) => r && typeof r === 'object') : []
  list.total = isNum(data?.total) ? data.total : list.rooms.length
  list.refreshedAt = new Date()
  $('rooms-error').hidden = true
  if (!$('rooms-view').hidden) renderRooms()
}

function compareRooms (a, b) {
  const { key, desc } = list.sort
  const value = SORTS[key].value
  const va = value(a)
  const vb = value(b)
  const byId = String(a.id ?? '').localeCompare(String(b.id ?? ''))
  if (key === 'id') return desc ? -byId : byId
  // Rooms without the figure go last whichever the direction.
  const na = isNum(va)
  const nb = isNum(vb)
  if (!na || !nb) return na === nb ? byId : (na ? -1 : 1)
  if (va === vb) return byId
  return desc ? vb - va : va - vb
}

function renderRooms () {
  const kind = $('kind-filter').value
  const needle = $('text-filter').value.trim().toLowerCase()
  const shown = list.rooms.filter((r) =>
    (!kind || r.kind === kind) &&
    (!needle || [r.id, r.game, r.name].some((s) => typeof s === 'string' && s.toLowerCase().includes(needle))))
  shown.sort(compareRooms)
  $('rooms-body').replaceChildren(...shown.map(roomRow))
  $('rooms-empty').hidden = shown.length > 0 || !list.refreshedAt

  let total = `${list.total} room${list.total === 1 ? '' : 's'}`
  if (list.rooms.length < list.total) total += ` (first ${list.rooms.length} listed)`
  if (shown.length !== list.rooms.length) total += `, ${shown.length} shown`
  $('rooms-total').textContent = list.refreshedAt ? total : 'loading…'
  $('rooms-refreshed').textContent = list.refreshedAt ? `refreshed ${fmtClock(list.refreshedAt)}` : ''

  for (const button of document.querySelectorAll('#rooms-table button.sort')) {
    const th = button.parentElement
    if (button.dataset.sort === list.sort.key) th.setAttribute('aria-sort', list.sort.desc ? 'descending' : 'ascending')
    else th.removeAttribute('aria-sort')
  }
}

/** A table cell showing `value` (a string or a node), tagged with its column. */
function cell (col, value, props = {}) {
  return el('td', { data: { col }, ...props }, value)
}

function roomRow (r) {
  const href = roomHash(r.kind, r.id)
  const failed = typeof r.failed === 'string' && r.failed !== ''
  const tr = el('tr', {
    class: failed ? 'failed' : undefined,
    data: { roomId: String(r.id ?? ''), roomKind: String(r.kind ?? '') }
  })
  const isGame = r.kind === 'game'
  tr.append(
    cell('id', el('a', { href, text: text(r.id) })),
    cell('kind', text(r.kind)),
    cell('game', text(r.game)),
    cell('members', fmtNum(r.members), { class: 'num' }),
    cell('tick-rate', isGame && isNum(r.tick_rate_hz) ? `${r.tick_rate_hz} Hz` : DASH, { class: 'num' }),
    cell('tick-p50', isGame ? fmtNum(r.tick_p50_ms, 2) : DASH, { class: 'num' }),
    cell('tick-p99', isGame ? fmtNum(r.tick_p99_ms, 2) : DASH, { class: 'num' }),
    cell('bytes-out', fmtRate(r.bytes_out_per_sec), { class: 'num' }),
    cell('doc-size', r.kind === 'doc' ? fmtBytes(r.doc_bytes) : DASH, { class: 'num' }),
    cell('created', fmtAge(r.created_at_ms), { title: fmtDate(r.created_at_ms) }),
    cell('last-snapshot', fmtSnapshot(r.last_snapshot), { title: fmtDate(r.last_snapshot?.created_at) }),
    cell('failed', failed ? 'FAILED' : '', { title: failed ? r.failed : undefined, class: failed ? 'error' : undefined })
  )
  return tr
}

function onSortClick (event) {
  const button = event.target.closest('button.sort')
  if (!button) return
  const key = button.dataset.sort
  if (list.sort.key === key) list.sort.desc = !list.sort.desc
  else list.sort = { key, desc: SORTS[key].desc }
  renderRooms()
}

function onRowClick (event) {
  if (event.target.closest('a, button')) return
  const row = event.target.closest('tr[data-room-id]')
  if (row) location.hash = roomHash(row.dataset.roomKind, row.dataset.roomId)
}

// ------------------------------------------------------------------ room view

const room = {
  /** The room shown: {kind, id}, or null. Answers for another room are dropped. */
  current: null,
  /** The newest snapshot id the list shows (a newer one in the room's figures reloads it). */
  listedSnapshot: undefined,
  /** Numbers the snapshot list requests, so a late answer cannot overwrite a newer one. */
  snapshotsRequest: 0,
  poller: new Poller(refreshRoom, REFRESH_MS),
  state: null,
  snapshot: null
}

const GAME_MEMBER_COLUMNS = [
  ['player', 'player', (m) => text(m.player)],
  ['conn', 'conn', (m) => text(m.conn)],
  ['connected', 'connected', (m) => fmtSecs(m.connected_secs)],
  ['outbox', 'outbox', (m) => fmtNum(m.outbox_depth)],
  ['skipped', 'frames skipped', (m) => fmtNum(m.frames_skipped)],
  ['latency', 'latency ms', (m) => fmtNum(m.latency_ms, 1)]
]
const DOC_MEMBER_COLUMNS = [
  ['conn', 'conn', (m) => text(m.conn)],
  ['connected', 'connected', (m) => fmtSecs(m.connected_secs)],
  ['outbox', 'outbox', (m) => fmtNum(m.outbox_depth)],
  ['latency', 'latency ms', (m) => fmtNum(m.latency_ms, 1)]
]

function openRoom (kind, id) {
  list.poller.stop()
  const same = room.current && room.current.kind === kind && room.current.id === id
  if (!same) {
    room.current = { kind, id }
    room.listedSnapshot = undefined
    $('room-title').textContent = `${kind} room ${id}`
    document.title = `${id} · roomcast`
    $('room-gone').hidden = true
    $('room-figures').replaceChildren()
    $('room-member-count').textContent = ''
    $('room-members-head').replaceChildren(
      ...(kind === 'doc' ? DOC_MEMBER_COLUMNS : GAME_MEMBER_COLUMNS).map(([, label]) => el('th', { text: label })))
    $('room-members-body').replaceChildren()
    room.state.reset()
    hideSnapshot()
    $('snapshots-body').replaceChildren()
    showSnapshotsMessage('loading…')
    loadSnapshots()
  }
  showView('room-view')
  room.poller.start()
}

function isCurrent (target) {
  return room.current === target
}

async function refreshRoom () {
  const target = room.current
  if (!target) return
  let data
  try {
    data = await api('GET', roomPath(target))
  } catch (err) {
    if (err.isAuth || !isCurrent(target)) return
    const gone = $('room-gone')
    gone.textContent = err.status === 404
      ? 'This room is not live (closed, or stopped when it emptied). Its snapshots are listed below.'
      : `refresh failed at ${fmtClock(new Date())}: ${describeError(err)}`
    gone.hidden = false
    return
  }
  if (!isCurrent(target) || !data || typeof data !== 'object') return
  $('room-gone').hidden = true
  renderRoom(target, data)
  const newest = data.last_snapshot?.id
  if (newest !== undefined && newest !== null && room.listedSnapshot !== undefined && newest !== room.listedSnapshot) {
    loadSnapshots()
  }
}

function figure (key, label, value, title) {
  return el('div', {}, el('dt', { text: label }), el('dd', { text: value, title, data: { figure: key } }))
}

function renderRoom (target, d) {
  const figures = [
    figure('created', 'created', fmtAge(d.created_at_ms), fmtDate(d.created_at_ms)),
    figure('bytes-out', 'out', fmtRate(d.bytes_out_per_sec)),
    figure('last-snapshot', 'last snapshot', fmtSnapshot(d.last_snapshot), fmtDate(d.last_snapshot?.created_at))
  ]
  if (target.kind === 'game') {
    const t = d.timing && typeof d.timing === 'object' ? d.timing : {}
    const away = Array.isArray(d.away_players) ? d.away_players : []
    const failed = typeof d.failed === 'string' && d.failed !== ''
    figures.unshift(
      figure('game', 'game', text(d.game)),
      figure('tick', 'tick', fmtNum(d.tick)),
      figure('tick-rate', 'tick rate', isNum(d.tick_rate_hz) ? `${d.tick_rate_hz} Hz` : DASH)
    )
    figures.push(
      figure('tick-p50', 'tick p50', fmtUs(t.duration_p50_us)),
      figure('tick-p99', 'tick p99', fmtUs(t.duration_p99_us)),
      figure('lateness-p99', 'lateness p99', fmtUs(t.lateness_p99_us)),
      figure('lateness-max', 'lateness max', fmtUs(t.lateness_max_us)),
      figure('ticks', 'ticks timed', fmtNum(t.ticks)),
      figure('overruns', 'overruns', fmtNum(t.overruns)),
      figure('away', 'away players', away.length ? away.map(String).join(', ') : DASH),
      figure('failed', 'failed', failed ? d.failed : 'no')
    )
  } else {
    figures.push(
      figure('doc-size', 'doc size', fmtBytes(d.doc_bytes)),
      figure('updates', 'updates applied', fmtNum(d.updates_applied)),
      figure('awareness', 'awareness clients', fmtNum(d.awareness_clients))
    )
  }
  $('room-figures').replaceChildren(...figures)
  $('room-figures').classList.toggle('failed', target.kind === 'game' && typeof d.failed === 'string' && d.failed !== '')

  // Doc members used to be bare connection ids: accept both shapes.
  const members = (Array.isArray(d.members) ? d.members : [])
    .map((m) => (m && typeof m === 'object' ? m : { conn: m }))
  const columns = target.kind === 'doc' ? DOC_MEMBER_COLUMNS : GAME_MEMBER_COLUMNS
  $('room-member-count').textContent = `(${members.length})`
  $('room-members-body').replaceChildren(...members.map((m) =>
    el('tr', { data: { conn: text(m.conn) } },
      ...columns.map(([col, , value]) => cell(col, value(m), { class: col === 'player' || col === 'conn' ? undefined : 'num' })))))

  room.state.show(d.state)
}

// ------------------------------------------------------------------ snapshots

function showSnapshotsMessage (message) {
  const p = $('snapshots-message')
  p.textContent = message || ''
  p.hidden = !message
  $('snapshots-table').hidden = Boolean(message)
}

async function loadSnapshots () {
  const target = room.current
  if (!target) return
  const request = ++room.snapshotsRequest
  let data
  try {
    data = await api('GET', `${roomPath(target)}/snapshots`)
  } catch (err) {
    if (err.isAuth || !isCurrent(target) || request !== room.snapshotsRequest) return
    $('snapshots-body').replaceChildren()
    // 503 `unavailable`: persistence is off (or the store is down); say so.
    showSnapshotsMessage(err.code === 'unavailable' ? err.message : `could not list snapshots: ${describeError(err)}`)
    return
  }
  if (!isCurrent(target) || request !== room.snapshotsRequest) return
  const snapshots = Array.isArray(data?.snapshots) ? data.snapshots.filter((s) => s && typeof s === 'object') : []
  room.listedSnapshot = snapshots.length ? snapshots[0].id : null
  $('snapshots-body').replaceChildren(...snapshots.map((s) =>
    el('tr', { data: { snapshotId: text(s.id) } },
      cell('id', `#${text(s.id)}`, { class: 'num' }),
      cell('taken', fmtAge(s.created_at), { title: fmtDate(s.created_at) }),
      cell('size', fmtBytes(s.bytes), { class: 'num' }),
      cell('tick-or-seq', fmtNum(s.tick_or_seq), { class: 'num' }),
      el('td', { data: { col: 'actions' } },
        el('button', { type: 'button', class: 'view-snapshot small', text: 'view', onclick: () => viewSnapshot(target, s.id) }),
        ' ',
        el('button', { type: 'button', class: 'restore-snapshot small', text: 'restore', onclick: () => restoreSnapshot(target, s.id) })))))
  showSnapshotsMessage(snapshots.length ? '' : 'No snapshots yet.')
}

async function viewSnapshot (target, n) {
  let data
  try {
    data = await api('GET', `${roomPath(target)}/snapshots/${encodeURIComponent(n)}`)
  } catch (err) {
    if (!err.isAuth) setStatus(`could not load snapshot #${n}: ${describeError(err)}`, true)
    return
  }
  if (!isCurrent(target)) return
  $('snapshot-view-title').textContent = `snapshot #${n} of ${target.id}`
  room.snapshot.reset()
  room.snapshot.show(data)
  $('snapshot-view').hidden = false
}

function hideSnapshot () {
  $('snapshot-view').hidden = true
  room.snapshot.reset()
}

async function restoreSnapshot (target, n) {
  if (!confirm(`Restore ${target.kind} room ${target.id} to snapshot #${n}?\nIts current state is replaced for every member.`)) return
  try {
    const res = await api('POST', `${roomPath(target)}/restore`, { snapshot: n })
    setStatus(`${target.id} restored from snapshot #${text(res?.restored_from ?? n)}`)
  } catch (err) {
    if (!err.isAuth) setStatus(`restore of ${target.id} from #${n} failed: ${describeError(err)}`, true)
    return
  }
  if (isCurrent(target)) room.poller.now()
}

async function takeSnapshot () {
  const target = room.current
  if (!target) return
  const button = $('take-snapshot')
  button.disabled = true
  try {
    const res = await api('POST', `${roomPath(target)}/snapshots`)
    const meta = res?.snapshot
    setStatus(`snapshot #${text(meta?.id)} of ${target.id} taken (${fmtBytes(meta?.bytes)})`)
    if (isCurrent(target)) await loadSnapshots()
  } catch (err) {
    if (!err.isAuth) setStatus(`snapshot of ${target.id} failed: ${describeError(err)}`, true)
  } finally {
    button.disabled = false
  }
}

async function closeRoom () {
  const target = room.current
  if (!target) return
  if (!confirm(`Close ${target.kind} room ${target.id}?\nIt is snapshotted, then every member is disconnected (1001).`)) return
  const button = $('close-room')
  button.disabled = true
  // No refresh of the room may race its closing (it would report it gone).
  await room.poller.stop()
  try {
    await api('DELETE', roomPath(target))
    setStatus(`${target.kind} room ${target.id} closed`)
    if (isCurrent(target)) location.hash = '#/'
  } catch (err) {
    if (!err.isAuth) {
      setStatus(`closing ${target.id} failed: ${describeError(err)}`, true)
      if (isCurrent(target)) room.poller.start()
    }
  } finally {
    button.disabled = false
  }
}

// ---------------------------------------------------------------------- start

room.state = new JsonView($('room-state'), $('state-toggle'))
room.snapshot = new JsonView($('snapshot-json'), $('snapshot-toggle'))

$('token-form').addEventListener('submit', onTokenSubmit)
$('sign-out').addEventListener('click', () => {
  signOut()
  setStatus('token forgotten')
})
$('kind-filter').addEventListener('change', renderRooms)
$('text-filter').addEventListener('input', renderRooms)
$('rooms-table').querySelector('thead').addEventListener('click', onSortClick)
$('rooms-body').addEventListener('click', onRowClick)
$('take-snapshot').addEventListener('click', takeSnapshot)
$('close-room').addEventListener('click', closeRoom)
$('reload-snapshots').addEventListener('click', () => loadSnapshots())
$('snapshot-view-close').addEventListener('click', hideSnapshot)
window.addEventListener('hashchange', route)
// A hidden tab stops polling; showing it again refreshes at once.
document.addEventListener('visibilitychange', () => {
  if (document.hidden) {
    list.poller.stop()
    room.poller.stop()
  } else {
    route()
  }
})

route()
