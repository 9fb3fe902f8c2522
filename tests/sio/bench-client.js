// Many socket.io-client connections in one process for bench/fanout.
//   node bench-client.js URL TOKEN COUNT SERVERS OFFSET TRANSPORT
// Client i subscribes to server ((OFFSET + i) % SERVERS) + 1; prints "ready" when every
// client has its ack. Records, for every 'server-stats', receipt time minus the event's
// sentAt (ms). "report" prints {"received":N,"lat":[...]}; stdin closing exits.
const readline = require('readline');
const { io } = require('socket.io-client');

const [url, token, countS, serversS, offsetS, transport] = process.argv.slice(2);
const count = Number(countS), servers = Number(serversS), offset = Number(offsetS);
const lat = [];
const sockets = [];
let acked = 0, errors = 0;
const now = () => performance.timeOrigin + performance.now();

function open(i) {
  const opts = { auth: { token }, reconnection: false, forceNew: true, timeout: 60000 };
  if (transport === 'websocket') opts.transports = ['websocket'];
  const s = io(url, opts);
  sockets.push(s);
  s.on('connect_error', (e) => { if (++errors <= 3) process.stderr.write(`connect_error ${e.message}\n`); });
  s.on('connect', () => {
    s.emit('subscribe-server', ((offset + i) % servers) + 1, () => {
      if (++acked === count) process.stdout.write('ready\n');
    });
  });
  s.on('server-stats', (d) => { lat.push(now() - d.sentAt); });
}

// connect in steps: thousands of handshakes at once only measure the accept queue
let next = 0;
(function step() {
  for (let k = 0; k < 100 && next < count; ++k) open(next++);
  if (next < count) setTimeout(step, 20);
})();

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'report') process.stdout.write(JSON.stringify({ received: lat.length, acked, errors, lat }) + '\n');
  if (line === 'clear') lat.length = 0;
}).on('close', () => { sockets.forEach((s) => s.close()); process.exit(0); });
