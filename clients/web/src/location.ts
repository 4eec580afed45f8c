/**
 * Room names in page URLs: `/arena.html#lobby`, `/editor.html#notes`.
 *
 * The server accepts 1 to 128 characters of `[A-Za-z0-9_.-]` for game and doc
 * rooms alike (server/src/room/name.rs); anything else is mapped onto that
 * alphabet here, so a typo in the address bar still opens a room.
 *
 * @module
 */

const MAX_NAME = 128;

/** `name` made acceptable to the server: other characters become `-`; empty → `fallback`. */
export function cleanRoomName(name: string, fallback: string): string {
  const cleaned = name
    .trim()
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .slice(0, MAX_NAME);
  return cleaned === '' ? fallback : cleaned;
}

/**
 * The room named by the page's URL: its hash, else (the index page's forms
 * without JavaScript) its `?room=` parameter, else `fallback`. Rewrites the
 * URL to the canonical `#name` form when it differs.
 */
export function roomFromLocation(fallback: string): string {
  let raw = location.hash.slice(1);
  try {
    raw = decodeURIComponent(raw);
  } catch {
    // A malformed escape: use the text as it is (cleaning maps it anyway).
  }
  if (raw === '') raw = new URLSearchParams(location.search).get('room') ?? '';
  const name = cleanRoomName(raw, fallback);
  if (location.hash !== `#${name}` || location.search !== '') {
    history.replaceState(null, '', `${location.pathname}#${name}`);
  }
  return name;
}

/** `ws://` or `wss://` (matching the page) plus this page's host. */
export function socketBase(): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
}

/**
 * Makes a "room name" form switch rooms by setting the hash (the page's
 * `hashchange` handler rejoins), and keeps its field showing the current room.
 */
export function bindRoomForm(form: HTMLFormElement, input: HTMLInputElement, fallback: string): (room: string) => void {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = cleanRoomName(input.value, fallback);
    input.value = name;
    location.hash = name;
  });
  return (room) => {
    input.value = room;
  };
}

/** The element with `id`, which the page's HTML is known to contain. */
export function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el as T;
}
