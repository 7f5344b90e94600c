// A wedding's escalation policy (`GET`/`PUT /groups/{id}/escalation-policy`), on its screen:
// how often the organizations that have not confirmed a message are reminded, by how close the
// wedding is (in the wedding's time zone), after how many reminders their owners and admins are
// told too, and how many reminders a wedding without a date gets.
//
// Every member reads it; the owners and admins of the organization that owns the wedding change
// it (while it is not archived), with a form under the summary that sends only what changed.
// The hub checks it (each interval at most the one before it, a known time zone) and its 422 is
// shown as text, with the focus on the field it names.

import { errorText, field, h, randomId, replace, supportedZones } from './dom.js';


// The intervals, farthest from the wedding first (`hub.notifications.policy.tier_of`).
const TIERS = [
  ['more_than_week_minutes', 'More than a week before'],
  ['within_week_minutes', '3 to 7 days before'],
  ['last_two_days_minutes', '1 or 2 days before'],
  ['wedding_day_minutes', 'On the wedding day'],
];

// `escalationSection(app, groupId)` -> { el, setGroup(detail), dispose() }. Whether the person
// may change the policy is the hub's answer (`may_change`); `setGroup` with the wedding's detail
// asks again when the wedding's status changed (an archived wedding is read-only).
export function escalationSection(app, groupId) {
  let disposed = false;
  let policy = null; // as the hub last answered
  let mayEdit = false;
  let known = false; // whether the hub has said if the person may change it
  let seenStatus = null;

  const summary = h('dl', { class: 'policy', 'aria-label': 'Escalation policy' });
  const status = h('p', { class: 'empty' }, 'Loading…');
  const problem = h('p', { class: 'error', role: 'alert' });
  const note = h('p', { class: 'readonly-note', hidden: true },
    'Set by the owners and admins of the organization that owns this wedding.');
  const editor = editForm();
  const el = h('section', { class: 'card escalation', 'aria-labelledby': 'escalation-heading' },
    h('h2', { id: 'escalation-heading' }, 'Escalation'),
    h('p', { class: 'hint' },
      'When a message asks organizations to confirm, those that have not are reminded, more often as the wedding approaches; reminders stop after the wedding day.'),
    problem, status, summary, note, editor.el,
  );

  function showSummary() {
    const rows = [
      ['Reminders', policy.enabled ? 'On' : 'Off: nobody is reminded'],
      ...TIERS.map(([key, label]) => [label, every(policy[key])]),
      ['Owners and admins told too', policy.escalate_after === 0
        ? 'from the first reminder'
        : `after ${plural(policy.escalate_after, 'unanswered reminder')}`],
      ['Without a wedding date', `${every(policy.more_than_week_minutes)}, at most ${plural(policy.max_reminders_without_date, 'reminder')}`],
      ['Days counted in', policy.time_zone],
    ];
    replace(summary, rows.map(([term, value]) => h('div', { class: 'policy-row' }, h('dt', {}, term), h('dd', {}, value))));
    summary.classList.toggle('off', !policy.enabled);
  }

  function show() {
    if (!policy) return;
    status.hidden = true;
    showSummary();
    note.hidden = !known || mayEdit;
    editor.el.hidden = !mayEdit;
  }

  function editForm() {
    const enabled = h('input', { type: 'checkbox' });
    const number = (min, max) => h('input', { type: 'number', required: true, min, max, step: 1, inputmode: 'numeric' });
    const tiers = TIERS.map(([key, label]) => [key, label, number(1, 10080)]);
    const escalateAfter = number(0, 100);
    const withoutDate = number(0, 1000);
    const zonesId = `zones-${randomId()}`;
    const zones = h('datalist', { id: zonesId });
    const timeZone = h('input', {
      type: 'text', list: zonesId, required: true, autocomplete: 'off', spellcheck: 'false', maxlength: 64,
      placeholder: 'Europe/London',
    });
    const formProblem = h('p', { class: 'error', role: 'alert' });
    const done = h('p', { class: 'saved', 'aria-live': 'polite' });
    const save = h('button', { type: 'submit' }, 'Save policy');
    const controls = {
      enabled,
      time_zone: timeZone,
      escalate_after: escalateAfter,
      max_reminders_without_date: withoutDate,
      ...Object.fromEntries(tiers.map(([key, , input]) => [key, input])),
    };
    const form = h('form', { class: 'settings policy-form', 'aria-label': 'Change the escalation policy' },
      h('label', { class: 'check' }, enabled, ' ', 'Remind organizations that have not confirmed'),
      h('fieldset', {},
        h('legend', {}, 'Minutes between reminders'),
        h('div', { class: 'tiers' }, tiers.map(([, label, input]) => field(label, input))),
        h('p', { class: 'hint' }, 'Each at most the one above it: reminders come more often as the wedding approaches. 1 to 10080 (a week).'),
      ),
      h('div', { class: 'tiers' },
        field('Tell owners and admins too after this many reminders', escalateAfter),
        field('Without a wedding date, stop after this many reminders', withoutDate),
      ),
      field('Time zone of the wedding', timeZone),
      zones,
      formProblem,
      h('div', { class: 'row' }, save, done),
    );
    const details = h('details', { class: 'policy-edit', hidden: true },
      h('summary', {}, 'Change the escalation policy'),
      form,
    );
    let zonesFilled = false;
    details.addEventListener('toggle', () => {
      if (details.open && !zonesFilled) {
        zonesFilled = true;
        for (const zone of supportedZones()) zones.append(h('option', { value: zone }));
      }
    });
    for (const control of Object.values(controls)) {
      control.addEventListener('input', () => {
        done.textContent = '';
        control.removeAttribute('aria-invalid');
      });
    }

    function fill(p) {
      enabled.checked = p.enabled;
      for (const [key, , input] of tiers) input.value = String(p[key]);
      escalateAfter.value = String(p.escalate_after);
      withoutDate.value = String(p.max_reminders_without_date);
      timeZone.value = p.time_zone;
    }

    // What changed since the hub's last answer, as the PUT takes it.
    function changes() {
      const out = {};
      if (enabled.checked !== policy.enabled) out.enabled = enabled.checked;
      for (const [key, input] of [...tiers.map(([k, , i]) => [k, i]), ['escalate_after', escalateAfter], ['max_reminders_without_date', withoutDate]]) {
        const value = Number(input.value);
        if (value !== policy[key]) out[key] = value;
      }
      const zone = timeZone.value.trim();
      if (zone !== policy.time_zone) out.time_zone = zone;
      return out;
    }

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!policy) return;
      formProblem.textContent = '';
      done.textContent = '';
      const body = changes();
      if (!Object.keys(body).length) {
        done.textContent = 'Nothing changed.';
        return;
      }
      save.disabled = true;
      try {
        const answer = await app.api('PUT', `/groups/${groupId}/escalation-policy`, body);
        if (disposed) return;
        policy = answer;
        show();
        fill(policy);
        done.textContent = 'Saved.';
      } catch (error) {
        if (disposed) return;
        formProblem.textContent = `Not saved: ${errorText(error)}`;
        const name = (error.details || []).map((d) => d.field).find(Boolean);
        const named = name && controls[name];
        if (named) {
          named.setAttribute('aria-invalid', 'true');
          named.focus();
        }
      } finally {
        save.disabled = false;
      }
    });
    return { el: details, fill };
  }

  async function load() {
    try {
      const answer = await app.api('GET', `/groups/${groupId}/escalation-policy`);
      if (disposed) return;
      policy = answer;
      mayEdit = answer.may_change;
      known = true;
      show();
      editor.fill(policy);
    } catch (error) {
      if (disposed) return;
      if (error.status === 404) {
        el.hidden = true; // the wedding's screen says it is not there
        return;
      }
      status.hidden = true;
      problem.textContent = `Could not load the escalation policy: ${errorText(error)}`;
    }
  }

  load();
  return {
    el,
    setGroup(detail) {
      if (seenStatus !== null && seenStatus !== detail.group.status) load();
      seenStatus = detail.group.status;
    },
    dispose() {
      disposed = true;
    },
  };
}

// 60 -> "every hour", 90 -> "every 1 h 30 min", 1440 -> "every day", 5 -> "every 5 minutes".
export function every(minutes) {
  if (minutes === 1) return 'every minute';
  if (minutes < 60) return `every ${minutes} minutes`;
  if (minutes === 60) return 'every hour';
  if (minutes === 1440) return 'every day';
  if (minutes === 10080) return 'every week';
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  if (!rest) return `every ${hours} hours`;
  return `every ${hours} h ${rest} min`;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
