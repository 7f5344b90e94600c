// One WebSocket to the hub for the whole page, and what keeps it useful on bad venue Wi-Fi:
//
// - states a person can see: connecting, live, reconnecting (with the time of the next try),
//   offline (the browser says there is no network), signed-out (the token was refused);
// - reconnecting with jittered exponential backoff, and at once when the network comes back;
// - a heartbeat (`ping` every 15 s of silence): a link that died without a close is noticed;
// - rejoining every thread with `since_seq` = the last seq seen, so the hub replays exactly what
//   was missed (nothing twice, nothing missing);
// - an outbox: a message sent while not live is kept (in sessionStorage too, so a reload keeps
//   it), shown as pending, and sent once the socket is live, with the same `client_msg_id`
//   every time, so a resend after a lost ack is recognised by the hub as the same message.
//
// Listeners get `state`, `frame` (every server frame: a thread's messages, presence, typing,
// receipts and acknowledgements, and the user's `notification`s), `joined` (a join's ack),
// `outbox` and `sent` (an outbox item acknowledged) events.

import { randomId } from './dom.js';

const OUTBOX_KEY = 'hub.outbox';
const RETRYABLE = new Set([
  'storage_unavailable', 'overloaded', 'rate_limited', 'internal', 'timeout', 'disconnected',
  'offline',
]);
const HEARTBEAT_IDLE_MS = 15000;
const HEARTBEAT_DEAD_MS = 25000;

export class HubSocket extends EventTarget {
  constructor(url, getToken) {
    super();
    this.url = url;
    this.getToken = getToken;
    this.ws = null;
    this.state = 'connecting';
    this.retryAt = 0;
    this.attempt = 0;
    this.userId = null;
    this.threads = new Map(); // thread_id -> { lastSeq, joined }
    this.pending = new Map(); // ref -> { resolve, reject, timer }
    this.nextRef = 1;
    this.sending = new Set(); // client_msg_ids waiting for their ack on this connection
    this.outbox = loadOutbox();
    this.owner = null; // the signed-in user: an outbox item is only ever sent as its writer
    this.lastHeard = Date.now();
    window.addEventListener('offline', () => this.wentOffline());
    window.addEventListener('online', () => this.cameOnline());
  }

