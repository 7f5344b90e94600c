// The organization's webhooks (`GET`/`POST /webhooks`, `DELETE /webhooks/{id}`), on the
// settings screen: where the hub POSTs the notifications of the organization's people (a
// venue's own system, an SMS or push provider), each signed with the webhook's secret.
//
// Only the organization's owners and admins manage them (the hub refuses everyone else, even
// the list); others see a note saying who does. The secret is in the hub's answer to the
// creation alone, so it is shown then, once, with a Copy button, and never fetched again. A URL
// the hub will not send to (http, a loopback or private address, a local name) is refused with
// its reason, shown as text. Deleting asks first, in the row itself.

import { append, errorText, field, formatTime, h, replace } from './dom.js';

const MANAGERS = new Set(['owner', 'admin']);

// The hub's events (`WebhookEvent`), in words.
export const WEBHOOK_EVENTS = [
  ['mention', 'Mentions of a person'],
  ['org_mention', 'Mentions of the organization'],
  ['ack_request', 'Requests to confirm'],
  ['reminder', 'Reminders to confirm'],
  ['escalation', 'Escalations to owners and admins'],
];

// A webhook's events in words, in the form's order (the hub keeps them sorted by name).
function eventsText(events) {
  const known = WEBHOOK_EVENTS.filter(([value]) => events.includes(value)).map(([, text]) => text);
  const other = events.filter((e) => !WEBHOOK_EVENTS.some(([value]) => value === e));
  return [...known, ...other].join(' · ');
}

