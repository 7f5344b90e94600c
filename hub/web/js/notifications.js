// The person's notifications, as Mattermost's mentions and Slack's activity show them: a
// Notifications button in the header with the unread count, and the inbox it opens (a dialog,
// as the thread's Files are): why they are told, in words, the thread and its wedding, who sent
// it and the start of what they said, when; opening one opens its thread and marks it read;
// Mark all read. Reading a thread reads what it notified (the hub does it with the read mark),
// and a mark on any device reaches every other as `notifications_read`. Live `notification` frames go at the top and bump the count; an urgent one
// outside the person's quiet hours also shows a brief toast (a `quiet` one never alerts).
//
// The inbox is the hub's (`GET /me/notifications`, newest first, paged with `before`); the count
// is the hub's `unread_count`, fetched again whenever the socket comes back (frames sent while
// it was away are not replayed: the inbox holds them). Everything is set as text.

import { errorText, formatTime, h, randomId, replace } from './dom.js';

const PAGE = 20;
const TOAST_MS = 8000;

const REASONS = {
  mention: 'Mentioned you',
  org_mention: 'Mentioned your organization',
  ack_request: 'Asks your organization to confirm',
  reminder: 'Reminder: your organization has not confirmed yet',
  escalation: 'Escalated: still not confirmed',
};

