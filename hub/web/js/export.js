// "Your data" on the settings screen: the person downloads everything the hub holds about them
// (`GET /me/export`), and an organization's owner the organization's (`GET
// /me/organization/export`), each one zip archive (docs/export.md).
//
// The hub needs the token in a header, so the archive is fetched (its size counted as it
// arrives, shown as text) and saved through a blob: URL, as attachments are. A refusal (the
// rate limit, above all: exports are few per hour) shows the hub's reason as text.

import { formatSize } from './attachments.js';
import { errorText, h } from './dom.js';

// `exportSection(app)` -> { el, dispose() }.
export function exportSection(app) {
  let disposed = false;
  const el = h('section', { class: 'card your-data', 'aria-labelledby': 'your-data-heading' },
    h('h2', { id: 'your-data-heading' }, 'Your data'),
    h('p', { class: 'hint' },
      'A zip archive of everything the hub holds about you: your profile, the messages you sent (with their threads’ titles, not other people’s messages), read marks, settings, notifications, confirmations, the audit trail about you and the files you uploaded.'));
  el.append(control('Download my data', '/me/export'));
  if (app.me.role === 'owner') {
    el.append(
      h('p', { class: 'hint' },
        `The same for all of ${app.me.organization_name}: its people’s data, its webhooks (without their secrets) and the weddings it owns with their members.`),
      control('Download the organization’s data', '/me/organization/export'));
  }
  return { el, dispose() { disposed = true; } };

  function control(label, path) {
    const state = h('p', { class: 'hint', 'aria-live': 'polite' });
    const problem = h('p', { class: 'error', role: 'alert' });
    const button = h('button', { type: 'button', class: 'secondary' }, label);
    button.addEventListener('click', async () => {
      problem.textContent = '';
      state.textContent = 'Preparing the archive…';
      button.disabled = true;
      try {
        const { data, filename } = await app.download(path, (received) => {
          if (!disposed) state.textContent = `Downloading… ${formatSize(received)}`;
        });
        if (disposed) return;
        const url = URL.createObjectURL(data);
        const link = h('a', { href: url, download: filename, hidden: true });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        state.textContent = `Downloaded ${filename} (${formatSize(data.size)}).`;
      } catch (error) {
        if (disposed) return;
        state.textContent = '';
        problem.textContent = `Not downloaded: ${errorText(error)}`;
      } finally {
        button.disabled = false;
      }
    });
    return h('div', { class: 'export-control' }, h('div', { class: 'row' }, button), state, problem);
  }
}
