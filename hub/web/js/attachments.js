// Files in a thread: the composer's tray of uploads (each file sent to the hub as soon as it is
// chosen, one at a time, with its progress, and shown as a chip until the message goes), and a
// message's attachments (image previews and download buttons). The thread's Files panel
// (`files.js`) shows and saves its files through the same Previews and download.
//
// The hub serves files and thumbnails only with the bearer token in the Authorization header,
// which an <img src> or <a href> cannot send: both are fetched, and shown or saved through blob:
// URLs, each revoked once nothing shows it any more.

import { errorText, h, randomId, replace } from './dom.js';

export const MAX_FILES = 10; // a message's attachments, as the hub allows

// What the hub accepts (hub/attachments/types.py). `image/*` is there so that a phone offers its
// camera and photo library; the hub still checks every image's type.
export const ACCEPT = [
  'image/*', 'image/heic', 'image/heif', '.heic', '.heif',
  'application/pdf', '.pdf',
  '.doc', '.docx', '.xls', '.xlsx', '.ppt', '.pptx', '.odt', '.ods', '.odp',
  'application/msword', 'application/vnd.ms-excel', 'application/vnd.ms-powerpoint',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  'application/vnd.oasis.opendocument.text', 'application/vnd.oasis.opendocument.spreadsheet',
  'application/vnd.oasis.opendocument.presentation',
  'text/plain', 'text/csv', 'text/markdown', '.txt', '.csv', '.md',
].join(',');

const PREVIEW_BOX = 320; // the largest a preview is drawn, in CSS pixels a side

export function formatSize(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB'];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 999.95 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

// What a message with files and no caption says in a reply's quote: the file's name, or how many.
export function describeFiles(attachments) {
  if (!attachments || !attachments.length) return '';
  if (attachments.length === 1) return attachments[0].filename;
  return `${attachments.length} files`;
}

// --- the composer's tray ---------------------------------------------------------------------------

// `uploadTray(app, threadId, { onProblem })` -> { el, add(files), uploaded(), busy(), clear(),
// dispose() }. `onProblem(text)` says what the tray refused as a whole (too many files).
export function uploadTray(app, threadId, { onProblem = () => {} } = {}) {
  const entries = []; // { key, file, state: queued|uploading|done|failed, sent, record, error, el, job }
  const el = h('ul', { class: 'uploads', 'aria-label': 'Files to send', hidden: true });
  let running = false;

  function add(files) {
    const room = MAX_FILES - entries.filter((e) => e.state !== 'failed').length;
    const chosen = Array.from(files);
    if (chosen.length > room) {
      onProblem(`At most ${MAX_FILES} files go with one message: ${chosen.length - Math.max(room, 0)} not added.`);
    }
    for (const file of chosen.slice(0, Math.max(room, 0))) {
      const entry = { key: randomId(), file, state: 'queued', sent: 0, record: null, error: null, el: h('li', { class: 'chip' }), job: null };
      entries.push(entry);
      el.append(entry.el);
      show(entry);
    }
    el.hidden = entries.length === 0;
    next();
  }

  // One upload at a time: on a venue's Wi-Fi, parallel uploads only make each one slower.
  async function next() {
    if (running) return;
    const entry = entries.find((e) => e.state === 'queued');
    if (!entry) return;
    running = true;
    entry.state = 'uploading';
    show(entry);
    entry.job = app.upload(`/threads/${threadId}/attachments`, entry.file, { filename: entry.file.name }, (sent) => {
      entry.sent = sent;
      show(entry);
    });
    try {
      entry.record = await entry.job.done;
      entry.state = 'done';
    } catch (error) {
      entry.state = 'failed';
      entry.error = errorText(error);
    } finally {
      entry.job = null;
      running = false;
    }
    if (entries.includes(entry)) show(entry);
    next();
  }

  function show(entry) {
    const { file } = entry;
    let status;
    if (entry.state === 'queued') status = 'waiting';
    else if (entry.state === 'uploading') status = `uploading… ${percent(entry.sent, file.size)} %`;
    else if (entry.state === 'done') status = formatSize(entry.record.size);
    else status = `Not uploaded: ${entry.error}`;
    entry.el.className = `chip ${entry.state}`;
    replace(
      entry.el,
      h('span', { class: 'name' }, file.name),
      entry.state === 'uploading'
        ? h('progress', { max: 100, value: percent(entry.sent, file.size), 'aria-label': `Uploading ${file.name}` })
        : null,
      h('span', { class: entry.state === 'failed' ? 'status error' : 'status', role: entry.state === 'failed' ? 'alert' : null }, status),
      h('button', { type: 'button', class: 'link remove', 'aria-label': `Remove ${file.name}`, onclick: () => remove(entry) }, '×'),
    );
  }

  // A file taken out before sending is removed from the hub too, so it stops counting against
  // the organization's quota at once; if that fails, the hub's sweep of unattached uploads
  // (HUB_ATTACHMENT_ORPHAN_HOURS) takes it later, so the chip goes either way.
  function remove(entry) {
    if (entry.job) entry.job.abort();
    if (entry.state === 'done') app.api('DELETE', `/attachments/${entry.record.id}`).catch(() => {});
    forget(entry);
  }

  function forget(entry) {
    entries.splice(entries.indexOf(entry), 1);
    entry.el.remove();
    el.hidden = entries.length === 0;
  }

  // After sending: the uploads now belong to the message.
  function clear() {
    for (const entry of [...entries]) {
      if (entry.job) entry.job.abort();
      forget(entry);
    }
  }

  return {
    el,
    add,
    clear,
    busy: () => entries.some((e) => e.state === 'queued' || e.state === 'uploading'),
    uploaded: () => entries.filter((e) => e.state === 'done').map((e) => e.record),
    dispose: () => {
      for (const entry of entries) if (entry.job) entry.job.abort();
    },
  };
}

function percent(sent, total) {
  return total ? Math.min(100, Math.floor((sent / total) * 100)) : 0;
}

// What a message stores about a file (`metadata.attachments[]`), from the upload's answer.
export function summary(record) {
  const entry = {
    id: record.id, filename: record.filename, content_type: record.content_type,
    size: record.size, sha256: record.sha256, thumbnail: Boolean(record.thumbnail),
  };
  if (record.width && record.height) {
    entry.width = record.width;
    entry.height = record.height;
  }
  return entry;
}

// --- a message's files -----------------------------------------------------------------------------

// The blob: URLs a thread view shows: previews are loaded as they come near the screen and
// revoked when their message leaves the page or the view closes.
export class Previews {
  constructor(app, log) {
    this.app = app;
    this.urls = new Map(); // img -> blob: URL
    this.seen = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        this.seen.unobserve(entry.target);
        this.load(entry.target);
      }
    }, { root: log, rootMargin: '600px 0px' });
    this.gone = new MutationObserver(() => this.sweep());
    this.gone.observe(log, { childList: true, subtree: true });
  }

  watch(img) {
    this.seen.observe(img);
  }

  async load(img) {
    const frame = img.closest('.preview');
    try {
      const data = await this.app.blob(`/attachments/${img.dataset.attachment}/thumbnail`);
      if (this.disposed || !img.isConnected) return;
      const url = URL.createObjectURL(data);
      this.urls.set(img, url);
      img.src = url;
    } catch (error) {
      if (this.disposed || !frame) return;
      frame.classList.add('failed');
      frame.append(h('span', { class: 'hint' }, `No preview: ${errorText(error)}`));
    }
  }

  sweep() {
    for (const [img, url] of this.urls) {
      if (img.isConnected) continue;
      URL.revokeObjectURL(url);
      this.urls.delete(img);
    }
  }

  dispose() {
    this.disposed = true;
    this.seen.disconnect();
    this.gone.disconnect();
    for (const url of this.urls.values()) URL.revokeObjectURL(url);
    this.urls.clear();
  }
}

