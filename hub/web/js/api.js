// The REST API: every call carries the bearer token in its header (never in the URL), and every
// refusal becomes an ApiError with the hub's code and message.

import { token } from './session.js';

let base = '/api/vendor-connections';
let onUnauthorized = () => {};

export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function configure(apiBase, unauthorized) {
  base = apiBase;
  onUnauthorized = unauthorized;
}

export async function api(method, path, body, query) {
  const current = token();
  if (!current) throw new ApiError(401, 'unauthorized', 'Sign in first');
  let url = base + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const init = { method, headers: { Authorization: `Bearer ${current}` }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, 'network', 'The hub cannot be reached: check the connection');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401) onUnauthorized();
    const detail = (error.details || []).map((d) => d.message && `${d.field}: ${d.message}`);
    const message = error.message || response.statusText || `HTTP ${response.status}`;
    throw new ApiError(
      response.status,
      error.code || 'error',
      detail.filter(Boolean).length ? `${message} (${detail.filter(Boolean).join('; ')})` : message,
      error.details || [],
    );
  }
  return data;
}
