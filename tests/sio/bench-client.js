// Many socket.io-client connections in one process for bench/fanout and bench/pushbytes.
//   node bench-client.js URL TOKEN COUNT SERVERS OFFSET TRANSPORT [BASE [FORMS]]
// Client i subscribes to server ((OFFSET + i) % SERVERS) + 1; prints "ready" when every
// client has its ack. For every 'server-stats' it records, under the key
// "serverId:sentAt", receipt time minus the event's sentAt.
// FORMS: "full" (the default): subscribe-server with the id, seed 003's form; "half":
// clients in pairs, client j = OFFSET + i subscribing to server (j >> 1) % SERVERS + 1,
// the even one with the id, the odd one with {"serverId": id, "compact": true}
// (docs/live-push.md), so every server used has as many subscribers of either form.
//
// One clock for stamps and receipts: sentAt is wall-clock time in whole milliseconds since
// the epoch (the agent stamps apr_time_now(), bench/fanout time.time_ns() // 10^6: both
// CLOCK_REALTIME), so the receipt is Date.now(), the same clock read the same way, and a
// sentAt with a fraction is floored first: receipt - sentAt is then never below zero
// unless the clocks differ. (performance.timeOrigin + performance.now() is a monotonic
// clock anchored once per process: it drifts from every other process's wall clock.)
// A sentAt below 10^12 is ms after BASE (ms since the epoch): bench/fanout's own stamps go
// through sio-driver as JSON reals, which agent_sio.c writes with 10 significant digits,
// so a 13-digit epoch stamp would arrive rounded to the second; one after BASE arrives
// whole.
//
// Commands on stdin, one a line:
//   report     prints {"received":N,"acked":N,"nacked":N,"errors":N,"disconnects":N,
//              "events":{"serverId:sentAt":[latency ms, ...], ...}}
//   drop T     forgets the events whose sentAt is below T (ms)
//   clock      prints "clock MS" (Date.now()), for bench/fanout's clock check
//   window T0 T1   from now on, counts per client what bench/pushbytes measures: the
//              WebSocket payload bytes and the number of the frames it receives (one
//              Engine.IO packet each) — a server-stats frame when its sentAt lies in
//              [T0, T1), any other frame (pings, other events) when received in it —
//              and, per server-stats in the window, the points it brought: its rrdData for
//              a compact one, those of a full one whose time the previous full one did
//              not have; and the hour each client holds after its last push before T1
//              (a compact one: its first, full push plus the points appended since).
//              T0 should lie a little ahead, so no push of the window comes before this.
//   bytes      prints {"clients":[{"i","server","compact","statsBytes","stats",
//              "otherBytes","other","wire", "pushes":[[sentAt, compact 0/1, [time...],
//              [digest...]]], "hour":[[time, digest]...]}, ...]} (digest: of the point's
//              JSON, 8 hex digits), for the window set before
//              (only the websocket transport: the frames are the websocket's)
// End of input closes every socket and exits.
const readline = require('readline');
const { io } = require('socket.io-client');

const crypto = require('crypto');

const [url, token, countS, serversS, offsetS, transport, baseS, formsS] = process.argv.slice(2);
const count = Number(countS), servers = Number(serversS), offset = Number(offsetS);
const base = Number(baseS || 0);
const forms = formsS || 'full';
const counted = [];              // per client, what `window` counts
let win = null;                  // [T0, T1) once `window` is given
const events = new Map();        // "serverId:sentAt" -> { sent, lat: [] }
const sockets = [];
let acked = 0, nacked = 0, errors = 0, disconnects = 0, received = 0, quitting = false;

function digest(pt) {
  return crypto.createHash('md5').update(JSON.stringify(pt)).digest('hex').slice(0, 8);
}

// WebSocket frame header, server to client (unmasked): 2 bytes, 4 from 126, 10 from 65536
function frameHeader(len) { return len < 126 ? 2 : len < 65536 ? 4 : 10; }

