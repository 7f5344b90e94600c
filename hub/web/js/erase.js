// "Delete my account" on the settings screen (`POST /me/erase`; docs/privacy.md, "Erasing a
// user"): what goes and what stays is said before anything is sent, and the person types
// `erase` to say they mean it (the hub asks for it too). Once the hub has answered the page
// signs out and says the account is gone: the token no longer opens anything.
//
// "People of <organization>" (`peopleSection`), for its owners and admins: the organization's
// users (`GET /me/organization/users`) with when each was last seen, and "Erase" by those the
// hub says the caller may erase (`erasable`: not the caller, who has "Delete my account"; an
// owner only for an owner). Erasing one (`POST /users/{id}/erase`) asks first for their name
// or `erase` typed; the row then says "Erased".

import { errorText, field, formatTime, h, replace } from './dom.js';

const ERASERS = new Set(['owner', 'admin']);
const ROLES = { owner: 'Owner', admin: 'Admin', manager: 'Manager', vendor: 'Vendor' };

// `eraseSection(app)` -> { el, dispose() }.
export function eraseSection(app) {
  let disposed = false;
  const typed = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: 16 });
  const problem = h('p', { class: 'error', role: 'alert' });
  const button = h('button', { type: 'submit', class: 'danger', disabled: true }, 'Delete my account');
  typed.addEventListener('input', () => {
    button.disabled = typed.value.trim() !== 'erase';
    problem.textContent = '';
  });
  const form = h('form', { class: 'card erase-account', 'aria-labelledby': 'erase-heading' },
    h('h2', { id: 'erase-heading' }, 'Delete my account'),
    h('p', {}, 'This cannot be undone. What goes: every message you sent (each becomes “message deleted” for everyone), the files you uploaded, your read marks, presence, settings, mutes and notifications, and your name and e-mail address. Your sign-in will no longer open this hub.'),
    h('p', { class: 'hint' }, 'What stays: other people’s messages, which show you as “Erased user”; your organization’s confirmations, webhooks and weddings; the audit trail of what was done, without your address or what you wrote. Download your data above first if you want a copy.'),
    field('Type erase to confirm', typed),
    problem,
    h('div', { class: 'row' }, button),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (typed.value.trim() !== 'erase') return;
    button.disabled = true;
    try {
      await app.api('POST', '/me/erase', { confirm: 'erase' });
      if (!disposed) app.signOut('Your account was deleted: its messages, files and name are gone from this hub.');
    } catch (error) {
      if (disposed) return;
      problem.textContent = `Not deleted: ${errorText(error)}`;
      button.disabled = false;
    }
  });
  return { el: form, dispose() { disposed = true; } };
}

// `peopleSection(app)` -> { el, dispose() }; `el` is null for roles that do not manage people.
export function peopleSection(app) {
  let disposed = false;
  if (!ERASERS.has(app.me.role)) return { el: null, dispose() {} };
  const status = h('p', { class: 'hint', 'aria-live': 'polite' }, 'Loading…');
  const list = h('ul', { class: 'people-list', 'aria-label': `People of ${app.me.organization_name}` });
  const el = h('section', { class: 'card people', 'aria-labelledby': 'people-heading' },
    h('h2', { id: 'people-heading' }, `People of ${app.me.organization_name}`),
    h('p', { class: 'hint' }, 'Erasing someone who left removes what they wrote and uploaded and their name, as “Delete my account” does for oneself; it cannot be undone.'),
    status,
    list,
  );
  load();
  return { el, dispose() { disposed = true; } };

  async function load() {
    try {
      const { items } = await app.api('GET', '/me/organization/users');
      if (disposed) return;
      status.hidden = true;
      replace(list, items.map(personRow));
    } catch (error) {
      if (!disposed) status.textContent = `Could not load the people: ${errorText(error)}`;
    }
  }

  function personRow(person) {
    const name = person.display_name;
    const state = h('span', { class: 'state' });
    const meta = h('p', { class: 'hint meta' });
    const actions = h('div', { class: 'row actions' });
    const confirmSlot = h('div', { class: 'confirm-slot' });
    const row = h('li', { class: 'person', dataset: { userId: person.id } },
      h('div', { class: 'row who' }, h('span', { class: 'name' }, name), state),
      meta, actions, confirmSlot);
    if (person.erased) showErased();
    else {
      const you = person.id === app.me.user_id ? ' · you' : '';
      meta.textContent = `${ROLES[person.role] || person.role}${you} · ${lastSeen(person.last_seen_at)}`;
      if (person.erasable) {
        actions.append(h('button', { type: 'button', class: 'secondary compact', 'aria-label': `Erase ${name}`, onclick: ask }, 'Erase'));
      }
    }
    return row;

    function showErased() {
      row.classList.add('erased');
      state.textContent = 'Erased';
      meta.textContent = `${ROLES[person.role] || person.role} · erased: their messages show as deleted, sent by “Erased user”`;
      actions.replaceChildren();
      confirmSlot.replaceChildren();
    }

    function ask() {
      const typed = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: 200 });
      const problem = h('p', { class: 'error', role: 'alert' });
      const go = h('button', { type: 'submit', class: 'danger', disabled: true }, `Erase ${name}`);
      const cancel = h('button', { type: 'button', class: 'secondary', onclick: () => confirmSlot.replaceChildren() }, 'Cancel');
      const confirmed = () => {
        const value = typed.value.trim();
        return value === 'erase' || (value !== '' && value === name.trim());
      };
      typed.addEventListener('input', () => {
        go.disabled = !confirmed();
        problem.textContent = '';
      });
      const form = h('form', { class: 'erase-person', 'aria-label': `Erase ${name}` },
        h('p', { class: 'confirm-text' }, `This cannot be undone. Every message ${name} sent becomes “message deleted”, their files, settings and notifications go, their name is replaced by “Erased user” and their sign-in no longer opens this hub.`),
        field(`Type their name (${name}) or erase to confirm`, typed),
        problem,
        h('div', { class: 'row' }, go, cancel),
      );
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        if (!confirmed()) return;
        go.disabled = true;
        try {
          await app.api('POST', `/users/${encodeURIComponent(person.id)}/erase`, { confirm: 'erase' });
          if (!disposed) showErased();
        } catch (error) {
          if (disposed) return;
          problem.textContent = `Not erased: ${errorText(error)}`;
          go.disabled = false;
        }
      });
      replace(confirmSlot, form);
      typed.focus();
    }
  }
}

function lastSeen(iso) {
  return iso ? `last seen ${formatTime(iso)}` : 'not seen yet';
}