  start() {
    if (!navigator.onLine) this.setState('offline');
    else this.connect();
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, retryAt: this.retryAt } }));
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryAt = 0;
    if (!this.getToken()) {
      this.setState('signed-out');
      return;
    }
    this.setState(this.attempt ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      // The token goes in the first frame, never in the URL (servers log URLs).
      ws.send(JSON.stringify({ type: 'auth', token: this.getToken() }));
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (ws === this.ws) this.closed(event.code);
    };
  }

  onFrame(frame) {
    if (frame.type === 'ready') {
      this.attempt = 0;
      this.userId = frame.user_id;
      this.lastHeard = Date.now();
      this.setState('live');
      this.startHeartbeat();
      for (const threadId of this.threads.keys()) this.joinNow(threadId);
      this.flushOutbox();
      return;
    }
    if (frame.ref && this.pending.has(frame.ref)) {
      const waiter = this.pending.get(frame.ref);
      this.pending.delete(frame.ref);
      clearTimeout(waiter.timer);
      if (frame.type === 'error') waiter.reject(frame);
      else waiter.resolve(frame);
      if (frame.type !== 'error' || !frame.thread_id) return;
    }
    if (frame.type === 'new_message') {
      const thread = this.threads.get(frame.thread_id);
      if (thread) thread.lastSeq = Math.max(thread.lastSeq, frame.message.seq);
    }
    if (frame.type === 'message_edited' || frame.type === 'message_deleted') {
      const thread = this.threads.get(frame.thread_id);
      if (thread && thread.lastChange !== null) thread.lastChange = Math.max(thread.lastChange, frame.change_no);
    }
    if (frame.type === 'error' && frame.thread_id && frame.code === 'not_found') {
      this.threads.delete(frame.thread_id); // access was revoked: the hub ended the subscription
    }
    this.emit('frame', frame);
  }

  // A request with a ref; resolves with its ack (or pong), rejects with its error frame.
  request(frame, timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.state !== 'live') {
        reject({ code: 'offline', message: 'not connected to the hub' });
        return;
      }
      const ref = `r${this.nextRef++}`;
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject({ code: 'timeout', message: 'the hub did not answer in time' });
      }, timeoutMs);
      this.pending.set(ref, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...frame, ref }));
    });
  }

  // A frame without a reply (typing); dropped when not live, as it would be stale anyway.
  notify(frame) {
    if (this.ws && this.state === 'live') this.ws.send(JSON.stringify(frame));
  }

  isJoined(threadId) {
    const thread = this.threads.get(threadId);
    return Boolean(thread && thread.joined && this.state === 'live');
  }

  // Follow a thread from `sinceSeq` on (the last seq the caller already shows), with the edits
  // and deletions of what it shows made after change `sinceChange` (the page's last_change);
  // kept across reconnects until `leave`.
  join(threadId, sinceSeq, sinceChange = null) {
    this.threads.set(threadId, { lastSeq: sinceSeq, lastChange: sinceChange, joined: false });
    if (this.state === 'live') this.joinNow(threadId);
  }

  async joinNow(threadId) {
    const thread = this.threads.get(threadId);
    if (!thread) return;
    try {
      const ack = await this.request({
        type: 'join_thread', thread_id: threadId, since_seq: thread.lastSeq,
        ...(thread.lastChange === null ? {} : { since_change: thread.lastChange }),
      });
      if (this.threads.get(threadId) !== thread) return;
      thread.joined = true;
      this.emit('joined', ack);
    } catch (error) {
      if (error.code === 'not_found' || error.code === 'forbidden') this.threads.delete(threadId);
      this.emit('join-failed', { thread_id: threadId, error });
    }
  }

  leave(threadId) {
    if (!this.threads.delete(threadId)) return;
    this.request({ type: 'leave_thread', thread_id: threadId }).catch(() => {});
  }

  // --- the outbox ---------------------------------------------------------------------------

  send(message) {
    const item = {
      ...message,
      owner: this.owner,
      client_msg_id: randomId(),
      queued_at: new Date().toISOString(),
      status: 'pending',
      error: null,
    };
    this.outbox.push(item);
    this.outboxChanged();
    this.flushOutbox();
    return item;
  }

  // Another person signs in on this tab: what the previous one wrote and did not send is theirs,
  // never to be sent under someone else's name.
  setOwner(userId) {
    this.owner = userId;
    const before = this.outbox.length;
    this.outbox = this.outbox.filter((i) => i.owner === userId);
    if (this.outbox.length !== before) this.outboxChanged();
  }

  // Signing out: the page forgets the threads it followed and the unsent messages.
  reset() {
    this.owner = null;
    this.threads.clear();
    this.outbox = [];
    this.outboxChanged();
  }

  retry(clientMsgId) {
    const item = this.outbox.find((i) => i.client_msg_id === clientMsgId);
    if (!item) return;
    item.status = 'pending';
    item.error = null;
    this.outboxChanged();
    this.flushOutbox();
  }

  discard(clientMsgId) {
    this.outbox = this.outbox.filter((i) => i.client_msg_id !== clientMsgId);
    this.outboxChanged();
  }

  outboxChanged() {
    saveOutbox(this.outbox);
    this.emit('outbox', this.outbox);
  }

  flushOutbox() {
    if (this.state !== 'live' || !this.owner) return;
    for (const item of this.outbox) {
      if (item.owner !== this.owner) continue;
      if (item.status === 'failed' || this.sending.has(item.client_msg_id)) continue;
      this.sendOne(item);
    }
  }

  async sendOne(item) {
    this.sending.add(item.client_msg_id);
    item.status = 'sending';
    this.outboxChanged();
    const frame = {
      type: 'send_message',
      thread_id: item.thread_id,
      client_msg_id: item.client_msg_id,
      body: item.body,
      kind: item.kind || 'text',
    };
    if (item.kind === 'location') {
      frame.latitude = item.latitude;
      frame.longitude = item.longitude;
    }
    // Uploads done already (over REST); the same ids on a resend, which the hub recognises as
    // the same message by its client_msg_id.
    if (item.kind === 'attachment') frame.attachment_ids = item.attachment_ids;
    if (item.reply_to) frame.reply_to = item.reply_to;
    // A change of plan asks for acknowledgement by itself; any other message may ask too.
    if (item.requires_ack) frame.requires_ack = true;
    try {
      const ack = await this.request(frame, 20000);
      this.outbox = this.outbox.filter((i) => i.client_msg_id !== item.client_msg_id);
      this.outboxChanged();
      this.emit('sent', { item, ack });
    } catch (error) {
      if (!this.outbox.includes(item)) return;
      if (RETRYABLE.has(error.code)) {
        item.status = 'pending';
        const delay = error.retry_after_s ? error.retry_after_s * 1000 : 3000;
        setTimeout(() => this.flushOutbox(), delay);
      } else {
        item.status = 'failed';
        item.error = error.message || error.code;
      }
      this.outboxChanged();
    } finally {
      this.sending.delete(item.client_msg_id);
    }
  }

  // --- the connection's life ------------------------------------------------------------------

  startHeartbeat() {
    clearInterval(this.beat);
    this.beat = setInterval(() => {
      if (this.state !== 'live') return;
      const silent = Date.now() - this.lastHeard;
      if (silent > HEARTBEAT_DEAD_MS) this.drop();
      else if (silent > HEARTBEAT_IDLE_MS) this.request({ type: 'ping' }, 10000).catch(() => {});
    }, 5000);
  }

  // Forget the current socket at once (its close may never arrive on a dead link).
  drop(code = 1006) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    try {
      ws.close(1000);
    } catch {
      // already closing
    }
    this.closed(code);
  }

  closed(code) {
    this.ws = null;
    clearInterval(this.beat);
    for (const waiter of this.pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject({ code: 'disconnected', message: 'the connection was lost' });
    }
    this.pending.clear();
    for (const thread of this.threads.values()) thread.joined = false;
    this.sending.clear();
    for (const item of this.outbox) if (item.status === 'sending') item.status = 'pending';
    this.outboxChanged();
    if (code === 4001) {
      this.setState('signed-out');
      this.emit('unauthorized', {});
      return;
    }
    if (!navigator.onLine) {
      this.setState('offline');
      return;
    }
    this.scheduleRetry(code === 4009 ? 0 : undefined);
  }

  scheduleRetry(delayMs) {
    this.attempt += 1;
    const ceiling = Math.min(30, 2 ** Math.min(this.attempt - 1, 5));
    const delay = delayMs ?? Math.round(ceiling * (0.5 + Math.random() * 0.5) * 1000);
    clearTimeout(this.retryTimer);
    this.retryAt = Date.now() + delay;
    this.setState('reconnecting');
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  retryNow() {
    if (this.state === 'reconnecting' || this.state === 'signed-out') this.connect();
  }

  wentOffline() {
    // The browser knows the network is gone: close now instead of waiting for the heartbeat
    // (an open socket may linger, or even keep working through an emulated outage).
    clearTimeout(this.retryTimer);
    this.retryAt = 0;
    if (this.ws) this.drop();
    this.setState('offline');
  }

  cameOnline() {
    if (this.state === 'offline' || this.state === 'reconnecting') {
      this.attempt = Math.max(this.attempt, 1);
      this.connect();
    }
  }

  // A new token: the live socket re-authenticates in place; a refused one connects again.
  async reauthenticate() {
    if (this.state === 'live') {
      try {
        await this.request({ type: 'auth', token: this.getToken() });
        return;
      } catch {
        this.drop();
        return;
      }
    }
    this.attempt = 0;
    this.connect();
  }
}

function loadOutbox() {
  try {
    const items = JSON.parse(sessionStorage.getItem(OUTBOX_KEY) || '[]');
    return Array.isArray(items) ? items.map((i) => ({ ...i, status: i.status === 'failed' ? 'failed' : 'pending' })) : [];
  } catch {
    return [];
  }
}

function saveOutbox(items) {
  try {
    sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(items));
  } catch {
    // storage full or disabled: the outbox still lives in memory
  }
}
