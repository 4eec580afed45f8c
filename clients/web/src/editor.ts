/**
 * The shared editor demo (`/editor.html#name`): CodeMirror 6 on a roomcast doc
 * room, with the stock Yjs stack and nothing roomcast-specific:
 * `WebsocketProvider('ws(s)://HOST/doc', name, doc)` and y-codemirror.next's
 * `yCollab` on the text `codemirror`.
 *
 * Each visitor gets a random name and color in the awareness, so the others'
 * cursors and selections show with their names; a status indicator follows the
 * provider's `status` events and a list shows who is here.
 *
 * `window.__editor` is a read-only hook for the browser tests.
 *
 * @module
 */

import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next';
import { EditorState } from '@codemirror/state';
import {
  EditorView,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
  placeholder,
} from '@codemirror/view';
import { defaultKeymap, indentWithTab } from '@codemirror/commands';
import { bindRoomForm, byId, roomFromLocation, socketBase } from './location.ts';

const DEFAULT_DOC = 'notes';
/** The Y.Text the editor is bound to (y-codemirror.next's demo name). */
const TEXT_NAME = 'codemirror';

type Status = 'connecting' | 'connected' | 'disconnected';

/** What the awareness carries about a user. */
interface User {
  name: string;
  color: string;
  colorLight: string;
}

// ---------------------------------------------------------------------------
// Who am I: a random name and color, kept for this tab's lifetime.

const ADJECTIVES = ['Amber', 'Brisk', 'Calm', 'Deft', 'Eager', 'Fuzzy', 'Gentle', 'Happy', 'Jolly', 'Keen', 'Lucky', 'Merry', 'Nimble', 'Quiet', 'Swift', 'Witty'];
const ANIMALS = ['Otter', 'Badger', 'Heron', 'Lynx', 'Marten', 'Puffin', 'Raven', 'Seal', 'Stoat', 'Tapir', 'Wombat', 'Yak', 'Gecko', 'Ibis', 'Koala', 'Lemur'];
/** Caret colors (readable on white) and their light selection shades. */
const COLORS: ReadonlyArray<readonly [string, string]> = [
  ['#d9480f', '#d9480f33'],
  ['#2b8a3e', '#2b8a3e33'],
  ['#1971c2', '#1971c233'],
  ['#9c36b5', '#9c36b533'],
  ['#c2255c', '#c2255c33'],
  ['#0c8599', '#0c859933'],
  ['#e67700', '#e6770033'],
  ['#5f3dc4', '#5f3dc433'],
];

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)];

function me(): User {
  const key = 'roomcast-editor-user';
  try {
    const saved = JSON.parse(sessionStorage.getItem(key) ?? 'null') as User | null;
    if (saved !== null && typeof saved.name === 'string' && typeof saved.color === 'string') return saved;
  } catch {
    // Unreadable or unavailable storage: make up a new user.
  }
  const [color, colorLight] = pick(COLORS);
  const user = { name: `${pick(ADJECTIVES)} ${pick(ANIMALS)}`, color, colorLight };
  try {
    sessionStorage.setItem(key, JSON.stringify(user));
  } catch {
    // Storage refused: the name just will not survive a reload.
  }
  return user;
}

const user = me();

// ---------------------------------------------------------------------------
// Page elements

const statusEl = byId('status');
const peersEl = byId<HTMLUListElement>('peers');
const editorEl = byId('editor');
const showDoc = bindRoomForm(byId<HTMLFormElement>('doc-form'), byId<HTMLInputElement>('doc-input'), DEFAULT_DOC);

// ---------------------------------------------------------------------------
// One open document at a time

interface Session {
  readonly name: string;
  readonly doc: Y.Doc;
  readonly text: Y.Text;
  readonly provider: WebsocketProvider;
  readonly view: EditorView;
}

let session: Session | null = null;
let status: Status = 'connecting';
let synced = false;

function setStatus(next: Status): void {
  status = next;
  statusEl.dataset.status = next;
  statusEl.textContent = next === 'connected' && !synced ? 'connected (syncing)' : next;
}