// `webhooksSection(app)` -> { el, dispose() }.
export function webhooksSection(app) {
  let disposed = false;
  const el = h('section', { class: 'card webhooks', 'aria-labelledby': 'webhooks-heading' },
    h('h2', { id: 'webhooks-heading' }, 'Webhooks'));

  if (!MANAGERS.has(app.me.role)) {
    el.append(h('p', { class: 'readonly-note' },
      'Your organization’s owners and admins manage its webhooks: the addresses where the hub also sends the notifications of its people who have “Through my organization’s webhooks” on.'));
    return { el, dispose() { disposed = true; } };
  }
  el.append(h('p', { class: 'hint' },
    `Each notification of ${app.me.organization_name}’s people is also sent to these addresses (for those who have “Through my organization’s webhooks” on), signed with the webhook’s secret.`));

  const list = h('ul', { class: 'webhook-list', 'aria-label': 'Webhooks of the organization' });
  const status = h('p', { class: 'empty' }, 'Loading…');
  const problem = h('p', { class: 'error', role: 'alert' });
  const secretBox = h('div', { class: 'secret-slot' });

  const url = h('input', {
    type: 'url', required: true, maxlength: 2048, autocomplete: 'off', spellcheck: 'false',
    placeholder: 'https://hooks.example.com/hub', inputmode: 'url',
  });
  const boxes = WEBHOOK_EVENTS.map(([value, text]) => [value, h('input', { type: 'checkbox', value, checked: true }), text]);
  const formProblem = h('p', { class: 'error', role: 'alert' });
  const add = h('button', { type: 'submit' }, 'Add webhook');
  const form = h('form', { class: 'new-webhook', 'aria-label': 'Add a webhook' },
    h('h3', {}, 'Add a webhook'),
    field('URL (https)', url),
    h('fieldset', {},
      h('legend', {}, 'Send'),
      boxes.map(([, box, text]) => h('label', { class: 'check' }, box, ' ', text)),
    ),
    formProblem,
    h('div', { class: 'row' }, add),
  );
  append(el, problem, secretBox, status, list, form);

  url.addEventListener('input', () => {
    url.removeAttribute('aria-invalid');
    formProblem.textContent = '';
  });

  function show(webhooks) {
    status.hidden = webhooks.length > 0;
    status.textContent = 'No webhooks yet.';
    replace(list, webhooks.map(row));
  }

  function row(webhook) {
    const actions = h('div', { class: 'actions' });
    const rowProblem = h('p', { class: 'error', role: 'alert' });
    const li = h('li', { class: 'webhook', dataset: { id: webhook.id } },
      h('code', { class: 'url' }, webhook.url),
      h('span', { class: 'meta' }, eventsText(webhook.events)),
      h('span', { class: 'meta' }, `Added ${formatTime(webhook.created_at)}`),
      rowProblem,
      actions,
    );
    const askButton = h('button', {
      type: 'button', class: 'secondary compact', 'aria-label': `Delete the webhook to ${webhook.url}`, onclick: ask,
    }, 'Delete');
    append(actions, askButton);

    function ask() {
      rowProblem.textContent = '';
      const keep = h('button', { type: 'button', class: 'secondary compact', onclick: cancel }, 'Keep it');
      const yes = h('button', { type: 'button', class: 'compact danger', onclick: remove }, 'Delete it');
      replace(actions, h('span', { class: 'confirm-text' }, 'Delete this webhook? Nothing more will be sent to it.'), yes, keep);
      keep.focus();
    }

    function cancel() {
      replace(actions, askButton);
      askButton.focus();
    }

    async function remove(event) {
      event.target.disabled = true;
      try {
        await app.api('DELETE', `/webhooks/${webhook.id}`);
        if (disposed) return;
        li.remove();
        status.hidden = list.children.length > 0;
        app.notify(`Webhook deleted: nothing more is sent to ${webhook.url}.`);
      } catch (error) {
        if (disposed) return;
        rowProblem.textContent = `Not deleted: ${errorText(error)}`;
        replace(actions, askButton);
      }
    }
    return li;
  }

  function showSecret(webhook) {
    const secret = h('input', {
      type: 'text', readonly: true, value: webhook.secret, spellcheck: 'false', autocomplete: 'off', class: 'secret',
    });
    const copied = h('span', { class: 'saved', 'aria-live': 'polite' });
    const copy = h('button', { type: 'button', class: 'compact', onclick: () => copyText(secret, copied) }, 'Copy');
    const done = h('button', { type: 'button', class: 'secondary compact', onclick: () => replace(secretBox) }, 'Done');
    const heading = h('h3', { tabindex: '-1' }, 'The new webhook’s secret');
    replace(secretBox, h('div', { class: 'secret-card', role: 'region', 'aria-label': 'New webhook secret' },
      heading,
      h('p', { class: 'warning-text' },
        'Copy it now: it will not be shown again. Your receiver checks each delivery’s X-Hub-Signature-256 with it.'),
      field(`Secret of ${webhook.url}`, secret),
      h('div', { class: 'row wrap-start' }, copy, done, copied),
    ));
    heading.focus();
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    formProblem.textContent = '';
    const events = boxes.filter(([, box]) => box.checked).map(([value]) => value);
    if (!events.length) {
      formProblem.textContent = 'Choose at least one thing to send.';
      return;
    }
    add.disabled = true;
    try {
      const created = await app.api('POST', '/webhooks', { url: url.value.trim(), events });
      if (disposed) return;
      form.reset();
      for (const [, box] of boxes) box.checked = true;
      await load();
      if (disposed) return;
      showSecret(created);
    } catch (error) {
      if (disposed) return;
      formProblem.textContent = `Not added: ${errorText(error)}`;
      url.setAttribute('aria-invalid', 'true');
      url.focus();
    } finally {
      add.disabled = false;
    }
  });

  async function load() {
    try {
      const answer = await app.api('GET', '/webhooks');
      if (disposed) return;
      problem.textContent = '';
      show(answer.webhooks);
    } catch (error) {
      if (!disposed) {
        status.hidden = true;
        problem.textContent = `Could not load the webhooks: ${errorText(error)}`;
      }
    }
  }

  load();
  return { el, dispose() { disposed = true; } };
}

// The clipboard API needs a secure context (127.0.0.1 and https are; a phone on the venue's
// network over plain http is not): then the text is selected and copied the old way.
async function copyText(input, said) {
  try {
    if (!navigator.clipboard) throw new Error('no clipboard');
    await navigator.clipboard.writeText(input.value);
    said.textContent = 'Copied.';
  } catch {
    input.focus();
    input.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    said.textContent = ok ? 'Copied.' : 'Selected: copy it with your device’s copy command.';
  }
}
