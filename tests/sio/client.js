// A scripted Socket.IO client for tests/integration/test_sio.py.
//   node client.js URL TOKEN|- [polling|websocket|default]
// Commands on stdin, one a line: "sub ID", "unsub ID", "emit NAME JSON" (with an ack),
// "quit". Prints one JSON line per thing that happens:
//   {"ev":"connect","transport":...}  {"ev":"connect_error","message":...}
//   {"ev":"ack","cmd":...,"res":...}  {"ev":"event","name":...,"data":...}
//   {"ev":"upgrade","transport":...}  {"ev":"disconnect","reason":...}
const readline = require('readline');
const { io } = require('socket.io-client');

const [url, token, mode] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const opts = { reconnection: false, timeout: 10000 };
if (token !== '-') opts.auth = { token };
if (mode === 'polling') opts.transports = ['polling'];
if (mode === 'websocket') opts.transports = ['websocket'];

const socket = io(url, opts);
socket.on('connect', () => out({ ev: 'connect', transport: socket.io.engine.transport.name }));
socket.on('connect_error', (err) => out({ ev: 'connect_error', message: err.message }));
socket.on('disconnect', (reason) => out({ ev: 'disconnect', reason }));
socket.onAny((name, data) => out({ ev: 'event', name, data }));
socket.io.on('open', () => {
  socket.io.engine.on('upgrade', (t) => out({ ev: 'upgrade', transport: t.name }));
});

const call = (line, name, arg) => {
  socket.timeout(10000).emit(name, arg, (err, res) => {
    out({ ev: 'ack', cmd: line, res: err ? { timeout: true } : res });
  });
};

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, ...rest] = line.trim().split(' ');
  if (cmd === 'sub') call(line, 'subscribe-server', JSON.parse(rest[0]));
  else if (cmd === 'unsub') call(line, 'unsubscribe-server', JSON.parse(rest[0]));
  else if (cmd === 'emit') call(line, rest[0], JSON.parse(rest.slice(1).join(' ') || 'null'));
  else if (cmd === 'quit') { socket.close(); process.exit(0); }
});
process.stdin.on('end', () => { socket.close(); process.exit(0); });
