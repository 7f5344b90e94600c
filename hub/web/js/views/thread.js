// A thread: its history (paging back as you scroll up), live messages, who is here, who is
// typing, "seen by" from read receipts, unread marks that clear as messages come into view, and
// the composer (Enter sends, Shift+Enter is a new line; location from the browser; files, which
// upload as they are chosen and go with the next message; a change of plan, or a message that
// asks for confirmation), the thread's Files panel and its Mute toggle.
//
// A message that asks for acknowledgement carries a badge ("Change of plan", "Asks for
// confirmation") and its board under it (`acks.js`): who has confirmed, who is pending, and a
// Confirm button for a reader whose organization is pending; `message_acknowledged` frames
// update it live. Mentions the hub resolved are highlighted (`mentions.js`).
//
// A person edits and deletes their own messages (an owner or admin of the wedding's organization
// deletes anyone's); `message_edited` and `message_deleted` change what is shown, in the order of
// their `change_no`, and a deleted message stays as a tombstone in its place.
//
// Messages are kept by seq, so a message that arrives twice (a replay after a reconnect, or the
// ack and the live copy of one's own message) is shown once. History comes over REST, then the
// socket joins with `since_seq` = the newest seq shown, and the hub sends everything after it.

import { AckBoards } from '../acks.js';
import { ACCEPT, Previews, attachmentList, describeFiles, summary, uploadTray } from '../attachments.js';
import { errorText, formatTime, h, listNames, replace } from '../dom.js';
import { filesPanel } from '../files.js';
import { withMentions } from '../mentions.js';

const PAGE = 50;
const MANAGERS = new Set(['owner', 'admin', 'manager']);
const EDITABLE = new Set(['text', 'change', 'attachment']); // kinds with text of their own
const PRIORITIES = [['urgent', 'Urgent'], ['high', 'High'], ['normal', 'Normal'], ['low', 'Low']];

