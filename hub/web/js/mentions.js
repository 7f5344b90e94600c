// Mentions in a message's text, highlighted: the hub resolves `@Display Name` of a member user
// and `@Organization Name` when it stores a message and keeps who it found in
// `metadata.mentions` ({users: [{id, name, org_id}], orgs: [{id, name}]}); the page finds those
// names again in the body by the hub's rule (an `@` at the start of a word, the name without
// regard to case, ending where a word ends; the longest name wins) and wraps each in a span, as
// text. A name the hub did not resolve stays plain text, whatever it looks like.

import { h } from './dom.js';

// The body as a list of strings and <span class="mention"> elements for `append`/`h`; a mention
// of the reader or of their organization is marked `me` too.
export function withMentions(body, mentions, me) {
  const text = body || '';
  const names = mentionedNames(mentions, me);
  if (!names.length || !text.includes('@')) return [text];
  const folded = text.toLowerCase();
  if (folded.length !== text.length) return [text]; // a letter whose lower case is longer: positions would shift
  const parts = [];
  let from = 0;
  let at = folded.indexOf('@');
  while (at !== -1) {
    const found = at === 0 || !isWordChar(folded[at - 1]) ? longestAt(folded, at, names) : null;
    if (found) {
      const end = at + 1 + found.name.length;
      if (at > from) parts.push(text.slice(from, at));
      parts.push(h('span', { class: `mention${found.me ? ' me' : ''}` }, text.slice(at, end)));
      from = end;
      at = folded.indexOf('@', end);
    } else {
      at = folded.indexOf('@', at + 1);
    }
  }
  if (from < text.length) parts.push(text.slice(from));
  return parts;
}

function mentionedNames(mentions, me) {
  if (!mentions || typeof mentions !== 'object') return [];
  const names = [];
  for (const user of Array.isArray(mentions.users) ? mentions.users : []) {
    if (user && typeof user.name === 'string' && user.name.trim()) {
      names.push({ name: user.name.trim().toLowerCase(), me: user.id === me.user_id });
    }
  }
  for (const org of Array.isArray(mentions.orgs) ? mentions.orgs : []) {
    if (org && typeof org.name === 'string' && org.name.trim()) {
      names.push({ name: org.name.trim().toLowerCase(), me: org.id === me.organization_id });
    }
  }
  return names;
}

function longestAt(folded, at, names) {
  let best = null;
  for (const candidate of names) {
    const { name } = candidate;
    if (!folded.startsWith(name, at + 1)) continue;
    const end = at + 1 + name.length;
    if (end < folded.length && isWordChar(folded[end]) && isWordChar(name[name.length - 1])) continue;
    if (!best || name.length > best.name.length || (name.length === best.name.length && candidate.me)) best = candidate;
  }
  return best;
}

function isWordChar(char) {
  return /[\p{L}\p{N}_]/u.test(char);
}
