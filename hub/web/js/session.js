// The access token: taken from the URL fragment (which browsers never send to a server), kept in
// this tab's sessionStorage, removed from the address bar at once, and asked for again (paste)
// when it has expired. The identity provider hands tokens over the same way in production.

const KEY = 'hub.token';

export function takeTokenFromUrl() {
  const match = location.hash.match(/(?:^#|[#&])token=([^&]+)/);
  if (!match) return false;
  setToken(decodeURIComponent(match[1]));
  history.replaceState(null, '', `${location.pathname}${location.search}#/`);
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
