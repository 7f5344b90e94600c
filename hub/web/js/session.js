// The access token: taken from the URL fragment (which browsers never send to a server), kept in
// this tab's sessionStorage, removed from the address bar at once, and asked for again (paste)
// when it has expired. The identity provider hands tokens over the same way in production.

const KEY = 'hub.token';

// `#token=T`, or a screen and a token: `#/t/<thread>&token=T`. The screen stays in the address
// bar, the token goes.
export function takeTokenFromUrl() {
  const pattern = /(^#|[#&])token=([^&#]*)/;
  const match = location.hash.match(pattern);
  if (!match) return false;
  setToken(decodeURIComponent(match[2]));
  const rest = location.hash.replace(pattern, '').replace(/^#?/, '#');
  const route = rest.startsWith('#/') ? rest : '#/';
  history.replaceState(null, '', `${location.pathname}${location.search}${route}`);
  return true;
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  sessionStorage.setItem(KEY, value.trim());
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
}

// The token's claims, read without verifying (the hub verifies; this is for display and for
// knowing when to ask for a new one).
export function claims(value = token()) {
  if (!value) return null;
  const parts = value.split('.');
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const json = new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

// Milliseconds since the epoch when the token expires, or null when it says nothing.
export function expiresAt(value = token()) {
  const c = claims(value);
  return c && typeof c.exp === 'number' ? c.exp * 1000 : null;
}

export function isUsable(value = token()) {
  if (!value || !claims(value)) return false;
  const exp = expiresAt(value);
  return exp === null || exp > Date.now() + 5000;
}