function open(i) {
  const opts = { auth: { token }, reconnection: false, forceNew: true, timeout: 60000 };
  if (transport === 'websocket') opts.transports = ['websocket'];
  const j = offset + i;
  const half = forms === 'half';
  const server = half ? ((j >> 1) % servers) + 1 : (j % servers) + 1;
  const compact = half && j % 2 === 1;
  const c = { i: j, server, compact, statsBytes: 0, stats: 0, otherBytes: 0, other: 0,
              wire: 0, pushes: [], prev: null, hold: [], hour: [] };
  counted.push(c);
  const s = io(url, opts);
  sockets.push(s);
  if (transport === 'websocket') {
    // the frame as it came; socket.io-client hands the event to its handler a tick later
    // (Manager.ondecoded), so a server-stats frame is told by its own text
    s.io.engine.transport.ws.on('message', (data) => {
      if (!win) return;
      const len = data.length;
      const now = Date.now();
      let st = 0;
      if (data.toString('latin1', 0, 17) === '42["server-stats"') {
        const m = /"sentAt":(\d+)/.exec(data.toString('latin1', Math.max(0, len - 64)))
                  || /"sentAt":(\d+)/.exec(data.toString('latin1'));
        st = m ? Number(m[1]) : -1;
      }
      if (st ? st < win[0] || st >= win[1] : now < win[0] || now >= win[1]) return;
      if (st) { c.statsBytes += len; c.stats++; } else { c.otherBytes += len; c.other++; }
      c.wire += len + frameHeader(len);
    });
  }
  let opened = false;
  const settled = () => { if (!opened) { opened = true; --opening; } };
  s.on('connect_error', (e) => {
    settled();
    // the transport's own error says why (a refused connection, an HTTP status)
    const why = e.description && (e.description.message || e.description.error?.message);
    if (++errors <= 3) process.stderr.write(`connect_error ${e.message}${why ? `: ${why}` : ''}\n`);
  });
  s.on('disconnect', (why) => {
    if (!quitting && ++disconnects <= 3) process.stderr.write(`disconnect ${why}\n`);
  });
  s.on('connect', () => {
    settled();
    s.emit('subscribe-server', compact ? { serverId: server, compact: true } : server, (ack) => {
      if (!ack || ack.ok === false || (compact && ack.compact !== true)) {
        if (++nacked <= 3) process.stderr.write(`subscribe refused ${JSON.stringify(ack)}\n`);
      }
      if (++acked === count) process.stdout.write('ready\n');
    });
  });
  s.on('server-stats', (d) => {
    const now = Date.now();
    let sent = Math.floor(Number(d.sentAt));
    if (sent < 1e12) sent += base;
    const key = `${d.serverId}:${sent}`;
    let e = events.get(key);
    if (!e) events.set(key, (e = { sent, lat: [] }));
    e.lat.push(now - sent);
    received++;
    if (!half) return;           // bench/fanout: its clients' time goes into the latency
    const rrd = (d.stats && d.stats.data && d.stats.data.rrdData) || [];
    let fresh;
    if (compact && d.compact === true) {
      fresh = rrd;
      c.hold = c.hold.concat(rrd);
    } else {
      const had = new Set((c.prev || []).map((p) => p.time));
      fresh = rrd.filter((p) => !had.has(p.time));
      c.prev = rrd;
      c.hold = rrd;
    }
    if (win && sent < win[1]) {
      c.hour = c.hold;
      if (sent >= win[0]) {
        c.pushes.push([sent, d.compact === true ? 1 : 0, fresh.map((p) => p.time),
                       fresh.map(digest)]);
      }
    }
  });
}

// connect in steps: thousands of handshakes at once only measure the accept queue. At
// most 100 every 20 ms, and at most 250 handshakes of this process in flight: with
// 19,000 clients in 8 processes, 100 every 20 ms each overflowed the listener's accept
// queue (somaxconn 4096) and the kernel reset thousands of connections.
const MAX_OPENING = 250;
let next = 0, opening = 0;
(function step() {
  for (let k = 0; k < 100 && next < count && opening < MAX_OPENING; ++k, ++opening) open(next++);
  if (next < count) setTimeout(step, 20);
})();

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.trim().split(' ');
  if (cmd === 'report') {
    const out = {};
    for (const [k, e] of events) out[k] = e.lat;
    process.stdout.write(JSON.stringify({ received, acked, nacked, errors, disconnects,
                                          events: out }) + '\n');
  } else if (cmd === 'drop') {
    const t = Number(arg);
    for (const [k, e] of events) if (e.sent < t) { received -= e.lat.length; events.delete(k); }
  } else if (cmd === 'window') {
    const [, t0, t1] = line.trim().split(' ');
    win = [Number(t0), Number(t1)];
  } else if (cmd === 'bytes') {
    const out = counted.map((c) => ({
      i: c.i, server: c.server, compact: c.compact, statsBytes: c.statsBytes,
      stats: c.stats, otherBytes: c.otherBytes, other: c.other, wire: c.wire,
      pushes: c.pushes, hour: c.hour.map((p) => [p.time, digest(p)]) }));
    process.stdout.write(JSON.stringify({ clients: out }) + '\n');
  } else if (cmd === 'clock') {
    process.stdout.write(`clock ${Date.now()}\n`);
  }
}).on('close', () => { quitting = true; sockets.forEach((s) => s.close()); process.exit(0); });
