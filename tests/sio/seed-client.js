// The seed's own client code (seeds/003, "Example Usage") with the one thing ospab adds:
// the access token in the Socket.IO auth payload. Default options: polling first, then
// the upgrade to websocket.
//   node seed-client.js URL TOKEN SERVER_ID
// Prints one JSON line per thing that happens; ends when stdin closes.
const { io } = require('socket.io-client');

const [url, token, serverId] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// Subscribe to real-time updates
const socket = io(url, { auth: { token } });
socket.emit('subscribe-server', Number(serverId));
socket.on('server-stats', (data) => {
  out({ ev: 'server-stats', data, transport: socket.io.engine.transport.name });
});

socket.on('connect', () => out({ ev: 'connect', transport: socket.io.engine.transport.name }));
socket.on('connect_error', (err) => out({ ev: 'connect_error', message: err.message }));
socket.on('disconnect', (reason) => out({ ev: 'disconnect', reason }));
socket.io.on('open', () => {
  socket.io.engine.on('upgrade', (t) => out({ ev: 'upgrade', transport: t.name }));
});
process.stdin.on('end', () => { socket.close(); process.exit(0); });
process.stdin.resume();
