// Building the page: every piece of text goes in as a text node, never as HTML, so a message
// body or a name like `<img src=x onerror=alert(1)>` shows exactly those characters.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' || key === 'checked' || key === 'selected') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, ...children);
}

// A <select> with its label; `options` is a list of [value, text].
export function select(label, options, value, attrs = {}) {
  const control = h('select', attrs);
  for (const [optionValue, text] of options) {
    control.append(h('option', { value: optionValue, selected: optionValue === value }, text));
  }
  return field(label, control);
}

// A control under its visible label, tied by `for` (a label around a <select> would name it
// with its options' text too).
export function field(label, control) {
  if (!control.id) control.id = `f-${randomId()}`;
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
}

export function errorText(error) {
  if (!error) return 'Something went wrong';
  if (error.message) return error.message;
  return String(error);
}

// Random ids that work without a secure context (crypto.randomUUID needs one; a phone on the
// venue's network may reach the hub over plain http).
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const DAY_MS = 86400000;

// Whole days from today (local) to an ISO date `YYYY-MM-DD`.
export function daysUntil(isoDate, now = new Date()) {
  const [y, m, d] = isoDate.split('-').map(Number);
  const target = Date.UTC(y, m - 1, d);
  const today = Date.UTC(now.getFullYear(), now.getMonth(), now.getDate());
  return Math.round((target - today) / DAY_MS);
}

export function countdown(isoDate, now = new Date()) {
  const days = daysUntil(isoDate, now);
  if (days === 0) return 'today';
  if (days === 1) return 'tomorrow';
  if (days === -1) return 'yesterday';
  if (days > 0) return `in ${days} days`;
  return `${-days} days ago`;
}

export function formatDate(isoDate) {
  const [y, m, d] = isoDate.split('-').map(Number);
  return new Date(y, m - 1, d).toLocaleDateString(undefined, {
    weekday: 'short', day: 'numeric', month: 'short', year: 'numeric',
  });
}

export function formatTime(iso) {
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (sameDay) return time;
  return `${date.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })} ${time}`;
}

export function listNames(names) {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

// The IANA time zone names the browser knows, for a <datalist> (the hub checks the name).
export function supportedZones() {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch {
    return ['UTC'];
  }
}
