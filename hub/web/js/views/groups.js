// The weddings (connection groups) of the person's organization, soonest wedding first, with
// unread badges; the organization's pending invitations (for its owners and admins); a new group.

import { countdown, daysUntil, errorText, field, formatDate, h, replace } from '../dom.js';

const CREATORS = new Set(['owner', 'admin', 'manager']);
const RESPONDERS = new Set(['owner', 'admin']);
const REFRESH_MS = 15000;

export function groupsView(main, app) {
  let disposed = false;
  let timer = null;
  const list = h('ul', { class: 'cards', 'aria-label': 'Weddings' });
  const invitations = h('section', { class: 'invitations', 'aria-label': 'Invitations', hidden: true });
  const problem = h('p', { class: 'error', role: 'alert' });

  const page = h(
    'div',
    { class: 'page' },
    h('h1', {}, 'Weddings'),
    problem,
    invitations,
    list,
    CREATORS.has(app.me.role) ? newGroupForm(app, problem) : null,
    h('p', { class: 'hint' }, 'Your organization ID (give it to a planner who invites you): ', h('code', {}, app.me.organization_id)),
  );
  replace(main, page);

  async function load() {
    try {
      const [groups, invites] = await Promise.all([
        app.api('GET', '/groups', undefined, { limit: 200 }),
        RESPONDERS.has(app.me.role) ? app.api('GET', '/invitations') : Promise.resolve(null),
      ]);
      if (disposed) return;
      problem.textContent = '';
      showGroups(groups.items);
      showInvitations(invites ? invites.items : []);
    } catch (error) {
      if (!disposed) problem.textContent = `Could not load the weddings: ${errorText(error)}`;
    }
    if (!disposed) timer = setTimeout(load, REFRESH_MS);
  }

  function showGroups(groups) {
    const sorted = [...groups].sort(bySoonestWedding);
    if (!sorted.length) {
      replace(list, h('li', { class: 'empty' }, 'No weddings yet.'));
      return;
    }
    replace(list, sorted.map((group) => {
      const unread = group.stats.unread_count;
      return h(
        'li',
        { class: 'card' },
        h(
          'a',
          { href: `#/g/${group.id}`, class: 'row' },
          h(
            'span',
            { class: 'grow' },
            h('strong', { class: 'title' }, group.name),
            h('span', { class: 'meta' }, group.wedding_date
              ? `${formatDate(group.wedding_date)} · ${countdown(group.wedding_date)}`
              : 'No wedding date'),
          ),
          unread ? h('span', { class: 'badge', 'aria-label': `${unread} unread` }, String(unread)) : null,
        ),
      );
    }));
  }

  function showInvitations(items) {
    invitations.hidden = !items.length;
    if (!items.length) return;
    replace(
      invitations,
      h('h2', {}, 'Invitations'),
      h('ul', { class: 'cards' }, items.map((invite) => {
        const answer = async (verb) => {
          try {
            await app.api('POST', `/groups/${invite.group_id}/${verb}`);
            app.notify(verb === 'accept' ? `You joined ${invite.group_name}.` : `You declined ${invite.group_name}.`);
            clearTimeout(timer);
            load();
          } catch (error) {
            app.notify(`Could not ${verb}: ${errorText(error)}`, 'error');
          }
        };
        return h(
          'li',
          { class: 'card invitation' },
          h('strong', {}, invite.group_name),
          h('span', { class: 'meta' }, [
            invite.wedding_date ? `${formatDate(invite.wedding_date)} · ` : '',
            `from ${invite.owner_organization_name}, as ${invite.vendor_type}`,
          ]),
          h(
            'span',
            { class: 'actions' },
            h('button', { type: 'button', onclick: () => answer('accept') }, 'Accept'),
            h('button', { type: 'button', class: 'secondary', onclick: () => answer('decline') }, 'Decline'),
          ),
        );
      })),
    );
  }

  const onVisible = () => {
    if (document.visibilityState === 'visible') {
      clearTimeout(timer);
      load();
    }
  };
  document.addEventListener('visibilitychange', onVisible);
  load();
  return {
    dispose() {
      disposed = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    },
  };
}

function newGroupForm(app, problem) {
  const name = h('input', { required: true, maxlength: 200, autocomplete: 'off' });
  const date = h('input', { type: 'date' });
  const form = h(
    'form',
    { class: 'card new' },
    h('h2', {}, 'New wedding'),
    field('Name', name),
    field('Wedding date', date),
    h('button', { type: 'submit' }, 'Create wedding'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const group = await app.api('POST', '/groups', {
        name: name.value.trim(),
        wedding_date: date.value || null,
      });
      app.navigate(`#/g/${group.id}`);
    } catch (error) {
      problem.textContent = `Could not create the wedding: ${errorText(error)}`;
    }
  });
  return form;
}

// Upcoming weddings soonest first, then those without a date, then past ones latest first.
function bySoonestWedding(a, b) {
  const rank = (g) => {
    if (!g.wedding_date) return [1, 0];
    return daysUntil(g.wedding_date) >= 0 ? [0, g.wedding_date] : [2, g.wedding_date];
  };
  const [ra, ka] = rank(a);
  const [rb, kb] = rank(b);
  if (ra !== rb) return ra - rb;
  if (ra === 2) return ka < kb ? 1 : ka > kb ? -1 : 0;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
