// The panel's JSON API (docs/auth.md, docs/proxmox.md) with the session's access token.
import { token, refresh } from './session.js';

export class ApiError extends Error {
  constructor(status, body, headers) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;                       // 0: the panel could not be reached
    this.body = body;
    this.fields = body && typeof body.fields === 'object' ? body.fields : null;
    const ra = headers?.get('Retry-After');
    this.retryAfter = ra && /^\d+$/.test(ra) ? Number(ra) : null;
  }
}

// api('GET', '/api/server') -> {data, headers}; throws ApiError. A 401 renews the access
// token once and repeats the request; if that fails, the session has ended (and the
// page goes back to the login through session.js's listeners).
export async function api(method, path, body, retried = false) {
  const init = { method, credentials: 'same-origin', cache: 'no-store',
                 headers: { Authorization: `Bearer ${token()}` } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch {
    throw new ApiError(0, null, null);
  }
  if (r.status === 401 && !retried && await refresh()) {
    return api(method, path, body, true);
  }
  const text = await r.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!r.ok) throw new ApiError(r.status, data, r.headers);
  return { data, headers: r.headers };
}

export const get = (path) => api('GET', path).then((r) => r.data);