/** A user announced by an awareness state, if it looks like one. */
function userOf(state: Record<string, unknown> | undefined): User | null {
  const u = state?.user as Partial<User> | undefined;
  if (u === undefined || typeof u.name !== 'string' || typeof u.color !== 'string') return null;
  return { name: u.name, color: u.color, colorLight: typeof u.colorLight === 'string' ? u.colorLight : u.color };
}

/** Redraws the list of people in the document (oneself first). */
function renderPeers(s: Session): void {
  const awareness = s.provider.awareness;
  const entries: Array<{ user: User; self: boolean; id: number }> = [];
  awareness.getStates().forEach((state, id) => {
    const u = userOf(state);
    if (u !== null) entries.push({ user: u, self: id === awareness.clientID, id });
  });
  entries.sort((a, b) => Number(b.self) - Number(a.self) || a.user.name.localeCompare(b.user.name) || a.id - b.id);
  const items = entries.map(({ user: u, self }) => {
    const li = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.backgroundColor = u.color; // CSSOM: an invalid color is ignored
    const name = document.createElement('span');
    name.className = 'peer-name';
    name.textContent = self ? `${u.name} (you)` : u.name;
    li.append(swatch, name);
    if (self) li.classList.add('self');
    return li;
  });
  peersEl.replaceChildren(...items);
}

function open(name: string): void {
  close();
  showDoc(name);
  document.title = `${name} · editor · roomcast`;
  synced = false;
  setStatus('connecting');

  const doc = new Y.Doc();
  const text = doc.getText(TEXT_NAME);
  // Tabs of one browser would otherwise sync through a BroadcastChannel; the
  // demo shows what goes through the server.
  const provider = new WebsocketProvider(`${socketBase()}/doc`, name, doc, { connect: false, disableBc: true });
  provider.awareness.setLocalStateField('user', user);

  const view = new EditorView({
    parent: editorEl,
    state: EditorState.create({
      doc: text.toString(),
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightActiveLine(),
        drawSelection(),
        EditorView.lineWrapping,
        placeholder('Type here; everyone in this document sees it live.'),
        keymap.of([...yUndoManagerKeymap, ...defaultKeymap, indentWithTab]),
        yCollab(text, provider.awareness),
      ],
    }),
  });

  const s: Session = { name, doc, text, provider, view };
  session = s;
  provider.on('status', ({ status: next }) => {
    if (session === s) setStatus(next);
  });
  provider.on('sync', (isSynced: boolean) => {
    if (session !== s) return;
    synced = isSynced;
    setStatus(status);
  });
  provider.awareness.on('change', () => {
    if (session === s) renderPeers(s);
  });
  renderPeers(s);
  provider.connect();
}

function close(): void {
  const s = session;
  session = null;
  if (s === null) return;
  s.view.destroy();
  s.provider.destroy();
  s.doc.destroy();
}

// ---------------------------------------------------------------------------
// Test hook (read-only)

/** Test hook for the browser tests (tests/node/demos.test.mjs); not an API. */
const hook = Object.freeze({
  /** The shared text as this page has it. */
  text: (): string => session?.text.toString() ?? '',
  /** The provider's status: `connecting`, `connected` or `disconnected`. */
  get status(): Status {
    return status;
  },
  /** True once the first sync with the server completed. */
  get synced(): boolean {
    return synced;
  },
  /** The document's name. */
  get name(): string {
    return session?.name ?? '';
  },
  /** How many other users are in the document (awareness states with a user). */
  peers: (): number => {
    const awareness = session?.provider.awareness;
    if (awareness === undefined) return 0;
    let n = 0;
    awareness.getStates().forEach((state, id) => {
      if (id !== awareness.clientID && userOf(state) !== null) n += 1;
    });
    return n;
  },
});
(window as unknown as { __editor: typeof hook }).__editor = hook;

// ---------------------------------------------------------------------------
// Start

window.addEventListener('hashchange', () => {
  const next = roomFromLocation(DEFAULT_DOC);
  if (next !== session?.name) open(next);
});
open(roomFromLocation(DEFAULT_DOC));