// A message's files: a preview of each image the hub drew a thumbnail of, and a download button
// for every file. Filenames are text, like every other thing a person wrote.
export function attachmentList(app, attachments, previews) {
  return h('ul', { class: 'files', 'aria-label': 'Files' }, attachments.map((file) => {
    const problem = h('span', { class: 'error', role: 'alert' });
    const button = h('button', { type: 'button', class: 'secondary compact file' },
      h('span', { class: 'sr' }, 'Download '),
      h('span', { class: 'name' }, file.filename),
      ' ',
      h('span', { class: 'size' }, formatSize(file.size)));
    button.addEventListener('click', () => download(app, file, button, problem));
    let preview = null;
    if (file.thumbnail) {
      const img = h('img', {
        alt: file.filename,
        width: file.width || null,
        height: file.height || null,
        dataset: { attachment: file.id },
      });
      if (file.width && file.height) {
        // The size it will be drawn at, known before it loads: nothing moves when it arrives.
        const scale = Math.min(1, PREVIEW_BOX / Math.max(file.width, file.height));
        img.style.width = `${Math.max(1, Math.round(file.width * scale))}px`;
      }
      preview = h('div', { class: 'preview' }, img);
      previews.watch(img);
    }
    return h('li', {}, preview, h('div', { class: 'row' }, button, problem));
  }));
}

// Saves a file (`{ id, filename }`) through a blob: URL; `button` is disabled meanwhile and
// `problem` says why when it fails. Messages and the thread's Files panel both save this way.
export async function download(app, file, button, problem) {
  problem.textContent = '';
  button.disabled = true;
  try {
    const data = await app.blob(`/attachments/${file.id}`);
    const url = URL.createObjectURL(data);
    const link = h('a', { href: url, download: file.filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    // Some browsers read the URL after the click returns; a minute is long enough for any.
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (error) {
    problem.textContent = `Not downloaded: ${errorText(error)}`;
  } finally {
    button.disabled = false;
  }
}
