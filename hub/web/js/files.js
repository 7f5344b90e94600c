// A thread's files in one place, as Slack and Mattermost show a channel's: every file sent in
// the thread, newest first, a page at a time, each with its size, who sent it (when the page
// knows), when, a thumbnail if it is an image the hub drew one of, and a download button. It
// opens as a dialog from the thread's header and follows the thread while it is open: a file
// sent meanwhile appears at the top without a reload.
//
// The list is the hub's (`GET /threads/{id}/attachments`, newest first, paged with
// `next_cursor`). A refresh fetches the first page again and puts it before what is already
// shown that it does not hold: everything outside the newest page is older than all of it, so
// the order stays the hub's, nothing shows twice, and the cursor still points after the last
// file shown.

import { Previews, download, formatSize } from './attachments.js';
import { errorText, formatTime, h, randomId, replace } from './dom.js';

const PAGE = 20;

// `filesPanel(app, threadId, { senderOf })` -> { button, dialog, changed(), dispose() }: the
// header's Files button and the dialog it opens (both to be put in the page); `changed()` is
// called when a message with files arrives. `senderOf(file)` names who sent a file, or null.
export function filesPanel(app, threadId, { senderOf = () => null } = {}) {
  const shown = {
    files: [], // newest first, as the hub lists them
    rows: new Map(), // attachment id -> li
    cursor: null, // the hub's next_cursor after the last file shown
    loaded: false, // a first page has come
    generation: 0, // bumped on open and close: answers for an earlier opening are dropped
    refreshing: false, // a refresh is queued and has not started
    disposed: false,
  };
  let queue = Promise.resolve(); // one request at a time, in order

  const headingId = `files-${randomId()}`;
  const button = h('button', {
    type: 'button', class: 'secondary compact', 'aria-haspopup': 'dialog', 'aria-expanded': 'false', onclick: () => open(),
  }, 'Files');
  const list = h('ul', { class: 'shared-files', 'aria-label': 'Files of this thread' });
  const status = h('p', { class: 'empty', role: 'status', hidden: true });
  const problem = h('p', { class: 'error', role: 'alert' });
  const retry = h('button', { type: 'button', class: 'secondary compact', hidden: true, onclick: () => enqueue(firstPage) }, 'Try again');
  const more = h('button', { type: 'button', class: 'secondary more', hidden: true, onclick: () => enqueue(nextPage) }, 'Load more');
  const body = h('div', { class: 'files-body' }, list, status, problem, retry, more);
  const dialog = h('dialog', { class: 'files-panel', 'aria-labelledby': headingId },
    h('div', { class: 'files-head' },
      h('h2', { id: headingId }, 'Files'),
      h('button', { type: 'button', class: 'secondary compact', onclick: () => dialog.close() }, 'Close')),
    body);
  const previews = new Previews(app, body);

  // A click on the backdrop lands on the dialog itself (its contents fill it): close, as Escape does.
  dialog.addEventListener('click', (event) => {
    if (event.target === dialog) dialog.close();
  });
  dialog.addEventListener('close', () => {
    reset();
    button.setAttribute('aria-expanded', 'false');
    if (!shown.disposed) button.focus();
  });

  function open() {
    if (dialog.open || shown.disposed) return;
    reset();
    dialog.showModal();
    button.setAttribute('aria-expanded', 'true');
    enqueue(firstPage);
  }

  // Closed, nothing is kept: the next opening lists the thread as it is then, and the
  // thumbnails' blob: URLs are let go with their rows.
  function reset() {
    shown.generation += 1;
    shown.files = [];
    shown.rows.clear();
    shown.cursor = null;
    shown.loaded = false;
    shown.refreshing = false;
    replace(list);
    status.hidden = true;
    problem.textContent = '';
    retry.hidden = true;
    more.hidden = true;
  }

  function enqueue(job) {
    const generation = shown.generation;
    queue = queue.then(() => job(generation)).catch(() => {});
  }

  function changed() {
    if (!dialog.open || shown.refreshing) return;
    shown.refreshing = true;
    enqueue(async (generation) => {
      shown.refreshing = false;
      await firstPage(generation);
    });
  }

  async function fetchPage(query) {
    return app.api('GET', `/threads/${threadId}/attachments`, undefined, { limit: PAGE, ...query });
  }

  // The newest page: the first one, or again after a file arrived.
  async function firstPage(generation) {
    if (generation !== shown.generation) return;
    if (!shown.loaded) {
      status.textContent = 'Loading…';
      status.hidden = false;
    }
    retry.hidden = true;
    let page;
    try {
      page = await fetchPage({});
    } catch (error) {
      if (generation !== shown.generation) return;
      status.hidden = true;
      problem.textContent = `Could not ${shown.loaded ? 'refresh' : 'load'} the files: ${errorText(error)}`;
      retry.hidden = false;
      return;
    }
    if (generation !== shown.generation) return;
    const fresh = new Set(page.items.map((file) => file.id));
    shown.files = [...page.items, ...shown.files.filter((file) => !fresh.has(file.id))];
    if (!shown.loaded) shown.cursor = page.next_cursor || null;
    shown.loaded = true;
    problem.textContent = '';
    render();
  }

  async function nextPage(generation) {
    if (generation !== shown.generation || !shown.cursor) return;
    more.disabled = true;
    problem.textContent = '';
    try {
      const page = await fetchPage({ cursor: shown.cursor });
      if (generation !== shown.generation) return;
      const known = new Set(shown.files.map((file) => file.id));
      shown.files.push(...page.items.filter((file) => !known.has(file.id)));
      shown.cursor = page.next_cursor || null;
      render();
    } catch (error) {
      if (generation === shown.generation) problem.textContent = `Could not load more files: ${errorText(error)}`;
    } finally {
      more.disabled = false;
    }
  }

  // Rows already shown stay where they are (a focused download button keeps its focus); new
  // ones go in before them.
  function render() {
    let next = list.firstChild;
    for (const file of shown.files) {
      let row = shown.rows.get(file.id);
      if (!row) {
        row = fileRow(file);
        shown.rows.set(file.id, row);
      }
      if (row === next) next = next.nextSibling;
      else list.insertBefore(row, next);
    }
    status.textContent = 'No files shared in this thread yet';
    status.hidden = shown.files.length > 0;
    more.hidden = !shown.cursor;
  }

  function fileRow(file) {
    const trouble = h('span', { class: 'error', role: 'alert' });
    const save = h('button', { type: 'button', class: 'secondary compact save' },
      'Download', h('span', { class: 'sr' }, ` ${file.filename}`));
    save.addEventListener('click', () => download(app, file, save, trouble));
    const sender = senderOf(file);
    return h('li', { class: 'shared-file' },
      thumbnail(file),
      h('div', { class: 'about' },
        h('span', { class: 'name' }, file.filename),
        h('span', { class: 'meta' },
          formatSize(file.size),
          sender ? ` · ${sender}` : '',
          ' · ',
          h('time', { datetime: file.created_at }, formatTime(file.created_at))),
        trouble),
      save);
  }

  // The file's kind from its name, under its thumbnail while that loads (or if it cannot).
  function thumbnail(file) {
    const frame = h('div', { class: 'thumb', 'aria-hidden': 'true' }, h('span', { class: 'kind' }, kindOf(file.filename)));
    if (file.thumbnail) {
      const img = h('img', { alt: '', dataset: { attachment: file.id } });
      frame.append(img);
      previews.watch(img);
    }
    return frame;
  }

  return {
    button,
    dialog,
    changed,
    dispose() {
      shown.disposed = true;
      if (dialog.open) dialog.close();
      reset();
      previews.dispose();
    },
  };
}

function kindOf(filename) {
  const extension = /\.([A-Za-z0-9]{1,5})$/.exec(filename);
  return extension ? extension[1].toUpperCase() : 'FILE';
}
