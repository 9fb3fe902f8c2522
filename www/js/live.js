// Live push (docs/live-push.md): one Socket.IO connection through Apache's /socket.io/,
// authenticated with the access token in the CONNECT packet. Views watch servers by id and
// get their events; the subscriptions are renewed after every reconnect.
import { io } from '../vendor/socket.io-client-4.8.4.esm.min.js';
import { token, refresh } from './session.js';

const EVENTS = ['server-stats', 'server-alerts', 'server-status', 'task-finished',
                'server-deleted', 'subscribe-error'];

let socket = null;
let connectedOnce = false;
let refusals = 0;
let retryTimer = null;
let state = 'offline';
const rooms = new Map();            // server id -> Set of handlers (event, data)
const stateListeners = new Set();

function setState(s) {
  state = s;
  stateListeners.forEach((f) => f(s));
}

export const liveState = () => state;
export function onLiveState(f) {
  stateListeners.add(f);
  return () => stateListeners.delete(f);
}

function dispatch(event, data) {
  const id = Number(data?.serverId);
  rooms.get(id)?.forEach((h) => h(event, data));
}

export function startLive() {
  if (socket) return;
  setState('connecting');
  // the token is asked for at every (re)connect, so a renewed one is used
  socket = io({ path: '/socket.io/', auth: (cb) => cb({ token: token() }),
                reconnectionDelayMax: 10000 });
  socket.on('connect', () => {
    refusals = 0;
    setState('live');
    for (const id of rooms.keys()) socket.emit('subscribe-server', id);
    // events of the time without a connection are lost: views read the state again
    if (connectedOnce) rooms.forEach((hs, id) => hs.forEach((h) => h('resync', { serverId: id })));
    connectedOnce = true;
  });
  socket.on('disconnect', async (reason) => {
    setState('connecting');
    // the agent ends a connection when its token expires or the login ended (the token
    // itself may still look valid): it is not retried by the client, so renew the token
    // (a login that ended goes to the login page) and connect again
    if (reason === 'io server disconnect' && socket) {
      if (await refresh() && socket) socket.connect();
    }
  });
  socket.on('connect_error', async () => {
    if (!socket || socket.active) return;           // a transport problem: the client retries
    // refused by the agent (a token expired or revoked): renew it and try again; give it a
    // rest after three refusals in a row
    refusals += 1;
    setState('offline');
    if (refusals > 3) {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => { refusals = 0; socket?.connect(); }, 30000);
      return;
    }
    if (await refresh() && socket) socket.connect();
  });
  for (const ev of EVENTS) socket.on(ev, (data) => dispatch(ev, data));
}

export function stopLive() {
  clearTimeout(retryTimer);
  if (socket) {
    const s = socket;
    socket = null;
    s.disconnect();
  }
  connectedOnce = false;
  setState('offline');
}

// watch(id, handler) -> unwatch. handler(event, data) for the server's events, and
// ('resync', {serverId}) after a reconnect.
export function watch(id, handler) {
  id = Number(id);
  let set = rooms.get(id);
  if (!set) {
    set = new Set();
    rooms.set(id, set);
    if (socket?.connected) socket.emit('subscribe-server', id);
  }
  set.add(handler);
  return () => {
    set.delete(handler);
    if (!set.size && rooms.get(id) === set) {
      rooms.delete(id);
      if (socket?.connected) socket.emit('unsubscribe-server', id);
    }
  };
}
