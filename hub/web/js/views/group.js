// One wedding: its threads (urgent first, filtered by status and priority, with unread badges),
// a new thread, the member organizations, and inviting one (owners and admins of the group's
// owning organization), the wedding's escalation policy (`js/escalation.js`: read by every
// member, changed by the owning organization's owners and admins), and its data retention
// (`js/retention.js`: when it is archived and deleted, and any legal hold; the same people).

import { countdown, errorText, field, formatDate, formatTime, h, replace, select } from '../dom.js';
import { escalationSection } from '../escalation.js';
import { retentionSection } from '../retention.js';

const PRIORITIES = [['urgent', 'Urgent'], ['high', 'High'], ['normal', 'Normal'], ['low', 'Low']];
const TYPES = [['general', 'General'], ['timeline', 'Timeline'], ['logistics', 'Logistics'], ['emergency', 'Emergency']];
const VENDOR_TYPES = ['photographer', 'venue', 'florist', 'caterer', 'dj', 'planner', 'baker', 'videographer', 'other'];
const REFRESH_MS = 15000;

export function groupView(main, app, groupId) {
  let disposed = false;
  const filters = { status: 'open', priority: '', q: '' };
  const heading = h('div', { class: 'heading' }, h('h1', {}, 'Wedding'));
  const problem = h('p', { class: 'error', role: 'alert' });
  const threads = threadList(app, groupId, {
    filters,
    onError: (error) => { problem.textContent = `Could not load the threads: ${errorText(error)}`; },
  });
  const members = h('section', { class: 'members', 'aria-label': 'Members' });
  const escalation = escalationSection(app, groupId);
  const retention = retentionSection(app, groupId);

  const statusFilter = select('Status', [['open', 'Open'], ['resolved', 'Resolved'], ['archived', 'Archived'], ['', 'Open and resolved']], filters.status);
  const priorityFilter = select('Priority', [['', 'Any priority'], ...PRIORITIES], filters.priority);
  const searchBox = h('input', { type: 'search', maxlength: 200, autocomplete: 'off', placeholder: 'Words in the title' });
  const search = field('Search threads', searchBox);
  let searchTimer = null;
  searchBox.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      filters.q = searchBox.value.trim();
      threads.reload();
    }, 250);
  });
  for (const [label, key] of [[statusFilter, 'status'], [priorityFilter, 'priority']]) {
    label.querySelector('select').addEventListener('change', (event) => {
      filters[key] = event.target.value;
      threads.reload();
    });
  }

  replace(
    main,
    h(
      'div',
      { class: 'page' },
      h('a', { href: '#/', class: 'back' }, '← All weddings'),
      heading,
      problem,
      h('div', { class: 'filters', role: 'group', 'aria-label': 'Filters' }, statusFilter, priorityFilter),
      search,
      threads.el,
      newThreadForm(app, groupId, problem),
      members,
      escalation.el,
      retention.el,
    ),
  );

  async function loadDetail() {
    try {
      const detail = await app.api('GET', `/groups/${groupId}`);
      if (disposed) return;
      showHeading(detail);
      showMembers(detail);
      escalation.setGroup(detail);
    } catch (error) {
      if (!disposed) problem.textContent = error.status === 404 ? 'This wedding does not exist, or your organization is not a member.' : `Could not load the wedding: ${errorText(error)}`;
    }
  }

  function showHeading(detail) {
    const group = detail.group;
    document.title = `${group.name} · Vendor Hub`;
    const venue = detail.client && detail.client.venue_name;
    replace(
      heading,
      h('h1', {}, group.name),
      h('p', { class: 'meta' }, [
        group.wedding_date ? `${formatDate(group.wedding_date)} · ${countdown(group.wedding_date)}` : 'No wedding date',
        venue ? ` · ${venue}` : '',
        group.status === 'archived' ? ' · archived (read-only)' : '',
      ]),
    );
  }

  function showMembers(detail) {
    const owns = detail.group.owner_organization_id === app.me.organization_id;
    const mayInvite = owns && (app.me.role === 'owner' || app.me.role === 'admin') && detail.group.status === 'active';
    replace(
      members,
      h('h2', {}, 'Vendors'),
      h('ul', { class: 'plain' }, detail.members.map((m) => h(
        'li',
        {},
        h('strong', {}, m.organization_name),
        ` · ${m.vendor_type} · ${m.role}`,
        m.status === 'active' ? '' : ` · ${m.status}`,
      ))),
      mayInvite ? inviteForm(app, groupId, loadDetail) : null,
    );
  }

  loadDetail();
  return {
    dispose() {
      disposed = true;
      clearTimeout(searchTimer);
      threads.dispose();
      escalation.dispose();
      retention.dispose();
      document.title = 'Vendor Connections Hub';
    },
  };
}

