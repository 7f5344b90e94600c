// Notification settings (`GET`/`PUT /me/notification-preferences`): where the person is told
// (in the app, by e-mail, through their organization's webhooks), about what (only urgent
// things; mentions), quiet hours in their time zone, and their consent to notification e-mail,
// with the address their sign-in names and whether e-mail reaches them now.
//
// Saving sends only what changed (consent above all: sending it again would restamp when it
// was given), and the hub's answer is what the form shows next; a refusal shows the hub's
// reason and puts the focus on the field it names.
//
// Below them, the organization's webhooks (`js/webhooks.js`): managed by its owners and admins;
// "Your data" (`js/export.js`): the person's export, and the organization's for its owners;
// "People of <organization>" (`js/erase.js`), for its owners and admins: its users, and
// erasing one who left after a typed confirmation; and "Delete my account" (`js/erase.js`):
// the person's erasure, after a typed confirmation.

import { errorText, field, h, replace, supportedZones } from '../dom.js';
import { eraseSection, peopleSection } from '../erase.js';
import { exportSection } from '../export.js';
import { webhooksSection } from '../webhooks.js';

export function settingsView(main, app) {
  let disposed = false;
  let saved = null; // the preferences as the hub last answered

  const inApp = h('input', { type: 'checkbox' });
  const email = h('input', { type: 'checkbox' });
  const webhook = h('input', { type: 'checkbox' });
  const urgentOnly = h('input', { type: 'checkbox' });
  const mentionAlerts = h('input', { type: 'checkbox' });
  const quiet = h('input', { type: 'checkbox' });
  const quietStart = h('input', { type: 'time', required: true, value: '22:00' });
  const quietEnd = h('input', { type: 'time', required: true, value: '07:00' });
  const zones = h('datalist', { id: 'time-zones' });
  const timeZone = h('input', {
    type: 'text', list: 'time-zones', autocomplete: 'off', spellcheck: 'false', maxlength: 64,
    placeholder: 'Europe/London',
  });
  const deviceZone = Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  const useDevice = h('button', { type: 'button', class: 'secondary compact', hidden: !deviceZone, onclick: () => { timeZone.value = deviceZone; } },
    `Use this device’s (${deviceZone})`);
  const consent = h('input', { type: 'checkbox' });
  const consentText = h('span', {}, 'I agree to receive notification e-mail');
  const emailState = h('p', { class: 'hint', 'aria-live': 'polite' });
  const problem = h('p', { class: 'error', role: 'alert' });
  const done = h('p', { class: 'saved', 'aria-live': 'polite' });
  const save = h('button', { type: 'submit' }, 'Save');
  const hours = h('div', { class: 'row wrap hours' }, field('From', quietStart), field('To', quietEnd));

  const form = h('form', { class: 'card settings', 'aria-label': 'Notification settings', hidden: true },
    h('fieldset', {},
      h('legend', {}, 'Tell me'),
      check(inApp, 'In the app (the Notifications list, and live while this page is open)'),
      check(email, 'By e-mail'),
      check(webhook, 'Through my organization’s webhooks'),
    ),
    h('fieldset', {},
      h('legend', {}, 'About'),
      check(mentionAlerts, 'Mentions of me or my organization'),
      check(urgentOnly, 'Only urgent things'),
      h('p', { class: 'hint' }, 'A request to confirm a change of plan comes even from a thread you muted.'),
    ),
    h('fieldset', {},
      h('legend', {}, 'Quiet hours'),
      check(quiet, 'Keep quiet hours'),
      hours,
      h('p', { class: 'hint' }, 'During quiet hours notifications are listed without alerting, and e-mail and webhooks wait until they end; urgent ones still come through.'),
      field('Time zone', timeZone),
      zones,
      useDevice,
    ),
    h('fieldset', {},
      h('legend', {}, 'E-mail'),
      h('label', { class: 'check' }, consent, ' ', consentText),
      emailState,
    ),
    problem,
    h('div', { class: 'row' }, save, done),
  );
  const status = h('p', { class: 'empty' }, 'Loading…');
  const webhooks = webhooksSection(app);
  const yourData = exportSection(app);
  const people = peopleSection(app);
  const erasure = eraseSection(app);
  replace(main, h('div', { class: 'page' },
    h('a', { href: '#/', class: 'back' }, '← Weddings'),
    h('h1', {}, 'Notification settings'),
    status,
    form,
    webhooks.el,
    yourData.el,
    people.el,
    erasure.el,
  ));
  document.title = 'Notification settings · Vendor Hub';

  for (const zone of supportedZones()) zones.append(h('option', { value: zone }));
  quiet.addEventListener('change', showHours);
  for (const control of [inApp, email, webhook, urgentOnly, mentionAlerts, quiet, quietStart, quietEnd, timeZone, consent]) {
    control.addEventListener('input', () => {
      done.textContent = '';
      control.removeAttribute('aria-invalid');
    });
  }

  function showHours() {
    quietStart.disabled = !quiet.checked;
    quietEnd.disabled = !quiet.checked;
    hours.classList.toggle('off', !quiet.checked);
  }

  function show(prefs) {
    saved = prefs;
    inApp.checked = prefs.channels.in_app;
    email.checked = prefs.channels.email;
    webhook.checked = prefs.channels.webhook;
    urgentOnly.checked = prefs.urgent_only;
    mentionAlerts.checked = prefs.mention_alerts;
    quiet.checked = Boolean(prefs.quiet_hours);
    if (prefs.quiet_hours) {
      quietStart.value = prefs.quiet_hours.start;
      quietEnd.value = prefs.quiet_hours.end;
    }
    timeZone.value = prefs.time_zone;
    consent.checked = Boolean(prefs.consent_at);
    consent.disabled = !prefs.email_address && !prefs.consent_at;
    consentText.textContent = prefs.email_address
      ? `I agree to receive notification e-mail at ${prefs.email_address}`
      : 'I agree to receive notification e-mail';
    emailState.textContent = emailStatus(prefs);
    showHours();
  }

  // What changed since the hub's last answer, as the PUT takes it.
  function changes() {
    const out = {};
    const channels = {};
    for (const [name, box] of [['in_app', inApp], ['email', email], ['webhook', webhook]]) {
      if (box.checked !== saved.channels[name]) channels[name] = box.checked;
    }
    if (Object.keys(channels).length) out.channels = channels;
    if (urgentOnly.checked !== saved.urgent_only) out.urgent_only = urgentOnly.checked;
    if (mentionAlerts.checked !== saved.mention_alerts) out.mention_alerts = mentionAlerts.checked;
    const was = saved.quiet_hours;
    if (quiet.checked) {
      if (!was || was.start !== quietStart.value || was.end !== quietEnd.value) {
        out.quiet_hours = { start: quietStart.value, end: quietEnd.value };
      }
    } else if (was) {
      out.quiet_hours = null;
    }
    const zone = timeZone.value.trim();
    if (zone !== saved.time_zone) out.time_zone = zone;
    if (consent.checked !== Boolean(saved.consent_at)) out.email_consent = consent.checked;
    return out;
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!saved) return;
    problem.textContent = '';
    done.textContent = '';
    const body = changes();
    if (!Object.keys(body).length) {
      done.textContent = 'Nothing changed.';
      return;
    }
    save.disabled = true;
    try {
      const prefs = await app.api('PUT', '/me/notification-preferences', body);
      if (disposed) return;
      show(prefs);
      done.textContent = 'Saved.';
    } catch (error) {
      if (disposed) return;
      problem.textContent = `Not saved: ${errorText(error)}`;
      const named = fieldControl((error.details || []).map((d) => d.field).find(Boolean));
      if (named) {
        named.setAttribute('aria-invalid', 'true');
        named.focus();
      }
    } finally {
      save.disabled = false;
    }
  });

  // The control a refusal names (`quiet_hours.start`, `channels.email`, `time_zone`, ...).
  function fieldControl(name) {
    if (!name) return null;
    const controls = {
      time_zone: timeZone,
      quiet_hours: quietStart,
      'quiet_hours.start': quietStart,
      'quiet_hours.end': quietEnd,
      urgent_only: urgentOnly,
      mention_alerts: mentionAlerts,
      email_consent: consent,
      'channels.in_app': inApp,
      'channels.email': email,
      'channels.webhook': webhook,
    };
    return controls[name] || null;
  }

  async function load() {
    try {
      const prefs = await app.api('GET', '/me/notification-preferences');
      if (disposed) return;
      show(prefs);
      status.hidden = true;
      form.hidden = false;
    } catch (error) {
      if (!disposed) status.textContent = `Could not load the settings: ${errorText(error)}`;
    }
  }

  load();
  return {
    dispose() {
      disposed = true;
      webhooks.dispose();
      yourData.dispose();
      people.dispose();
      erasure.dispose();
      document.title = 'Vendor Connections Hub';
    },
  };
}

function check(box, text) {
  return h('label', { class: 'check' }, box, ' ', text);
}

// Why e-mail does or does not reach the person now, in the order they can act on it.
function emailStatus(prefs) {
  if (prefs.email_active) return `E-mail is active: notifications go to ${prefs.email_address}.`;
  if (!prefs.email_address) return 'E-mail is not active: your sign-in names no e-mail address.';
  if (!prefs.channels.email) return 'E-mail is not active: e-mail is off above.';
  if (!prefs.consent_at) return 'E-mail is not active until you agree to receive it.';
  return 'E-mail is not active: this hub sends no e-mail.';
}
