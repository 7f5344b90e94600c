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
  const url = withQuery(base + path, query);
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
  return answer(response.status, response.statusText, await response.text());
}

// The hub's answer as data, or its refusal as an ApiError (a 401 signs the page out first).
function answer(status, statusText, text) {
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (status >= 200 && status < 300) return data;
  const error = (data && data.error) || {};
  if (status === 401) onUnauthorized();
  const message = error.message || statusText || `HTTP ${status}`;
  // The details, unless the message already says them (a refusal of one field often does).
  const detail = (error.details || [])
    .map((d) => d.message && `${d.field}: ${d.message}`)
    .filter((text) => text && !message.includes(text));
  throw new ApiError(
    status,
    error.code || 'error',
    detail.length ? `${message} (${detail.join('; ')})` : message,
    error.details || [],
  );
}

// A file sent as the raw body of a POST, through XMLHttpRequest because fetch reports no upload
// progress: `onProgress(sent, total)` as it goes. Returns { done, abort }: `done` resolves with
// the hub's answer or rejects with an ApiError (code 'aborted' after `abort()`).
export function upload(path, file, query, onProgress = () => {}) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    const current = token();
    if (!current) {
      reject(new ApiError(401, 'unauthorized', 'Sign in first'));
      return;
    }
    xhr.open('POST', withQuery(base + path, query));
    xhr.setRequestHeader('Authorization', `Bearer ${current}`);
    // What the browser says the file is (from its name); the hub checks it against the bytes.
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    xhr.onload = () => {
      try {
        resolve(answer(xhr.status, xhr.statusText, xhr.responseText));
      } catch (error) {
        reject(error);
      }
    };
    // The hub closes the connection on a body past its size limit, and a browser still sending
    // then may see only the broken connection, not the 413 that came before it.
    xhr.onerror = () => reject(new ApiError(0, 'network', 'The upload broke off: the file may be larger than the hub accepts, or the hub cannot be reached'));
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'The upload was cancelled'));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

// A file's contents (a download, a thumbnail) as a Blob, fetched with the token: an <img src> or
// <a href> to the hub cannot carry the Authorization header.
export async function blob(path) {
  const current = token();
  if (!current) throw new ApiError(401, 'unauthorized', 'Sign in first');
  let response;
  try {
    response = await fetch(base + path, { headers: { Authorization: `Bearer ${current}` } });
  } catch {
    throw new ApiError(0, 'network', 'The hub cannot be reached: check the connection');
  }
  if (!response.ok) answer(response.status, response.statusText, await response.text());
  return response.blob();
}

// A large download (an export) read as it arrives: `onProgress(received)` after each piece, and
// the name the hub gave it (Content-Disposition). Resolves with { data: Blob, filename }.
export async function download(path, onProgress = () => {}) {
  const current = token();
  if (!current) throw new ApiError(401, 'unauthorized', 'Sign in first');
  let response;
  try {
    response = await fetch(base + path, { headers: { Authorization: `Bearer ${current}` } });
  } catch {
    throw new ApiError(0, 'network', 'The hub cannot be reached: check the connection');
  }
  if (!response.ok) answer(response.status, response.statusText, await response.text());
  const named = /filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') || '');
  const pieces = [];
  let received = 0;
  try {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      pieces.push(value);
      received += value.length;
      onProgress(received);
    }
  } catch {
    throw new ApiError(0, 'network', 'The download broke off before the end: try again');
  }
  const type = response.headers.get('Content-Type') || 'application/octet-stream';
  return { data: new Blob(pieces, { type }), filename: named ? named[1] : 'download' };
}

function withQuery(url, query) {
  if (!query) return url;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${url}?${text}` : url;
}
