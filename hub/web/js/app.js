// The web client's shell: the signed-in person, the connection status, their notifications, and
// one screen at a time chosen by the URL's fragment (#/ the weddings, #/g/<id> a wedding's
// threads, #/t/<id> a thread, #/settings the notification settings and the organization's
// webhooks).

import { api, blob, configure, download, upload } from './api.js';
import { h, replace } from './dom.js';
import { notifications } from './notifications.js';
import { clearToken, expiresAt, isUsable, takeTokenFromUrl, token } from './session.js';
import { HubSocket } from './socket.js';
import { groupView, threadList } from './views/group.js';
import { groupsView } from './views/groups.js';
import { settingsView } from './views/settings.js';
import { signInView } from './views/signin.js';
import { threadView } from './views/thread.js';

const main = document.getElementById('main');
const connection = document.getElementById('connection');
const account = document.getElementById('account');
const notice = document.getElementById('notice');

const app = {
  socket: null,
  me: null,
  config: null,
  current: null, // the screen shown: { dispose() }
  inbox: null, // the header's Notifications and their dialog
  api,
  upload,
  blob,
  download,
  notify,
  signOut: (message) => signOut(message),
  navigate: (hash) => {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
};

function notify(text, kind = 'info') {
  if (!text) {
    notice.hidden = true;
    return;
  }
  replace(notice, h('span', {}, text), h('button', { type: 'button', class: 'link', onclick: () => notify(null) }, 'Dismiss'));
  notice.className = `notice ${kind}`;
  notice.hidden = false;
}

// --- the connection status ----------------------------------------------------------------------

const STATE_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  offline: 'Offline: messages wait until the network is back',
  'signed-out': 'Signed out',
};

function showConnection() {
  const socket = app.socket;
  const state = socket ? socket.state : 'connecting';
  connection.dataset.state = state;
  clearTimeout(showConnection.timer);
  if (state === 'reconnecting' && socket.retryAt > Date.now()) {
    const seconds = Math.ceil((socket.retryAt - Date.now()) / 1000);
    replace(
      connection,
      `Reconnecting in ${seconds} s`,
      ' ',
      h('button', { type: 'button', class: 'link', onclick: () => socket.retryNow() }, 'Retry now'),
    );
    showConnection.timer = setTimeout(showConnection, 250);
    return;
  }
  replace(connection, state === 'reconnecting' ? 'Reconnecting…' : STATE_TEXT[state] || state);
}

// --- the signed-in person ------------------------------------------------------------------------

function showAccount() {
  if (!app.me) {
    replace(account);
    return;
  }
  const status = h('select', { 'aria-label': 'My status', class: 'compact' });
  for (const [value, text] of [['online', 'Online'], ['away', 'Away'], ['busy', 'Busy']]) {
    status.append(h('option', { value, selected: value === app.myStatus }, text));
  }
  status.addEventListener('change', () => {
    app.myStatus = status.value;
    app.socket.request({ type: 'update_presence', status: status.value }).catch((error) => notify(`Status not changed: ${error.message}`, 'error'));
  });
  replace(
    account,
    app.inbox.button,
    h('span', { class: 'who', title: `${app.me.organization_name} · ${app.me.role}` }, app.me.display_name),
    status,
    h('a', { href: '#/settings', class: 'settings-link' }, 'Settings'),
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'),
  );
}

function signOut(message = 'You are signed out.') {
  clearToken();
  app.me = null;
  app.inbox.stop();
  if (app.socket) {
    app.socket.reset();
    app.socket.drop(4001);
  }
  showAccount();
  showSignIn(typeof message === 'string' ? message : 'You are signed out.');
}

function watchExpiry() {
  clearTimeout(watchExpiry.timer);
  const exp = expiresAt();
  if (exp === null) return;
  const warnAt = exp - 120000;
  const now = Date.now();
  if (now >= exp) {
    showSignIn('Your session has expired: paste a new token to carry on. Unsent messages are kept.');
    return;
  }
  if (now >= warnAt) {
    notify(
      `Your session ends at ${new Date(exp).toLocaleTimeString()}.`,
      'warning',
    );
    notice.append(h('button', { type: 'button', class: 'link', onclick: () => showSignIn('Paste a new token to stay signed in.', true) }, 'Renew'));
    watchExpiry.timer = setTimeout(watchExpiry, exp - now);
    return;
  }
  watchExpiry.timer = setTimeout(watchExpiry, warnAt - now);
}

