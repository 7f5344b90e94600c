// "Delete my account" on the settings screen (`POST /me/erase`; docs/privacy.md, "Erasing a
// user"): what goes and what stays is said before anything is sent, and the person types
// `erase` to say they mean it (the hub asks for it too). Once the hub has answered the page
// signs out and says the account is gone: the token no longer opens anything.

import { errorText, field, h } from './dom.js';

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