export function threadView(main, app, threadId, { onThread = () => {} } = {}) {
  const socket = app.socket;
  const me = app.me;
  const view = {
    thread: null,
    messages: new Map(), // seq -> message
    elements: new Map(), // seq -> article
    byId: new Map(), // message id -> message (replies)
    pendingEls: new Map(), // client_msg_id -> article
    names: new Map([[me.user_id, me.display_name]]),
    presence: new Map(), // user_id -> { name, status }
    typing: new Map(), // user_id -> timer
    receipts: new Map(), // user_id -> seq
    readSeq: 0, // my read mark
    readSent: 0,
    readWanted: 0,
    oldest: null,
    hasMore: false,
    loadingOlder: false,
    replyTo: null,
    disposed: false,
    lost: false,
    joined: false, // joined once: a later join is a reconnect, after which boards are fetched again
    muted: null, // this reader muted the thread (null: not known yet)
    moderator: false, // an owner or admin of the organization that owns the wedding
    unseen: 0,
  };

  const title = h('h1', {}, 'Thread');
  const meta = h('p', { class: 'meta' });
  const controls = h('div', { class: 'controls' });
  const here = h('p', { class: 'here', 'aria-label': 'Who is here' });
  const older = h('button', { type: 'button', class: 'link older', hidden: true, onclick: () => loadOlder() }, 'Load earlier messages');
  const log = h('div', { class: 'messages', role: 'log', 'aria-label': 'Messages', tabindex: '0' }, older);
  const jump = h('button', { type: 'button', class: 'jump', hidden: true, onclick: () => scrollToEnd() }, 'New messages ↓');
  const typingLine = h('p', { class: 'typing', 'aria-live': 'polite' });
  const replyBar = h('div', { class: 'replying', hidden: true });
  const input = h('textarea', { 'aria-label': 'Message', placeholder: 'Message', rows: 1, maxlength: 10000, enterkeyhint: 'send' });
  const sendButton = h('button', { type: 'submit' }, 'Send');
  const locationButton = h('button', { type: 'button', class: 'secondary', onclick: () => shareLocation() }, 'Share location');
  const composerProblem = h('p', { class: 'error', role: 'alert' });
  // What the next message is: a change of plan (kind change, which always asks every other
  // organization to confirm), or a message that asks for confirmation (requires_ack). Both
  // are reset once it is sent, as Mattermost resets a post's priority.
  const changeBox = h('input', { type: 'checkbox' });
  const askBox = h('input', { type: 'checkbox' });
  let askChosen = false; // ticked by the person (a change of plan ticks it for them)
  const changeToggle = h('label', { class: 'option change' }, changeBox, ' Change of plan');
  const askToggle = h('label', { class: 'option ask' }, askBox, ' Ask for confirmation');
  const composerNote = h('p', { class: 'composer-note', hidden: true });
  const fileInput = h('input', { type: 'file', multiple: true, accept: ACCEPT, hidden: true });
  const attachButton = h('button', { type: 'button', class: 'secondary', onclick: () => fileInput.click() }, 'Attach file');
  const uploads = uploadTray(app, threadId, { onProblem: (text) => { composerProblem.textContent = text; } });
  const composer = h('form', { class: 'composer' },
    replyBar,
    composerNote,
    uploads.el,
    h('div', { class: 'row' }, input, sendButton),
    h('div', { class: 'row tools' }, attachButton, fileInput, locationButton, h('span', { class: 'options', role: 'group', 'aria-label': 'Message options' }, changeToggle, askToggle), composerProblem));
  const muteButton = h('button', {
    type: 'button', class: 'secondary compact mute', 'aria-pressed': 'false', hidden: true,
    title: 'Mentions in a muted thread do not notify you; requests to confirm still do', onclick: () => toggleMute(),
  }, 'Mute');
  const back = h('a', { href: '#/', class: 'back' }, '← Threads');
  // Who sent a file: its uploader (only they can attach it), "You" for the reader's own.
  const files = filesPanel(app, threadId, {
    senderOf: (file) => (file.uploader_user_id === me.user_id ? 'You' : file.uploader_name || null),
  });

  replace(
    main,
    h('div', { class: 'page thread-page' },
      h('div', { class: 'thread-head' }, back, title, h('div', { class: 'row wrap' }, meta, h('div', { class: 'controls' }, controls, muteButton, files.button)), here),
      h('div', { class: 'log-wrap' }, log, jump),
      typingLine,
      composer,
      files.dialog,
    ),
  );
  const previews = new Previews(app, log);
  const boards = new AckBoards(app, threadId, {
    root: log,
    nameOf: (userId) => view.names.get(userId) || null,
    writable: () => !view.lost && Boolean(view.thread) && view.thread.status !== 'archived',
  });
  const bodyOf = (message) => withMentions(message.body, message.metadata.mentions, me);

  // --- loading ----------------------------------------------------------------------------------

  async function load() {
    let detail;
    try {
      detail = await app.api('GET', `/threads/${threadId}`, undefined, { limit: PAGE });
    } catch (error) {
      if (view.disposed) return;
      replace(log, h('p', { class: 'empty' }, error.status === 404 ? 'This thread does not exist, or your organization is not a member of its wedding.' : `Could not load the thread: ${errorText(error)}`));
      composer.hidden = true;
      return;
    }
    if (view.disposed) return;
    showThread(detail.thread);
    loadMute();
    view.moderator = Boolean(detail.may_delete_any); // the hub's answer: nothing decided here
    view.readSeq = detail.thread.last_read_seq;
    view.readSent = view.readSeq;
    for (const receipt of detail.read_receipts || []) {
      view.names.set(receipt.user_id, receipt.display_name);
      if (receipt.user_id !== me.user_id) view.receipts.set(receipt.user_id, receipt.last_read_seq);
    }
    view.hasMore = detail.has_more;
    const firstUnread = detail.messages.find((m) => m.seq > view.readSeq && m.sender_user_id !== me.user_id);
    for (const message of detail.messages) addMessage(normalise(message), { live: false });
    older.hidden = !view.hasMore;
    for (const item of socket.outbox) if (item.thread_id === threadId) showPending(item);
    showSeen();
    const newest = detail.messages.length ? detail.messages[detail.messages.length - 1].seq : 0;
    socket.join(threadId, Math.max(newest, 0), detail.thread.last_change || 0);
    if (firstUnread && view.elements.has(firstUnread.seq)) {
      const divider = h('p', { class: 'divider', role: 'separator' }, 'New messages');
      log.insertBefore(divider, view.elements.get(firstUnread.seq));
      divider.scrollIntoView({ block: 'start' });
    } else {
      scrollToEnd();
    }
    observeAll();
  }

  async function loadOlder() {
    if (view.loadingOlder || !view.hasMore || view.oldest === null) return;
    view.loadingOlder = true;
    try {
      const detail = await app.api('GET', `/threads/${threadId}`, undefined, { limit: PAGE, before_seq: view.oldest });
      if (view.disposed) return;
      const before = log.scrollHeight;
      const top = log.scrollTop;
      for (const message of detail.messages) addMessage(normalise(message), { live: false });
      view.hasMore = detail.has_more;
      older.hidden = !view.hasMore;
      log.scrollTop = top + (log.scrollHeight - before);
      showSeen();
      observeAll();
    } catch (error) {
      app.notify(`Could not load earlier messages: ${errorText(error)}`, 'error');
    } finally {
      view.loadingOlder = false;
    }
  }

  log.addEventListener('scroll', () => {
    if (log.scrollTop < 120) loadOlder();
    if (nearEnd()) jump.hidden = true;
  });

  function showThread(thread) {
    const first = view.thread === null;
    view.thread = thread;
    if (first) onThread(thread);
    back.setAttribute('href', `#/g/${thread.group_id}`);
    replace(title, thread.title);
    showTitle();
    replace(meta, h('span', { class: `pill ${thread.priority}` }, thread.priority), ` ${thread.thread_type} · ${thread.status}`);
    const readOnly = thread.status === 'archived';
    input.disabled = readOnly;
    sendButton.disabled = readOnly;
    locationButton.disabled = readOnly;
    attachButton.disabled = readOnly;
    changeBox.disabled = readOnly;
    askBox.disabled = readOnly || changeBox.checked;
    if (readOnly) input.placeholder = 'This thread is archived (read-only)';
    if (!MANAGERS.has(me.role) || readOnly) {
      replace(controls);
      return;
    }
    const priority = h('select', { class: 'compact', 'aria-label': 'Priority' });
    for (const [value, text] of PRIORITIES) priority.append(h('option', { value, selected: value === thread.priority }, text));
    priority.addEventListener('change', () => update({ priority: priority.value }));
    const resolved = thread.status === 'resolved';
    replace(
      controls,
      priority,
      h('button', { type: 'button', class: 'secondary compact', onclick: () => update({ status: resolved ? 'open' : 'resolved' }) }, resolved ? 'Reopen' : 'Mark resolved'),
    );
  }

  function showTitle() {
    const name = view.thread ? view.thread.title : 'Thread';
    document.title = `${view.unseen ? `(${view.unseen}) ` : ''}${name} · Vendor Hub`;
  }

  async function update(changes) {
    try {
      showThread(await app.api('PUT', `/threads/${threadId}`, changes));
    } catch (error) {
      app.notify(`Could not update the thread: ${errorText(error)}`, 'error');
    }
  }

  // --- messages -----------------------------------------------------------------------------------

  // REST history and live frames name the sender differently; one shape from here on.
  function normalise(m) {
    return {
      id: m.id,
      seq: m.seq,
      sender_id: m.sender_id || m.sender_user_id,
      sender_name: m.sender_name,
      org_id: m.org_id || m.sender_org_id,
      kind: m.kind,
      body: m.body,
      client_msg_id: m.client_msg_id,
      reply_to: m.reply_to,
      metadata: m.metadata || {},
      requires_ack: Boolean(m.requires_ack) || m.kind === 'change',
      created_at: m.created_at,
      edited_at: m.edited_at || null,
      deleted_at: m.deleted_at || null,
      change_no: m.change_no || 0,
    };
  }

  function addMessage(message, { live }) {
    if (view.messages.has(message.seq)) return false;
    if (live && document.visibilityState !== 'visible' && message.sender_id !== me.user_id) {
      view.unseen += 1; // shown in the tab's title until the page is looked at again
      showTitle();
    }
    const follow = live && nearEnd();
    view.messages.set(message.seq, message);
    view.byId.set(message.id, message);
    if (message.sender_name) view.names.set(message.sender_id, message.sender_name);
    const el = renderMessage(message);
    view.elements.set(message.seq, el);
    // Insert in seq order (history pages arrive older than what is shown).
    let after = null;
    for (const [seq, other] of view.elements) {
      if (seq > message.seq && (after === null || seq < Number(after.dataset.seq))) after = other;
    }
    if (after) log.insertBefore(el, after);
    else log.insertBefore(el, firstPendingEl() || null);
    if (view.oldest === null || message.seq < view.oldest) view.oldest = message.seq;
    if (message.sender_id === me.user_id) {
      const pendingEl = view.pendingEls.get(message.client_msg_id);
      if (pendingEl) {
        pendingEl.remove();
        view.pendingEls.delete(message.client_msg_id);
      }
    }
    if (observer) observer.observe(el);
    if (live) {
      if (message.kind === 'attachment') files.changed();
      clearTyping(message.sender_id);
      if (follow || message.sender_id === me.user_id) scrollToEnd();
      else jump.hidden = false;
    }
    return true;
  }

  function renderMessage(message) {
    const mine = message.sender_id === me.user_id;
    const unread = !mine && message.seq > view.readSeq;
    const el = h('article', { class: `msg${mine ? ' mine' : ''}${unread ? ' unread' : ''}`, dataset: { seq: String(message.seq) } });
    const parent = message.reply_to ? view.byId.get(message.reply_to) : null;
    el.append(
      h('header', {},
        h('span', { class: 'who' }, mine ? 'You' : message.sender_name || 'Someone'),
        ' ',
        h('time', { datetime: message.created_at }, formatTime(message.created_at)),
        message.edited_at && !message.deleted_at ? h('span', { class: 'edited', title: `Edited ${formatTime(message.edited_at)}` }, ' · edited') : null,
        unread ? h('span', { class: 'unread-mark' }, ' · unread') : null,
        message.deleted_at ? null : askBadge(message),
      ),
    );
    if (message.deleted_at) {
      el.classList.add('deleted');
      el.append(h('p', { class: 'body tombstone' }, 'This message was deleted'));
      el.append(h('p', { class: 'seen', hidden: true }));
      return el;
    }
    if (message.kind === 'change') el.classList.add('change');
    else if (message.requires_ack) el.classList.add('asks');
    if (message.reply_to) {
      el.append(h('p', { class: 'quote' }, parent ? `↪ ${parent.sender_name || 'Someone'}: ${excerpt(gist(parent))}` : '↪ an earlier message'));
    }
    if (message.kind === 'location') {
      const { latitude, longitude } = message.metadata;
      el.append(
        h('p', { class: 'body' }, h('span', { class: 'pin' }, 'Location'), message.body ? ` ${message.body}` : ''),
        h('p', { class: 'meta' },
          `${Number(latitude).toFixed(5)}, ${Number(longitude).toFixed(5)} · `,
          h('a', { href: mapLink(latitude, longitude), target: '_blank', rel: 'noopener noreferrer' }, 'Open map'),
        ),
      );
    } else if (message.kind === 'system') {
      el.classList.add('system');
      el.append(h('p', { class: 'body' }, message.body));
    } else if (message.kind === 'attachment') {
      el.append(attachmentList(app, message.metadata.attachments || [], previews));
      if (message.body) el.append(h('p', { class: 'body' }, bodyOf(message)));
    } else {
      el.append(h('p', { class: 'body' }, bodyOf(message)));
    }
    if (message.requires_ack) el.append(boards.board(message));
    if (message.kind !== 'system' && view.thread && view.thread.status !== 'archived' && !view.lost) {
      const actions = h('div', { class: 'msg-actions' },
        h('button', { type: 'button', class: 'link reply', onclick: () => startReply(message) }, 'Reply'));
      if (mine && EDITABLE.has(message.kind)) {
        actions.append(h('button', { type: 'button', class: 'link edit', onclick: () => startEdit(message, el) }, 'Edit'));
      }
      if (mine || view.moderator) {
        actions.append(h('button', { type: 'button', class: 'link delete', onclick: () => askDelete(message, actions) }, 'Delete'));
      }
      el.append(actions);
    }
    el.append(h('p', { class: 'seen', hidden: true }));
    return el;
  }

  // --- editing and deleting ---------------------------------------------------------------------

  // An edit in place: the text in a box, Save sends it (the hub's refusal is shown as text).
  function startEdit(message, el) {
    if (el.querySelector('form.edit-form')) return;
    const box = h('textarea', { 'aria-label': 'Edit message', rows: 2, maxlength: 10000 });
    box.value = message.body;
    const problem = h('p', { class: 'error', role: 'alert' });
    const save = h('button', { type: 'submit', class: 'compact' }, 'Save');
    const cancel = h('button', { type: 'button', class: 'secondary compact', onclick: () => form.remove() }, 'Cancel');
    const form = h('form', { class: 'edit-form' }, box, h('div', { class: 'row' }, save, cancel), problem);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      save.disabled = true;
      problem.textContent = '';
      try {
        const answer = await app.api('PUT', `/threads/${threadId}/messages/${message.seq}`, { body: box.value });
        applyChange({ type: 'message_edited', seq: message.seq, body: answer.body, metadata: answer.metadata, edited_at: answer.at, change_no: answer.change_no });
      } catch (error) {
        problem.textContent = `Not saved: ${errorText(error)}`;
        save.disabled = false;
      }
    });
    box.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') form.remove();
    });
    const body = el.querySelector('.body');
    if (body) body.after(form);
    else el.querySelector('header').after(form);
    box.focus();
  }

  function askDelete(message, actions) {
    const problem = h('span', { class: 'error', role: 'alert' });
    const restore = () => {
      const fresh = renderMessage(message);
      const old = view.elements.get(message.seq);
      if (old) swap(message.seq, old, fresh);
    };
    const yes = h('button', { type: 'button', class: 'danger compact', onclick: async () => {
      yes.disabled = true;
      try {
        const answer = await app.api('DELETE', `/threads/${threadId}/messages/${message.seq}`);
        applyChange({ type: 'message_deleted', seq: message.seq, deleted_at: answer.at, change_no: answer.change_no });
      } catch (error) {
        problem.textContent = `Not deleted: ${errorText(error)}`;
        yes.disabled = false;
      }
    } }, 'Delete it');
    const keep = h('button', { type: 'button', class: 'secondary compact', onclick: restore }, 'Keep it');
    replace(actions, h('span', { class: 'confirm-text' }, 'Delete this message for everyone?'), ' ', yes, ' ', keep, ' ', problem);
    keep.focus();
  }

  // An edit or a deletion, from this page or a frame: applied over an older state only.
  function applyChange(change) {
    const message = view.messages.get(change.seq);
    if (!message || message.change_no >= change.change_no) return;
    message.change_no = change.change_no;
    if (change.type === 'message_deleted') {
      message.deleted_at = change.deleted_at;
      message.body = '';
      message.metadata = {};
      message.requires_ack = false;
    } else {
      message.body = change.body;
      message.metadata = change.metadata || {};
      message.edited_at = change.edited_at;
    }
    const old = view.elements.get(change.seq);
    if (old) swap(change.seq, old, renderMessage(message));
    if (message.kind === 'attachment' && change.type === 'message_deleted') files.changed();
    showSeen();
  }

  function swap(seq, old, el) {
    if (observer) observer.unobserve(old);
    old.replaceWith(el);
    view.elements.set(seq, el);
    if (observer) observer.observe(el);
  }

  function firstPendingEl() {
    const first = view.pendingEls.values().next();
    return first.done ? null : first.value;
  }

  function showPending(item) {
    let el = view.pendingEls.get(item.client_msg_id);
    if (!el) {
      el = h('article', { class: 'msg mine pending', dataset: { client: item.client_msg_id } });
      view.pendingEls.set(item.client_msg_id, el);
      log.append(el);
      scrollToEnd();
    }
    const status = item.status === 'failed'
      ? `Not sent: ${item.error}`
      : item.status === 'sending' ? 'Sending…' : 'Pending: will be sent when the connection is back';
    replace(
      el,
      h('header', {}, h('span', { class: 'who' }, 'You'), ' ', h('span', { class: 'state' }, status), askBadge(item)),
      item.kind === 'attachment' ? h('p', { class: 'meta' }, `Files: ${(item.attachments || []).map((a) => a.filename).join(', ')}`) : null,
      h('p', { class: 'body' }, item.kind === 'location' ? [h('span', { class: 'pin' }, 'Location'), item.body ? ` ${item.body}` : ''] : item.body),
      item.status === 'failed'
        ? h('span', { class: 'actions' },
          h('button', { type: 'button', class: 'link', onclick: () => socket.retry(item.client_msg_id) }, 'Retry'),
          h('button', { type: 'button', class: 'link', onclick: () => socket.discard(item.client_msg_id) }, 'Discard'))
        : null,
    );
  }

  function syncPending(outbox) {
    const present = new Set();
    for (const item of outbox) {
      if (item.thread_id !== threadId) continue;
      present.add(item.client_msg_id);
      showPending(item);
    }
    for (const [id, el] of view.pendingEls) {
      if (!present.has(id)) {
        el.remove(); // sent (its message is shown by seq) or discarded
        view.pendingEls.delete(id);
      }
    }
  }

  // --- read marks and receipts -----------------------------------------------------------------

  let observer = null;
  function observeAll() {
    if (observer) observer.disconnect();
    observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        const seq = Number(entry.target.dataset.seq);
        if (seq > view.readWanted) view.readWanted = seq;
      }
      scheduleRead();
    }, { root: log, threshold: 0.6 });
    for (const el of view.elements.values()) observer.observe(el);
  }

  let readTimer = null;
  function scheduleRead() {
    clearTimeout(readTimer);
    readTimer = setTimeout(sendRead, 300);
  }

  async function sendRead() {
    if (document.visibilityState !== 'visible') return;
    const seq = view.readWanted;
    if (seq <= view.readSent) return;
    if (!socket.isJoined(threadId)) return; // sent once joined again
    view.readSent = seq;
    try {
      const ack = await socket.request({ type: 'mark_read', thread_id: threadId, seq });
      view.readSeq = Math.max(view.readSeq, ack.seq);
      markUnread();
    } catch {
      view.readSent = view.readSeq; // try again at the next chance
    }
  }

  function markUnread() {
    for (const [seq, el] of view.elements) {
      if (seq <= view.readSeq && el.classList.contains('unread')) {
        el.classList.remove('unread');
        const mark = el.querySelector('.unread-mark');
        if (mark) mark.remove();
      }
    }
  }

  function showSeen() {
    const bySeq = new Map();
    const seqs = [...view.elements.keys()].sort((a, b) => a - b);
    for (const [userId, seq] of view.receipts) {
      // At the newest shown message the reader has reached.
      let at = null;
      for (const s of seqs) {
        if (s <= seq) at = s;
        else break;
      }
      if (at === null) continue;
      if (!bySeq.has(at)) bySeq.set(at, []);
      bySeq.get(at).push(view.names.get(userId) || 'someone');
    }
    for (const [seq, el] of view.elements) {
      const line = el.querySelector('.seen');
      const names = bySeq.get(seq);
      line.hidden = !names;
      line.textContent = names ? `Seen by ${listNames(names.sort())}` : '';
    }
  }

  // --- presence and typing ----------------------------------------------------------------------

  function showHere() {
    const others = [...view.presence.entries()].filter(([id]) => id !== me.user_id);
    if (!others.length) {
      here.textContent = socket.isJoined(threadId) ? 'Only you are here' : '';
      return;
    }
    replace(here, 'Here: ', others.map(([, p], i) => [
      i ? ', ' : '',
      h('span', { class: `person ${p.status}` }, p.name),
      p.status === 'online' ? '' : ` (${p.status})`,
    ]));
  }

  function showTyping() {
    const names = [...view.typing.keys()].map((id) => view.names.get(id) || 'Someone');
    typingLine.textContent = names.length ? `${listNames(names)} ${names.length > 1 ? 'are' : 'is'} typing…` : '';
  }

  function clearTyping(userId) {
    const timer = view.typing.get(userId);
    if (timer === undefined) return;
    clearTimeout(timer);
    view.typing.delete(userId);
    showTyping();
  }

  // --- the socket -------------------------------------------------------------------------------

  function onFrame(event) {
    const frame = event.detail;
    if (frame.thread_id !== threadId) return;
    switch (frame.type) {
      case 'new_message':
        if (addMessage(normalise(frame.message), { live: true })) showSeen();
        break;
      case 'user_joined':
        view.names.set(frame.user.user_id, frame.user.name);
        view.presence.set(frame.user.user_id, { name: frame.user.name, status: frame.user.status || 'online' });
        showHere();
        break;
      case 'user_left':
        view.presence.delete(frame.user_id);
        clearTyping(frame.user_id);
        showHere();
        break;
      case 'presence': {
        const person = view.presence.get(frame.user_id);
        if (person) person.status = frame.status;
        showHere();
        break;
      }
      case 'typing':
        if (frame.user_id === me.user_id) break;
        clearTyping(frame.user_id);
        if (frame.is_typing) {
          view.typing.set(frame.user_id, setTimeout(() => clearTyping(frame.user_id), 8000));
          showTyping();
        }
        break;
      case 'message_acknowledged':
        boards.acknowledged(frame);
        break;
      case 'message_edited':
      case 'message_deleted':
        applyChange(frame);
        break;
      case 'read_receipt':
        if (frame.user_id === me.user_id) {
          view.readSeq = Math.max(view.readSeq, frame.seq); // read on another device
          view.readSent = Math.max(view.readSent, frame.seq);
          markUnread();
        } else {
          view.receipts.set(frame.user_id, Math.max(view.receipts.get(frame.user_id) || 0, frame.seq));
          showSeen();
        }
        break;
      case 'error':
        if (frame.code === 'not_found') lostAccess();
        break;
      default:
        break;
    }
  }

  function onJoined(event) {
    const ack = event.detail;
    if (ack.thread_id !== threadId) return;
    view.presence = new Map(ack.presence.map((p) => [p.user_id, { name: p.name, status: p.status || 'online' }]));
    for (const p of ack.presence) view.names.set(p.user_id, p.name);
    showHere();
    if (ack.recovered === false) app.notify('Some of this thread’s history is no longer kept by the hub.', 'warning');
    if (view.joined) boards.refresh(); // confirmations given while the socket was away
    view.joined = true;
    scheduleRead();
  }

  function onJoinFailed(event) {
    if (event.detail.thread_id !== threadId) return;
    if (event.detail.error.code === 'not_found') lostAccess();
  }

  function lostAccess() {
    if (view.lost) return;
    view.lost = true;
    input.disabled = true;
    sendButton.disabled = true;
    locationButton.disabled = true;
    attachButton.disabled = true;
    changeBox.disabled = true;
    askBox.disabled = true;
    muteButton.disabled = true;
    app.notify('You no longer have access to this thread.', 'error');
  }

  function onState() {
    if (socket.state !== 'live') {
      view.presence.clear();
      for (const id of [...view.typing.keys()]) clearTyping(id);
      here.textContent = '';
    }
  }

  function onOutbox(event) {
    syncPending(event.detail);
  }

  function onSent(event) {
    const { item, ack } = event.detail;
    if (item.thread_id !== threadId || view.messages.has(ack.message.seq)) return;
    // The live copy normally comes first; if not (not joined), show it from the ack.
    addMessage({
      id: ack.message.id, seq: ack.message.seq, sender_id: me.user_id, sender_name: me.display_name,
      org_id: me.organization_id, kind: item.kind || 'text', body: item.body, client_msg_id: item.client_msg_id,
      reply_to: item.reply_to || null, metadata: sentMetadata(item),
      requires_ack: Boolean(item.requires_ack) || item.kind === 'change',
      created_at: ack.message.created_at,
    }, { live: true });
  }

  const listeners = {
    frame: onFrame, joined: onJoined, 'join-failed': onJoinFailed, state: onState, outbox: onOutbox, sent: onSent,
  };
  for (const [type, listener] of Object.entries(listeners)) socket.addEventListener(type, listener);
  const onVisible = () => {
    if (document.visibilityState !== 'visible') return;
    view.unseen = 0;
    showTitle();
    scheduleRead();
  };
  document.addEventListener('visibilitychange', onVisible);

  // --- the composer -----------------------------------------------------------------------------

  let typingSentAt = 0;
  let typingIdle = null;
  function typed() {
    if (!socket.isJoined(threadId)) return;
    clearTimeout(typingIdle);
    if (!input.value.trim()) {
      stopTyping();
      return;
    }
    if (Date.now() - typingSentAt > 3000) {
      typingSentAt = Date.now();
      socket.notify({ type: 'typing_indicator', thread_id: threadId, is_typing: true });
    }
    typingIdle = setTimeout(stopTyping, 4000);
  }

  function stopTyping() {
    clearTimeout(typingIdle);
    if (typingSentAt && socket.isJoined(threadId)) {
      socket.notify({ type: 'typing_indicator', thread_id: threadId, is_typing: false });
    }
    typingSentAt = 0;
  }

  input.addEventListener('input', () => {
    typed();
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    } else if (event.key === 'Escape' && view.replyTo) {
      cancelReply();
    }
  });
  fileInput.addEventListener('change', () => {
    composerProblem.textContent = '';
    uploads.add(fileInput.files);
    fileInput.value = ''; // the same file chosen again is a change too
  });
  composer.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = input.value;
    if (uploads.busy()) {
      composerProblem.textContent = 'Wait until the files have uploaded, or remove them.';
      return;
    }
    const files = uploads.uploaded();
    const change = changeBox.checked;
    if (change && files.length) {
      composerProblem.textContent = 'A change of plan is text alone: send the files in a message of their own, or untick Change of plan.';
      return;
    }
    if (change && !body.trim()) {
      composerProblem.textContent = 'Describe the change of plan first.';
      return;
    }
    if (!body.trim() && !files.length) {
      composerProblem.textContent = 'Write a message first.';
      return;
    }
    const requiresAck = change || askBox.checked;
    composerProblem.textContent = '';
    clearTimeout(typingIdle);
    typingSentAt = 0; // posting ends typing on the hub's side
    const replyTo = view.replyTo ? view.replyTo.id : null;
    if (files.length) {
      // The caption is the text as written (empty is fine); the hub adds what the files are.
      const attachments = files.map(summary);
      socket.send({ thread_id: threadId, kind: 'attachment', body, attachment_ids: attachments.map((a) => a.id), attachments, reply_to: replyTo, requires_ack: requiresAck });
      uploads.clear();
    } else {
      socket.send({ thread_id: threadId, kind: change ? 'change' : 'text', body, reply_to: replyTo, requires_ack: requiresAck });
    }
    input.value = '';
    input.style.height = 'auto';
    cancelReply();
    resetOptions();
    input.focus();
  });

  function showOptions() {
    const change = changeBox.checked;
    askBox.disabled = change || input.disabled;
    if (change) askBox.checked = true; // a change of plan always asks
    composer.classList.toggle('is-change', change);
    composer.classList.toggle('is-asking', !change && askBox.checked);
    composerNote.hidden = !change && !askBox.checked;
    composerNote.textContent = change
      ? 'Change of plan: every other organization of the wedding is asked to confirm it.'
      : askBox.checked ? 'Every other organization of the wedding is asked to confirm this message.' : '';
    if (!input.disabled) input.placeholder = change ? 'Describe the change of plan' : 'Message';
  }

  function resetOptions() {
    changeBox.checked = false;
    askBox.checked = false;
    askChosen = false;
    showOptions();
  }

  changeBox.addEventListener('change', () => {
    if (!changeBox.checked) askBox.checked = askChosen; // back to what the person had chosen
    showOptions();
  });
  askBox.addEventListener('change', () => {
    askChosen = askBox.checked;
    showOptions();
  });

  function shareLocation() {
    composerProblem.textContent = '';
    if (!navigator.geolocation) {
      composerProblem.textContent = 'This browser cannot share a location.';
      return;
    }
    if (!window.isSecureContext) {
      composerProblem.textContent = 'Sharing a location needs the hub over HTTPS.';
      return;
    }
    locationButton.disabled = true;
    navigator.geolocation.getCurrentPosition(
      (position) => {
        locationButton.disabled = false;
        socket.send({
          thread_id: threadId,
          kind: 'location',
          body: input.value.trim(),
          latitude: position.coords.latitude,
          longitude: position.coords.longitude,
          reply_to: view.replyTo ? view.replyTo.id : null,
          requires_ack: changeBox.checked || askBox.checked,
        });
        input.value = '';
        cancelReply();
        resetOptions();
      },
      (error) => {
        locationButton.disabled = false;
        composerProblem.textContent = `No location: ${error.message || 'permission denied'}`;
      },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 30000 },
    );
  }

  function startReply(message) {
    view.replyTo = message;
    replace(replyBar, `Replying to ${message.sender_id === me.user_id ? 'yourself' : message.sender_name || 'someone'}: ${excerpt(gist(message))} `, h('button', { type: 'button', class: 'link', onclick: cancelReply }, 'Cancel reply'));
    replyBar.hidden = false;
    input.focus();
  }

  function cancelReply() {
    view.replyTo = null;
    replyBar.hidden = true;
    replace(replyBar);
  }

  // --- muting -----------------------------------------------------------------------------------

  async function loadMute() {
    try {
      const state = await app.api('GET', `/threads/${threadId}/mute`);
      if (!view.disposed) showMute(state.muted);
    } catch {
      // the toggle stays hidden: the thread shows as it is without it
    }
  }

  function showMute(muted) {
    view.muted = muted;
    muteButton.hidden = false;
    muteButton.setAttribute('aria-pressed', muted ? 'true' : 'false');
    muteButton.textContent = muted ? 'Muted' : 'Mute';
  }

  async function toggleMute() {
    if (view.muted === null || muteButton.getAttribute('aria-disabled') === 'true') return;
    muteButton.setAttribute('aria-disabled', 'true');
    try {
      const state = await app.api('PUT', `/threads/${threadId}/mute`, { muted: !view.muted });
      if (!view.disposed) showMute(state.muted);
    } catch (error) {
      app.notify(`Could not ${view.muted ? 'unmute' : 'mute'} the thread: ${errorText(error)}`, 'error');
    } finally {
      muteButton.removeAttribute('aria-disabled');
    }
  }

  // --- scrolling ----------------------------------------------------------------------------------

  function nearEnd() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
    jump.hidden = true;
  }

  load();
  return {
    dispose() {
      view.disposed = true;
      stopTyping();
      clearTimeout(readTimer);
      for (const timer of view.typing.values()) clearTimeout(timer);
      if (observer) observer.disconnect();
      uploads.dispose();
      previews.dispose();
      files.dispose();
      boards.dispose();
      for (const [type, listener] of Object.entries(listeners)) socket.removeEventListener(type, listener);
      document.removeEventListener('visibilitychange', onVisible);
      socket.leave(threadId);
      document.title = 'Vendor Connections Hub';
    },
  };
}

// The badge of a message (or an outbox item) that asks for acknowledgement.
function askBadge(message) {
  if (message.kind === 'change') return [' ', h('span', { class: 'pill change' }, 'Change of plan')];
  if (message.requires_ack) return [' ', h('span', { class: 'pill ask' }, 'Asks for confirmation')];
  return null;
}

// What a message says, for a quote: its text, or the files it carries.
function gist(message) {
  if (message.body || message.kind !== 'attachment') return message.body;
  return describeFiles(message.metadata.attachments);
}

// What the hub stored with a message the page sent, for showing it from the ack alone.
function sentMetadata(item) {
  if (item.kind === 'location') return { latitude: item.latitude, longitude: item.longitude };
  if (item.kind === 'attachment') return { attachments: item.attachments || [] };
  return {};
}

function excerpt(text) {
  const flat = (text || '').replace(/\s+/g, ' ').trim();
  return flat.length > 80 ? `${flat.slice(0, 79)}…` : flat;
}

function mapLink(latitude, longitude) {
  const lat = Number(latitude).toFixed(6);
  const lon = Number(longitude).toFixed(6);
  return `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=17/${lat}/${lon}`;
}
