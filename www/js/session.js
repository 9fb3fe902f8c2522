// The login, the browser's way (docs/auth.md, "Browsers: the refresh cookie"): the access
// token lives in this module's memory only; the refresh token is an HttpOnly cookie that
// JavaScript never sees, sent by the browser to /api/auth/ alone. The access token is
// renewed before it expires, and once more on a 401; when that fails the login has ended.

// "a refresh cookie may be there": lets a reload ask for a new access token without a
// failed request on every first visit. Not a secret: the cookie itself is unreadable here.
const HINT = 'ospab.session';
const ROLE_ADMIN = 'admin';

let access = null;
let user = null;
let expiresAt = 0;
let timer = null;
let refreshing = null;
let leaving = false;
const listeners = new Set();

export const token = () => access;
export const currentUser = () => user;
export const isAdmin = () => user?.role === ROLE_ADMIN;
// seconds the access token has left
export const tokenLeft = () => Math.max(0, (expiresAt - Date.now()) / 1000);

// f({user, reason}): reason is 'login', 'restore', 'refresh', 'logout', 'ended'
export function onSession(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

function emit(reason) {
  listeners.forEach((f) => f({ user, reason }));
}

function hint(on) {
  try {
    if (on) localStorage.setItem(HINT, '1');
    else localStorage.removeItem(HINT);
  } catch {
    // storage disabled: a reload then shows the login page
  }
}

function hasHint() {
  try {
    return localStorage.getItem(HINT) === '1';
  } catch {
    return false;
  }
}

function accept(body) {
  access = body.accessToken;
  user = body.user;
  const ttl = Number(body.expiresIn) || 900;
  expiresAt = Date.now() + ttl * 1000;
  hint(true);
  schedule(ttl);
}

// Renew when four fifths of the lifetime have passed (at most two minutes early).
function schedule(ttl) {
  clearTimeout(timer);
  const lead = Math.min(120, ttl / 5);
  timer = setTimeout(() => { refresh(); }, Math.max(5, ttl - lead) * 1000);
}

function clear() {
  clearTimeout(timer);
  timer = null;
  access = null;
  user = null;
  expiresAt = 0;
  hint(false);
}

async function post(path, body) {
  const init = { method: 'POST', credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  let data = null;
  try {
    data = await r.json();
  } catch {
    // not JSON (a proxy's page)
  }
  return { status: r.status, data, headers: r.headers };
}

// {status, data, headers} of the login; on 200 the session has started.
export async function login(email, password) {
  const r = await post('/api/auth/login', { email, password, session: 'cookie' });
  if (r.status === 200 && r.data?.accessToken) {
    accept(r.data);
    emit('login');
  }
  return r;
}

// Tabs of one browser share the cookie: one refresh at a time, or two tabs would present
// the same cookie and the panel would take the second for a stolen copy.
function exclusive(fn) {
  if (navigator.locks?.request) return navigator.locks.request('ospab-refresh', fn);
  return fn();
}

// true: a fresh access token; false: the login has ended (or the panel cannot be reached,
// then it is tried again shortly).
export function refresh() {
  // a logout under way: its answer takes the cookie away, nothing is renewed meanwhile
  if (leaving) return Promise.resolve(false);
  if (!refreshing) {
    const wasIn = !!user;
    refreshing = exclusive(async () => {
      let r;
      try {
        r = await post('/api/auth/refresh');          // no body: the cookie
      } catch {
        r = { status: 0 };
      }
      if (r.status === 200 && r.data?.accessToken) {
        accept(r.data);
        emit(wasIn ? 'refresh' : 'restore');
        return true;
      }
      if (r.status === 0 || r.status >= 500) {
        if (wasIn) {                                  // unreachable: try again soon
          clearTimeout(timer);
          timer = setTimeout(() => { refresh(); }, 10000);
          return false;
        }
      }
      clear();
      emit(wasIn ? 'ended' : 'logout');
      return false;
    }).finally(() => { refreshing = null; });
  }
  return refreshing;
}

// At start-up: a new access token from the cookie, if there may be one.
export async function restore() {
  if (hasHint()) return refresh();          // emits 'restore', or 'logout' when it failed
  clear();
  emit('logout');
  return false;
}

export async function logout() {
  leaving = true;
  clearTimeout(timer);
  try {
    await post('/api/auth/logout');
  } catch {
    // the cookie goes with the next login anyway
  } finally {
    leaving = false;
  }
  clear();
  emit('logout');
}