// A wedding's threads, urgent first, with unread badges; refreshed every REFRESH_MS and when the
// page comes back into view. `current` marks the thread shown beside it (desktop).
export function threadList(app, groupId, { filters = { status: 'open', priority: '' }, current = null, onError = () => {} } = {}) {
  let disposed = false;
  let timer = null;
  const el = h('ul', { class: 'cards', 'aria-label': 'Threads' });

  async function load() {
    clearTimeout(timer);
    try {
      const page = await app.api('GET', '/threads', undefined, {
        group_id: groupId, sort: 'priority', status: filters.status, priority: filters.priority, q: filters.q, limit: 200,
      });
      if (!disposed) show(page.items);
    } catch (error) {
      if (!disposed && error.status !== 404) onError(error);
    }
    if (!disposed) timer = setTimeout(load, REFRESH_MS);
  }

  function show(items) {
    if (!items.length) {
      replace(el, h('li', { class: 'empty' }, 'No threads here yet.'));
      return;
    }
    replace(el, items.map((thread) => h(
      'li',
      { class: `card thread priority-${thread.priority}${thread.id === current ? ' current' : ''}` },
      h(
        'a',
        { href: `#/t/${thread.id}`, class: 'row', 'aria-current': thread.id === current ? 'page' : null },
        h(
          'span',
          { class: 'grow' },
          h('strong', { class: 'title' }, thread.title),
          h('span', { class: 'meta' }, [
            h('span', { class: `pill ${thread.priority}` }, thread.priority),
            ` ${thread.thread_type} · ${thread.status}`,
            thread.last_message_at ? ` · ${formatTime(thread.last_message_at)}` : '',
          ]),
        ),
        thread.unread_count && thread.id !== current
          ? h('span', { class: 'badge', 'aria-label': `${thread.unread_count} unread` }, String(thread.unread_count))
          : null,
      ),
    )));
  }

  const onVisible = () => {
    if (document.visibilityState === 'visible') load();
  };
  document.addEventListener('visibilitychange', onVisible);
  load();
  return {
    el,
    reload: load,
    dispose() {
      disposed = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    },
  };
}

function newThreadForm(app, groupId, problem) {
  const title = h('input', { required: true, maxlength: 200, autocomplete: 'off' });
  const first = h('textarea', { rows: 2, maxlength: 10000 });
  const priority = select('Priority', PRIORITIES, 'normal');
  const kind = select('Type', TYPES, 'general');
  const form = h(
    'form',
    { class: 'card new' },
    h('h2', {}, 'New thread'),
    field('Title', title),
    h('div', { class: 'row' }, priority, kind),
    field('First message (optional)', first),
    h('button', { type: 'submit' }, 'Create thread'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = {
      group_id: groupId,
      title: title.value.trim(),
      priority: priority.querySelector('select').value,
      thread_type: kind.querySelector('select').value,
    };
    if (first.value.trim()) body.first_message = { body: first.value };
    try {
      const thread = await app.api('POST', '/threads', body);
      app.navigate(`#/t/${thread.id}`);
    } catch (error) {
      problem.textContent = `Could not create the thread: ${errorText(error)}`;
    }
  });
  return form;
}

function inviteForm(app, groupId, reload) {
  const org = h('input', {
    required: true, autocomplete: 'off', spellcheck: 'false',
    pattern: '[0-9a-fA-F-]{36}', title: 'the organization ID, as its owner sees it on their weddings page',
  });
  const vendorType = select('Vendor type', VENDOR_TYPES.map((v) => [v, v]), 'other');
  const role = select('Role', [['vendor', 'Vendor'], ['manager', 'Manager'], ['admin', 'Admin']], 'vendor');
  const problem = h('p', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    { class: 'card new' },
    h('h3', {}, 'Invite an organization'),
    field('Organization ID', org),
    h('div', { class: 'row' }, vendorType, role),
    problem,
    h('button', { type: 'submit' }, 'Invite'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await app.api('POST', `/groups/${groupId}`, {
        organization_id: org.value.trim().toLowerCase(),
        vendor_type: vendorType.querySelector('select').value,
        role: role.querySelector('select').value,
      });
      app.notify('Invitation sent: their owner or admin sees it on their weddings page.');
      reload();
    } catch (error) {
      problem.textContent = errorText(error);
    }
  });
  return form;
}
