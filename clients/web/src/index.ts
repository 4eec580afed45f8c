/**
 * The index page: each "room name" form opens its demo at `/{page}.html#{name}`.
 * (Without JavaScript the forms submit `?room=name`, which the demos accept too.)
 *
 * @module
 */

import { cleanRoomName } from './location.ts';

for (const form of document.querySelectorAll<HTMLFormElement>('form[data-demo]')) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const input = form.elements.namedItem('room') as HTMLInputElement;
    const fallback = input.placeholder;
    location.href = `${form.getAttribute('action') ?? '/'}#${cleanRoomName(input.value, fallback)}`;
  });
}