function showSignIn(message, renewing = false) {
  if (app.current) app.current.dispose();
  app.current = signInView(main, {
    message,
    renewing,
    onSignedIn: async () => {
      notify(null);
      await start();
    },
  });
}

// --- screens -----------------------------------------------------------------------------------

function route() {
  if (!app.me) return;
  if (app.current) app.current.dispose();
  app.current = null;
  const path = location.hash.replace(/^#/, '') || '/';
  const group = path.match(/^\/g\/([0-9a-f-]{36})$/);
  const thread = path.match(/^\/t\/([0-9a-f-]{36})$/);
  let screen;
  if (path === '/settings') screen = settingsView(main, app);
  else if (group) screen = groupView(main, app, group[1]);
  else if (thread && WIDE.matches) screen = splitView(thread[1]);
  else if (thread) screen = threadView(main, app, thread[1]);
  else screen = groupsView(main, app);
  app.current = screen;
  main.focus({ preventScroll: true });
}

// On a desktop a thread has its wedding's threads beside it, to move between them in one click.
const WIDE = window.matchMedia('(min-width: 1000px)');
WIDE.addEventListener('change', () => route());

function splitView(threadId) {
  const side = h('aside', { class: 'side', 'aria-label': 'Threads of this wedding' });
  const pane = h('section', { class: 'pane' });
  replace(main, h('div', { class: 'split' }, side, pane));
  let list = null;
  const thread = threadView(pane, app, threadId, {
    onThread: (t) => {
      list = threadList(app, t.group_id, { current: t.id, filters: { status: '', priority: '' } });
      replace(side, h('a', { href: `#/g/${t.group_id}`, class: 'back' }, '← Wedding'), list.el);
    },
  });
  return {
    dispose() {
      thread.dispose();
      if (list) list.dispose();
    },
  };
}

async function start() {
  if (!isUsable()) {
    showSignIn(token() ? 'Your session has expired: paste a new token.' : 'Paste the access token your organization gave you.');
    return;
  }
  try {
    app.me = await api('GET', '/me');
  } catch (error) {
    if (error.status === 401) {
      showSignIn(`The hub refused this token: ${error.message}`);
    } else {
      replace(main, h('p', { class: 'empty' }, `The hub cannot be reached: ${error.message}.`), h('button', { type: 'button', onclick: start }, 'Try again'));
    }
    return;
  }
  app.myStatus = app.myStatus || 'online';
  showAccount();
  watchExpiry();
  if (!app.socket) {
    app.socket = new HubSocket(app.config.ws_url, token);
    app.socket.setOwner(app.me.user_id);
    app.socket.addEventListener('state', showConnection);
    app.socket.addEventListener('unauthorized', () => {
      if (!isUsable()) showSignIn('Your session has expired: paste a new token to carry on. Unsent messages are kept.');
      else notify('The hub refused the token on the live connection.', 'error');
    });
    app.socket.start();
  } else {
    app.socket.setOwner(app.me.user_id);
    app.socket.reauthenticate();
  }
  app.inbox.start(app.socket);
  route();
}

async function boot() {
  takeTokenFromUrl();
  try {
    const response = await fetch('/app/config.json', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    app.config = await response.json();
  } catch {
    replace(
      main,
      h('p', { class: 'empty' }, 'The hub cannot be reached, or is still starting.'),
      h('button', { type: 'button', onclick: () => location.reload() }, 'Reload'),
    );
    return;
  }
  app.inbox = notifications(app);
  document.body.append(app.inbox.dialog, app.inbox.toasts);
  configure(app.config.api_base, () => {
    if (!isUsable()) showSignIn('Your session has expired: paste a new token to carry on.');
  });
  showConnection();
  window.addEventListener('hashchange', () => {
    if (takeTokenFromUrl()) start();
    else route();
  });
  await start();
}

boot();