// `notifications(app)` -> { button, dialog, toasts, start(), stop() }: the header's button, the
// dialog and the toasts' region (the caller puts them in the page); `start()` once signed in
// and the socket exists, `stop()` on signing out.
export function notifications(app) {
  const state = {
    unread: 0,
    items: [], // newest first, while the dialog is open
    rows: new Map(), // notification id -> li
    seen: new Set(), // ids counted already (a delivery may come twice)
    groupNames: new Map(), // group id -> wedding name, from the inbox and the hub
    hasMore: false,
    loaded: false,
    generation: 0, // bumped on open, close and stop: answers for an earlier one are dropped
    socket: null,
    live: false, // the socket was live at its last state change
  };

  const count = h('span', { class: 'count', hidden: true });
  const button = h('button', {
    type: 'button', class: 'bell', 'aria-haspopup': 'dialog', 'aria-expanded': 'false', onclick: () => open(),
  }, bellIcon(), h('span', { class: 'label' }, 'Notifications'), ' ', count); // named "Notifications 3 unread"

  const headingId = `inbox-${randomId()}`;
  const list = h('ul', { class: 'inbox-list', 'aria-label': 'Notifications list' });
  const status = h('p', { class: 'empty', hidden: true });
  const problem = h('p', { class: 'error', role: 'alert' });
  const more = h('button', { type: 'button', class: 'secondary more', hidden: true, onclick: () => nextPage() }, 'Load more');
  const markAll = h('button', { type: 'button', class: 'secondary compact', onclick: () => markAllRead() }, 'Mark all read');
  const dialog = h('dialog', { class: 'sheet inbox-panel', 'aria-labelledby': headingId },
    h('div', { class: 'sheet-head' },
      h('h2', { id: headingId }, 'Notifications'),
      h('div', { class: 'controls' },
        markAll,
        h('a', { href: '#/settings', class: 'settings-link', onclick: () => dialog.close() }, 'Settings'),
        h('button', { type: 'button', class: 'secondary compact', onclick: () => dialog.close() }, 'Close'))),
    h('div', { class: 'sheet-body' }, problem, list, status, more));
  // Always in the page, so that screen readers announce what is put in it.
  const toasts = h('div', { class: 'toasts', 'aria-live': 'assertive' });

  dialog.addEventListener('click', (event) => {
    if (event.target === dialog) dialog.close();
  });
  dialog.addEventListener('close', () => {
    state.generation += 1;
    button.setAttribute('aria-expanded', 'false');
    if (document.activeElement === document.body || !document.activeElement) button.focus();
  });

  // --- the count ------------------------------------------------------------------------------

  function showCount() {
    const n = state.unread;
    count.hidden = n <= 0;
    replace(count, n > 99 ? '99+' : String(n), h('span', { class: 'sr' }, ' unread'));
    markAll.disabled = n <= 0;
  }

  async function refreshCount() {
    try {
      const page = await app.api('GET', '/me/notifications', undefined, { limit: 1, unread: true });
      state.unread = page.unread_count;
      showCount();
    } catch {
      // the count stays as it was; the next reconnect or opening asks again
    }
  }

  // --- the dialog -----------------------------------------------------------------------------

  function open() {
    if (dialog.open) return;
    state.generation += 1;
    state.items = [];
    state.rows.clear();
    state.loaded = false;
    state.hasMore = false;
    replace(list);
    problem.textContent = '';
    status.textContent = 'Loading…';
    status.hidden = false;
    more.hidden = true;
    dialog.showModal();
    button.setAttribute('aria-expanded', 'true');
    firstPage(state.generation);
  }

  async function firstPage(generation) {
    let page;
    try {
      page = await app.api('GET', '/me/notifications', undefined, { limit: PAGE });
    } catch (error) {
      if (generation !== state.generation) return;
      status.hidden = true;
      problem.textContent = `Could not load the notifications: ${errorText(error)}`;
      return;
    }
    if (generation !== state.generation) return;
    // Live ones that came while the page was on its way stay first; the page fills in after.
    const live = new Set(state.items.map((n) => n.id));
    state.items = [...state.items, ...page.notifications.filter((n) => !live.has(n.id))];
    for (const n of page.notifications) {
      state.seen.add(n.id);
      state.groupNames.set(n.group_id, n.group_name);
    }
    state.hasMore = page.has_more;
    state.unread = page.unread_count;
    state.loaded = true;
    showCount();
    render();
  }

  async function nextPage() {
    const generation = state.generation;
    const last = state.items[state.items.length - 1];
    if (!last) return;
    more.disabled = true;
    try {
      const page = await app.api('GET', '/me/notifications', undefined, { limit: PAGE, before: last.id });
      if (generation !== state.generation) return;
      const known = new Set(state.items.map((n) => n.id));
      state.items.push(...page.notifications.filter((n) => !known.has(n.id)));
      state.hasMore = page.has_more;
      render();
    } catch (error) {
      if (generation === state.generation) problem.textContent = `Could not load more notifications: ${errorText(error)}`;
    } finally {
      more.disabled = false;
    }
  }

  // Rows already shown stay (a focused one keeps its focus); new ones go in before them.
  function render() {
    let next = list.firstChild;
    for (const item of state.items) {
      let row = state.rows.get(item.id);
      if (!row) {
        row = h('li', { class: 'note-row' });
        state.rows.set(item.id, row);
        fill(row, item);
      }
      if (row === next) next = next.nextSibling;
      else list.insertBefore(row, next);
    }
    status.textContent = 'No notifications yet. You are told here when someone mentions you or your organization, or asks your organization to confirm something.';
    status.hidden = !state.loaded || state.items.length > 0;
    more.hidden = !state.hasMore;
  }

  function fill(row, item) {
    const unread = !item.read_at;
    const wedding = item.group_name || state.groupNames.get(item.group_id);
    row.className = `note-row${unread ? ' unread' : ''}`;
    replace(row, h('a', { href: `#/t/${item.thread_id}`, class: 'note', onclick: () => opened(item) },
      h('span', { class: 'reason' },
        unread ? h('span', { class: 'sr' }, 'Unread: ') : null,
        item.urgent ? [h('span', { class: 'pill urgent' }, 'urgent'), ' '] : null,
        REASONS[item.reason] || item.reason),
      h('span', { class: 'where' }, item.thread_title || 'A thread', wedding ? ` · ${wedding}` : ''),
      item.sender_name || item.preview
        ? h('span', { class: 'what' }, item.sender_name ? h('strong', {}, item.sender_name) : null, item.sender_name && item.preview ? ': ' : '', item.preview || '')
        : null,
      h('time', { datetime: item.created_at }, formatTime(item.created_at))));
  }

  // Opening one: its thread (the link's own navigation), and it is read.
  function opened(item) {
    dialog.close();
    if (item.read_at) return;
    item.read_at = new Date().toISOString();
    state.unread = Math.max(0, state.unread - 1);
    showCount();
    const row = state.rows.get(item.id);
    if (row) fill(row, item);
    app.api('POST', '/me/notifications/read', { ids: [item.id] })
      .then((answer) => {
        state.unread = answer.unread_count;
        showCount();
      })
      .catch((error) => app.notify(`Could not mark the notification read: ${errorText(error)}`, 'error'));
  }

  async function markAllRead() {
    problem.textContent = '';
    markAll.disabled = true;
    try {
      const answer = await app.api('POST', '/me/notifications/read', { all: true });
      const now = new Date().toISOString();
      for (const item of state.items) {
        if (item.read_at) continue;
        item.read_at = now;
        const row = state.rows.get(item.id);
        if (row) fill(row, item);
      }
      state.unread = answer.unread_count;
    } catch (error) {
      problem.textContent = `Could not mark them read: ${errorText(error)}`;
    }
    showCount();
  }

  // --- live -------------------------------------------------------------------------------------

  function onFrame(event) {
    const frame = event.detail;
    if (frame.type === 'notifications_read') {
      readElsewhere(frame);
      return;
    }
    if (frame.type !== 'notification') return;
    if (state.seen.has(frame.id)) return; // delivered again: counted already
    state.seen.add(frame.id);
    const item = {
      id: frame.id,
      reason: frame.reason,
      urgent: frame.urgent,
      created_at: frame.created_at,
      read_at: null,
      group_id: frame.group_id,
      group_name: frame.group_name || state.groupNames.get(frame.group_id) || null,
      thread_id: frame.thread_id,
      thread_title: frame.thread_title,
      seq: frame.seq,
      sender_name: frame.sender_name,
      preview: frame.preview,
    };
    state.unread += 1;
    showCount();
    if (dialog.open) {
      state.items.unshift(item);
      render();
    }
    if (!item.group_name) nameWedding(item);
    if (item.urgent && !frame.quiet && !viewing(item.thread_id)) toast(item);
  }

  // Read on another device, or by reading the thread here or there (`notifications_read`): the
  // hub's count, and the rows shown say read.
  function readElsewhere(frame) {
    state.unread = frame.unread_count;
    showCount();
    const ids = new Set(frame.ids);
    const now = new Date().toISOString();
    for (const item of state.items) {
      if (item.read_at || !(frame.all || ids.has(item.id))) continue;
      item.read_at = now;
      const row = state.rows.get(item.id);
      if (row) fill(row, item);
    }
  }

  // A hub older than the frame's group_name names the wedding by id only: its name from the
  // hub, once per wedding.
  async function nameWedding(item) {
    try {
      const detail = await app.api('GET', `/groups/${item.group_id}`);
      state.groupNames.set(item.group_id, detail.group.name);
      item.group_name = detail.group.name;
      const row = state.rows.get(item.id);
      if (row && state.items.includes(item)) fill(row, item);
    } catch {
      // shown without the wedding's name
    }
  }

  function viewing(threadId) {
    return document.visibilityState === 'visible' && location.hash === `#/t/${threadId}`;
  }

  // A toast goes by itself after TOAST_MS, but not while the pointer is on it or the focus in it
  // (time to read it, or to reach Open).
  function toast(item) {
    const el = h('div', { class: 'toast' },
      h('strong', {}, `Urgent: ${REASONS[item.reason] || item.reason}`),
      h('span', {}, item.sender_name ? `${item.sender_name} in ${item.thread_title || 'a thread'}` : item.thread_title || ''),
      item.preview ? h('span', { class: 'what' }, item.preview) : null,
      h('span', { class: 'actions' },
        h('a', { href: `#/t/${item.thread_id}`, onclick: () => { dismiss(); opened(item); } }, 'Open'),
        h('button', { type: 'button', class: 'link', onclick: () => dismiss() }, 'Dismiss')));
    let timer = null;
    const hold = () => clearTimeout(timer);
    const release = () => {
      clearTimeout(timer);
      if (!el.matches(':hover') && !el.contains(document.activeElement)) timer = setTimeout(dismiss, TOAST_MS);
    };
    function dismiss() {
      clearTimeout(timer);
      el.remove();
    }
    el.addEventListener('mouseenter', hold);
    el.addEventListener('focusin', hold);
    el.addEventListener('mouseleave', release);
    el.addEventListener('focusout', () => setTimeout(release)); // once the focus has landed
    toasts.append(el);
    release();
  }

  // Back live after a break: what came meanwhile is in the inbox, not in frames.
  function onState() {
    const live = Boolean(state.socket) && state.socket.state === 'live';
    if (live && !state.live) {
      if (dialog.open) firstPage(state.generation);
      else refreshCount();
    }
    state.live = live;
  }

  return {
    button,
    dialog,
    toasts,
    start(socket) {
      if (state.socket !== socket) {
        if (state.socket) this.stop();
        state.socket = socket;
        state.live = socket.state === 'live';
        socket.addEventListener('frame', onFrame);
        socket.addEventListener('state', onState);
      }
      refreshCount();
    },
    stop() {
      if (dialog.open) dialog.close();
      state.generation += 1;
      if (state.socket) {
        state.socket.removeEventListener('frame', onFrame);
        state.socket.removeEventListener('state', onState);
      }
      state.socket = null;
      state.unread = 0;
      state.seen.clear();
      state.groupNames.clear();
      replace(toasts);
      showCount();
    },
  };
}

// A bell, drawn in SVG so it needs no font or image from anywhere.
function bellIcon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', 'icon');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', 'M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2z');
  path.setAttribute('fill', 'currentColor');
  svg.append(path);
  return svg;
}
