// The reference for bench/fanout: a Node socket.io v4 server doing what the agent's
// live-push server does (HS256 token in the auth payload, 'subscribe-server' joins a
// room per server id). Same stdin commands and output as sio-driver: "listening PORT",
// "emitts SERVER EVENT [N [STAMP [PAD]]]", "stats", "sync", "quit". STAMP and a default
// sentAt are wall-clock ms since the epoch (Date.now(), the clock bench-client.js reads).
// One more command makes it the fake server of `bench/fanout --self-test`: "delay MS"
// holds every later emit (and sync) MS milliseconds after its command arrived, so their
// latencies must come out MS higher.
const crypto = require('crypto');
const http = require('http');
const readline = require('readline');
const { Server } = require('socket.io');

const key = process.env.OSPAB_SIO_KEY;
let delay = 0;
const later = (fn) => (delay > 0 ? setTimeout(fn, delay) : fn());
const b64url = (s) => Buffer.from(s, 'base64url');

// HS256 verification with node's crypto (the check the agent does through libjwt)
function verify(token) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) throw new Error('malformed token');
  const header = JSON.parse(b64url(parts[0]));
  if (header.alg !== 'HS256') throw new Error('bad algorithm');
  const mac = crypto.createHmac('sha256', key).update(parts[0] + '.' + parts[1]).digest();
  const sig = b64url(parts[2]);
  if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) throw new Error('bad signature');
  const claims = JSON.parse(b64url(parts[1]));
  if (claims.exp && claims.exp * 1000 < Date.now()) throw new Error('token expired');
  return claims;
}

const httpServer = http.createServer();
const io = new Server(httpServer, { maxHttpBufferSize: 1e6 });
io.use((socket, next) => {
  try {
    socket.data.user = verify(socket.handshake.auth && socket.handshake.auth.token);
    next();
  } catch (e) {
    next(new Error(e.message));
  }
});
io.on('connection', (socket) => {
  socket.on('subscribe-server', (id, ack) => {
    const n = Number(id);
    if (!(n > 0)) { if (typeof ack === 'function') ack({ ok: false, error: 'bad id' }); return; }
    socket.join('s:' + n);
    if (typeof ack === 'function') ack({ ok: true, serverId: n });
  });
  socket.on('unsubscribe-server', (id, ack) => {
    socket.leave('s:' + Number(id));
    if (typeof ack === 'function') ack({ ok: true, serverId: Number(id) });
  });
});

// the backlog the agent's listener has (libwebsockets: SOMAXCONN, 4096); Node's default is 511
httpServer.listen(0, '127.0.0.1', 4096, () => {
  process.stdout.write(`listening ${httpServer.address().port}\n`);
});

const pads = new Map();
function padding(n) {
  if (!pads.has(n)) pads.set(n, 'x'.repeat(n));
  return pads.get(n);
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, a, b, c, d, e] = line.trim().split(' ');
  if (cmd === 'emitts') {
    const id = Number(a);
    // PAD: a string of that many bytes in the event, to match the agent's real messages
    const pad = e ? padding(Number(e)) : undefined;
    later(() => {
      for (let i = 0; i < Number(c || 1); ++i) {
        const sentAt = d ? Number(d) : Date.now();
        io.to('s:' + id).emit(b, pad === undefined ? { serverId: id, sentAt }
                                                   : { serverId: id, sentAt, pad });
      }
    });
  } else if (cmd === 'delay') {
    delay = Number(a) || 0;
  } else if (cmd === 'stats') {
    process.stdout.write(`stats ${JSON.stringify({ sessions: io.engine.clientsCount,
      rss_kb: Math.round(process.memoryUsage().rss / 1024) })}\n`);
  } else if (cmd === 'sync') {
    later(() => process.stdout.write('sync\n'));
  } else if (cmd === 'quit') {
    io.close();
    process.exit(0);
  }
}).on('close', () => process.exit(0));
