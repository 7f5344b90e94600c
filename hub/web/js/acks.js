// Acknowledgement boards, as Mattermost shows a post that requests acknowledgement: under a
// message that asks for confirmation (a change of plan always does), every member organization
// of the wedding with its state (confirmed by whom and when, pending with the reminders sent, or
// the sender's own), how many are still pending, and for a reader whose organization is pending
// a "Confirm for <organization>" button.
//
// A board is the hub's (`GET /threads/{id}/messages/{seq}/acknowledgements`), fetched when its
// message first comes near the screen (a long history does not fetch them all at once). Live
// `message_acknowledged` frames are kept per organization and laid over the board as it was
// fetched, so a frame that arrives while a fetch is on its way is not lost, and one that
// arrives twice changes nothing (an organization confirms once: the first user speaks for it).
// After a reconnect the thread view asks for every board shown again (frames may have been
// missed meanwhile).

import { errorText, formatTime, h, replace } from './dom.js';

// `new AckBoards(app, threadId, { root, nameOf, writable })`: `root` is the scrolling log the
// boards show in, `nameOf(userId)` a user's display name when the thread knows it (else null),
// `writable()` whether the thread takes confirmations now (not archived, still a member).
export class AckBoards {
  constructor(app, threadId, { root, nameOf = () => null, writable = () => true }) {
    this.app = app;
    this.threadId = threadId;
    this.nameOf = nameOf;
    this.writable = writable;
    this.boards = new Map(); // seq -> board
    this.disposed = false;
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        const board = this.boards.get(Number(entry.target.dataset.seq));
        this.observer.unobserve(entry.target);
        if (board) this.load(board);
      }
    }, { root, rootMargin: '300px 0px' });
  }

  // The board's element for a message that asks for acknowledgement, to go under its body.
  board(message) {
    const existing = this.boards.get(message.seq);
    if (existing) return existing.el;
    const summary = h('p', { class: 'acks-summary' }, 'Loading confirmations…');
    const list = h('ul', { class: 'acks-list', 'aria-label': 'Organizations' });
    const action = h('div', { class: 'acks-action' });
    const problem = h('p', { class: 'error', role: 'alert' });
    const el = h('section', { class: 'acks', 'aria-label': 'Confirmations', dataset: { seq: String(message.seq) } },
      summary, list, action, problem);
    const board = {
      seq: message.seq,
      el,
      summary,
      list,
      action,
      problem,
      data: null, // the hub's board as last fetched
      frames: new Map(), // org_id -> { user_id, at, user_name? } confirmed since (live or by this page)
      loading: false,
      again: false, // asked for again while a fetch was on its way
      confirming: false,
      button: null, // "Confirm for <organization>", while the reader's organization is pending
      loadError: null,
    };
    this.boards.set(message.seq, board);
    this.observer.observe(el);
    return el;
  }

  // A `message_acknowledged` frame of this thread.
  acknowledged(frame) {
    const board = this.boards.get(frame.seq);
    if (!board) return;
    const known = board.frames.get(frame.org_id);
    if (!known) board.frames.set(frame.org_id, { user_id: frame.user_id, at: frame.at, user_name: frame.user_name || null });
    const entry = board.data && board.data.organizations.find((e) => e.org_id === frame.org_id);
    if (board.data && (!entry || !this.whoConfirmed(frame.org_id, board))) {
      this.load(board); // an organization or a name this page does not know yet: the hub does
    }
    this.render(board);
  }

  // Every board fetched already, fetched again (after a reconnect).
  refresh() {
    for (const board of this.boards.values()) if (board.data || board.loadError) this.load(board);
  }

  async load(board) {
    if (this.disposed) return;
    if (board.loading) {
      board.again = true;
      return;
    }
    board.loading = true;
    try {
      board.data = await this.app.api('GET', `/threads/${this.threadId}/messages/${board.seq}/acknowledgements`);
      board.loadError = null;
    } catch (error) {
      board.loadError = errorText(error);
    } finally {
      board.loading = false;
    }
    if (this.disposed) return;
    this.render(board);
    if (board.again) {
      board.again = false;
      this.load(board);
    }
  }

  // The board's organizations as the hub listed them, with what was confirmed since laid over.
  entries(board) {
    return board.data.organizations.map((entry) => {
      const since = board.frames.get(entry.org_id);
      if (entry.state !== 'pending' || !since) return entry;
      return { ...entry, state: 'acknowledged', user_id: since.user_id, at: since.at, user_name: since.user_name };
    });
  }

  // The name of who confirmed for `orgId`, when the page knows it.
  whoConfirmed(orgId, board) {
    const entry = board.data && board.data.organizations.find((e) => e.org_id === orgId);
    if (entry && entry.state === 'acknowledged') return entry.user_name;
    const since = board.frames.get(orgId);
    if (!since) return null;
    return since.user_name || (since.user_id === this.app.me.user_id ? this.app.me.display_name : this.nameOf(since.user_id));
  }

  confirmer(entry, board) {
    if (entry.user_id === this.app.me.user_id) return 'you';
    return entry.user_name || this.whoConfirmed(entry.org_id, board) || 'someone';
  }

  render(board) {
    if (this.disposed) return;
    const me = this.app.me;
    if (!board.data) {
      board.summary.textContent = board.loadError ? '' : 'Loading confirmations…';
      replace(
        board.action,
        board.loadError
          ? [h('p', { class: 'error' }, `Could not load the confirmations: ${board.loadError}`),
            h('button', { type: 'button', class: 'secondary compact', onclick: () => this.load(board) }, 'Try again')]
          : null,
      );
      return;
    }
    const entries = this.entries(board);
    const asked = entries.filter((e) => e.state !== 'sender').length;
    const pending = entries.filter((e) => e.state === 'pending').length;
    board.summary.textContent = summaryText(asked, pending);
    board.summary.classList.toggle('done', asked > 0 && pending === 0);
    replace(board.list, entries.map((entry) => h('li', { class: `ack-row ${entry.state}`, dataset: { org: entry.org_id } },
      h('span', { class: 'org' }, entry.org_name),
      ' ',
      h('span', { class: 'state' }, this.stateText(entry, board)),
    )));
    const mine = entries.find((e) => e.org_id === me.organization_id);
    const focused = board.action.contains(document.activeElement);
    if (mine && mine.state === 'pending' && this.writable()) {
      // One button for the board's life: pressed, it keeps the focus while the hub answers
      // (aria-disabled, not disabled, which would drop it).
      if (!board.button) {
        board.button = h('button', { type: 'button', class: 'compact confirm', onclick: () => this.confirm(board) });
      }
      board.button.textContent = board.confirming ? `Confirming for ${mine.org_name}…` : `Confirm for ${mine.org_name}`;
      if (board.confirming) board.button.setAttribute('aria-disabled', 'true');
      else board.button.removeAttribute('aria-disabled');
      if (board.action.childNodes.length !== 1 || board.action.firstChild !== board.button) replace(board.action, board.button);
    } else if (mine && mine.state === 'acknowledged') {
      const done = h('p', { class: 'confirmed', tabindex: '-1' }, `Confirmed by ${this.confirmer(mine, board)}`);
      replace(board.action, done);
      if (focused) done.focus(); // the button pressed is gone: keep the reader here
    } else {
      replace(board.action);
    }
  }

  stateText(entry, board) {
    if (entry.state === 'sender') return 'Sent it';
    if (entry.state === 'acknowledged') {
      return [`Confirmed by ${this.confirmer(entry, board)}`, entry.at ? [' · ', h('time', { datetime: entry.at }, formatTime(entry.at))] : null];
    }
    const reminders = entry.reminders_sent || 0;
    return reminders ? `Pending · ${reminders} reminder${reminders === 1 ? '' : 's'} sent` : 'Pending';
  }

  async confirm(board) {
    if (board.confirming) return;
    board.confirming = true;
    board.problem.textContent = '';
    this.render(board);
    try {
      const ack = await this.app.api('POST', `/threads/${this.threadId}/messages/${board.seq}/ack`);
      const mine = ack.user_id === this.app.me.user_id;
      board.frames.set(ack.org_id, { user_id: ack.user_id, at: ack.at, user_name: mine ? this.app.me.display_name : null });
      // Someone else of the organization had confirmed it first: the hub knows their name.
      if (ack.duplicate && !mine) this.load(board);
    } catch (error) {
      board.problem.textContent = `Could not confirm: ${errorText(error)}`;
    } finally {
      board.confirming = false;
    }
    this.render(board);
  }

  dispose() {
    this.disposed = true;
    this.observer.disconnect();
    this.boards.clear();
  }
}

function summaryText(asked, pending) {
  if (asked === 0) return 'No other organization is asked to confirm';
  if (pending === 0) return asked === 1 ? 'Confirmed' : `Confirmed by all ${asked} organizations`;
  return `Waiting for ${pending} of ${asked} organization${asked === 1 ? '' : 's'}`;
}
