// Signing in by pasting a token: for when the link's token has expired, or a person was given a
// token rather than a link.

import { errorText, field, h, replace } from '../dom.js';
import { claims, expiresAt, setToken } from '../session.js';

export function signInView(main, { message, renewing, onSignedIn }) {
  const input = h('textarea', { rows: 4, autocomplete: 'off', spellcheck: 'false', required: true });
  const problem = h('p', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    { class: 'card signin' },
    h('h1', {}, renewing ? 'Renew your session' : 'Sign in'),
    h('p', {}, message),
    field('Access token', input),
    problem,
    h('button', { type: 'submit' }, 'Sign in'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!claims(value)) {
      problem.textContent = 'That is not a token: it should be three parts separated by dots.';
      return;
    }
    const exp = expiresAt(value);
    if (exp !== null && exp <= Date.now()) {
      problem.textContent = `That token expired at ${new Date(exp).toLocaleString()}.`;
      return;
    }
    setToken(value);
    try {
      await onSignedIn();
    } catch (error) {
      problem.textContent = errorText(error);
    }
  });
  replace(main, form);
  input.focus();
  return { dispose() {} };
}
