// A wedding's data retention (`GET`/`PUT /groups/{id}/retention`, `PUT`/`DELETE
// /groups/{id}/legal-hold`), on its screen: when the wedding is archived (read-only) and when its
// messages and files are deleted, counted from the wedding date (or the last message, without
// one), and the legal hold that stops both.
//
// Every member reads it: the people whose messages these are should know when they go. The
// owners and admins of the organization that owns the wedding change the days and place or lift
// a hold, also once it is archived, until it is deleted. The hub checks the days (archive before
// delete) and its 422 is shown as text, with the focus on the field it names.

import { errorText, field, h, replace } from './dom.js';


// `retentionSection(app, groupId)` -> { el, dispose() }. Whether the person may change the days
// and the hold is the hub's answer (`may_change`).
export function retentionSection(app, groupId) {
  let disposed = false;
  let state = null; // as the hub last answered

  const summary = h('dl', { class: 'policy', 'aria-label': 'Data retention' });
  const status = h('p', { class: 'empty' }, 'Loading…');
  const problem = h('p', { class: 'error', role: 'alert' });
  const note = h('p', { class: 'readonly-note', hidden: true },
    'Set by the owners and admins of the organization that owns this wedding.');
  const editor = editForm();
  const el = h('section', { class: 'card retention', 'aria-labelledby': 'retention-heading' },
    h('h2', { id: 'retention-heading' }, 'Data retention'),
    h('p', { class: 'hint' },
      'After the wedding its threads become read-only, and later its messages and files are deleted for good. A legal hold keeps everything.'),
    problem, status, summary, note, editor.el,
  );

  function showSummary() {
    const counted = state.anchor === 'wedding_date' ? 'the wedding day' : 'the last message';
    const rows = [
      ['Counted from', `${counted} (${day(state.anchored_at)})`],
      ['Read-only from', state.archived_at ? `${day(state.archived_at)} (archived)` : `${day(state.archive_due)} · ${plural(state.archive_days_after_wedding, 'day')} after`],
      ['Messages and files deleted', state.purged_at ? `${day(state.purged_at)} (deleted)` : `${day(state.purge_due)} · ${plural(state.retention_days_after_wedding, 'day')} after`],
      ['Legal hold', state.legal_hold ? `Held since ${day(state.legal_hold.at)}: ${state.legal_hold.reason}` : 'None'],
    ];
    replace(summary, rows.map(([term, value]) => h('div', { class: 'policy-row' }, h('dt', {}, term), h('dd', {}, value))));
    summary.classList.toggle('held', Boolean(state.legal_hold));
  }

  function show() {
    if (!state) return;
    status.hidden = true;
    showSummary();
    const editable = state.may_change;
    note.hidden = editable || Boolean(state.purged_at);
    editor.el.hidden = !editable;
    editor.fill(state);
  }

  function editForm() {
    const number = (min, max) => h('input', { type: 'number', required: true, min, max, step: 1, inputmode: 'numeric' });
    const archiveDays = number(0, 36500);
    const retentionDays = number(1, 36500);
    const reason = h('input', { type: 'text', maxlength: 500, autocomplete: 'off', placeholder: 'Claim 2031-118' });
    const formProblem = h('p', { class: 'error', role: 'alert' });
    const done = h('p', { class: 'saved', 'aria-live': 'polite' });
    const save = h('button', { type: 'submit' }, 'Save retention');
    const hold = h('button', { type: 'button' }, 'Place legal hold');
    const lift = h('button', { type: 'button', class: 'danger' }, 'Lift legal hold');
    const controls = {
      archive_days_after_wedding: archiveDays,
      retention_days_after_wedding: retentionDays,
      reason,
    };
    const daysForm = h('form', { class: 'settings policy-form', 'aria-label': 'Change the retention' },
      h('div', { class: 'tiers' },
        field('Days after the wedding until read-only', archiveDays),
        field('Days after the wedding until deleted', retentionDays),
      ),
      h('p', { class: 'hint' }, 'Read-only must come before deleted. Without a wedding date, days count from the last message.'),
      h('div', { class: 'row' }, save),
    );
    const holdForm = h('form', { class: 'settings policy-form', 'aria-label': 'Legal hold' },
      field('Reason for a legal hold', reason),
      h('div', { class: 'row' }, hold, lift),
    );
    const details = h('details', { class: 'policy-edit', hidden: true },
      h('summary', {}, 'Change the data retention'),
      daysForm, holdForm, formProblem, done,
    );
    for (const control of Object.values(controls)) {
      control.addEventListener('input', () => {
        done.textContent = '';
        control.removeAttribute('aria-invalid');
      });
    }

    function fill(s) {
      archiveDays.value = String(s.archive_days_after_wedding);
      retentionDays.value = String(s.retention_days_after_wedding);
      lift.hidden = !s.legal_hold;
      hold.textContent = s.legal_hold ? 'Change the reason' : 'Place legal hold';
    }

    async function send(method, path, body, saved) {
      formProblem.textContent = '';
      done.textContent = '';
      for (const button of [save, hold, lift]) button.disabled = true;
      try {
        const answer = await app.api(method, path, body);
        if (disposed) return;
        state = answer;
        show();
        done.textContent = saved;
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
        for (const button of [save, hold, lift]) button.disabled = false;
      }
    }

    daysForm.addEventListener('submit', (event) => {
      event.preventDefault();
      if (!state) return;
      const body = {};
      const archive = Number(archiveDays.value);
      const retention = Number(retentionDays.value);
      if (archive !== state.archive_days_after_wedding) body.archive_days_after_wedding = archive;
      if (retention !== state.retention_days_after_wedding) body.retention_days_after_wedding = retention;
      if (!Object.keys(body).length) {
        done.textContent = 'Nothing changed.';
        return;
      }
      send('PUT', `/groups/${groupId}/retention`, body, 'Saved.');
    });
    holdForm.addEventListener('submit', (event) => event.preventDefault());
    hold.addEventListener('click', () => {
      send('PUT', `/groups/${groupId}/legal-hold`, { reason: reason.value.trim() }, 'Legal hold placed.');
    });
    lift.addEventListener('click', () => {
      send('DELETE', `/groups/${groupId}/legal-hold`, undefined, 'Legal hold lifted.');
    });
    return { el: details, fill };
  }

  async function load() {
    try {
      const answer = await app.api('GET', `/groups/${groupId}/retention`);
      if (disposed) return;
      state = answer;
      show();
    } catch (error) {
      if (disposed) return;
      if (error.status === 404) {
        el.hidden = true; // the wedding's screen says it is not there
        return;
      }
      status.hidden = true;
      problem.textContent = `Could not load the data retention: ${errorText(error)}`;
    }
  }

  load();
  return {
    el,
    dispose() {
      disposed = true;
    },
  };
}

// An RFC 3339 moment as the day it falls on, in UTC (the hub counts retention days in UTC).
function day(iso) {
  return new Date(iso).toLocaleDateString(undefined, {
    day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC',
  });
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
