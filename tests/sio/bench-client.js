// Many socket.io-client connections in one process for bench/fanout.
//   node bench-client.js URL TOKEN COUNT SERVERS OFFSET TRANSPORT [BASE]
// Client i subscribes to server ((OFFSET + i) % SERVERS) + 1; prints "ready" when every
// client has its ack. For every 'server-stats' it records, under the key
// "serverId:sentAt", receipt time minus the event's sentAt.
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
// End of input closes every socket and exits.
const readline = require('readline');
const { io } = require('socket.io-client');

const [url, token, countS, serversS, offsetS, transport, baseS] = process.argv.slice(2);
const count = Number(countS), servers = Number(serversS), offset = Number(offsetS);
const base = Number(baseS || 0);
const events = new Map();        // "serverId:sentAt" -> { sent, lat: [] }
const sockets = [];
let acked = 0, nacked = 0, errors = 0, disconnects = 0, received = 0, quitting = false;

function open(i) {
  const opts = { auth: { token }, reconnection: false, forceNew: true, timeout: 60000 };
  if (transport === 'websocket') opts.transports = ['websocket'];
  const s = io(url, opts);
  sockets.push(s);
  s.on('connect_error', (e) => { if (++errors <= 3) process.stderr.write(`connect_error ${e.message}\n`); });
  s.on('disconnect', (why) => {
    if (!quitting && ++disconnects <= 3) process.stderr.write(`disconnect ${why}\n`);
  });
  s.on('connect', () => {
    s.emit('subscribe-server', ((offset + i) % servers) + 1, (ack) => {
      if (!ack || ack.ok === false) {
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
  });
}

// connect in steps: thousands of handshakes at once only measure the accept queue
let next = 0;
(function step() {
  for (let k = 0; k < 100 && next < count; ++k) open(next++);
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
  } else if (cmd === 'clock') {
    process.stdout.write(`clock ${Date.now()}\n`);
  }
}).on('close', () => { quitting = true; sockets.forEach((s) => s.close()); process.exit(0); });
