// The console page (www/console.html, docs/console.md "Page"): a terminal (xterm.js) or a
// VNC screen (noVNC) relayed by the agent at /console/ws. The panel opens this page with a
// one-time token in the fragment: #token=…&kind=terminal|vnc&server=<id>.
import { loadSettings } from './settings.js';
import { initI18n, t } from './i18n.js';

const PING_MS = 30000;
// the agent's close codes (docs/console.md) and what they tell the user
const CLOSE_TEXT = {
  1001: 'consolePage.restarting',
  4401: 'consolePage.refused',
  4403: 'consolePage.forbidden',
  4408: 'consolePage.idle',
  4429: 'consolePage.tooMany',
  4502: 'consolePage.lost',
  4503: 'consolePage.unavailable',
};

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();

// token, kind and server from the fragment, which then leaves the address bar and history
function readFragment() {
  const p = new URLSearchParams(location.hash.replace(/^#/, ''));
  const out = { token: p.get('token') || '', kind: p.get('kind') || '', server: p.get('server') || '' };
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  return out;
}

function setStatus(state, text) {
  const el = $('console-status');
  el.dataset.state = state;
  el.textContent = text;
}

function setTitle(server, name) {
  const label = name || t('consolePage.server', { id: server });
  $('console-title').textContent = t('consolePage.title', { name: label });
  document.title = t('consolePage.title', { name: label });
}

// the end of the session: the reason, and how to get a new one
function showClosed(text) {
  setStatus('closed', t('consolePage.closed', { reason: text }));
  $('console-tools').hidden = true;
  $('console-again').hidden = false;
}

function fillTexts(server) {
  setTitle(server, '');
  $('console-cad').textContent = t('consolePage.ctrlAltDel');
  $('console-paste-label').textContent = t('consolePage.pasteLabel');
  $('console-paste-send').textContent = t('consolePage.pasteSend');
  $('console-again-text').textContent = `${t('consolePage.again')} `;
  const back = $('console-back');
  back.textContent = t('consolePage.back');
  if (/^\d+$/.test(server)) back.href = `./#/servers/${server}`;
}

// termproxy's messages: 0:LEN:DATA (LEN in UTF-8 bytes), 1:COLS:ROWS:, 2
function terminalSession(ws, screen, { Terminal, FitAddon }) {
  const term = new Terminal({
    cursorBlink: true,
    scrollback: 5000,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
    fontSize: 15,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  const send = (msg) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(msg);
  };
  term.onData((data) => send(`0:${encoder.encode(data).length}:${data}`));
  // a byte string (some mouse reports): sent as bytes, not as UTF-8 text
  term.onBinary((data) => {
    const head = encoder.encode(`0:${data.length}:`);
    const msg = new Uint8Array(head.length + data.length);
    msg.set(head);
    for (let i = 0; i < data.length; i += 1) msg[head.length + i] = data.charCodeAt(i) & 0xff;
    send(msg);
  });
  term.onResize(({ cols, rows }) => send(`1:${cols}:${rows}:`));
  term.open(screen);
  const refit = () => {
    try {
      fit.fit();
    } catch {
      // the terminal is gone or not laid out yet: the next resize fits it
    }
  };
  refit();
  send(`1:${term.cols}:${term.rows}:`);
  window.addEventListener('resize', refit);
  const ping = setInterval(() => send('2'), PING_MS);
  term.focus();
  return {
    data(buf) {
      term.write(new Uint8Array(buf));
    },
    end() {
      clearInterval(ping);
      window.removeEventListener('resize', refit);
      term.options.disableStdin = true;
      term.options.cursorBlink = false;
    },
  };
}

function vncSession(ws, screen, { RFB }, connected) {
  const rfb = new RFB(screen, ws);
  rfb.scaleViewport = true;
  rfb.focusOnClick = true;
  rfb.addEventListener('connect', () => {
    $('console-tools').hidden = false;
    connected();
    rfb.focus();
  });
  // the agent offers security type None; anything asking for a password is not it
  rfb.addEventListener('credentialsrequired', () => rfb.disconnect());
  $('console-cad').addEventListener('click', () => rfb.sendCtrlAltDel());
  $('console-paste').addEventListener('submit', (e) => {
    e.preventDefault();
    const box = $('console-paste-text');
    if (box.value) rfb.clipboardPasteFrom(box.value);
    box.value = '';
    rfb.focus();
  });
  return {
    data() {},
    end() {
      $('console-tools').hidden = true;
    },
  };
}

// the vendored libraries, only the one this console needs
async function loadKind(kind) {
  if (kind === 'terminal') {
    const [{ Terminal }, { FitAddon }, { routeInlineStyles }] = await Promise.all([
      import('../vendor/xterm-6.0.0.mjs'),
      import('../vendor/xterm-addon-fit-0.11.0.mjs'),
      import('./cssom-styles.js'),
    ]);
    routeInlineStyles(document);
    return { Terminal, FitAddon };
  }
  const [{ default: RFB }, { initLogging }] = await Promise.all([
    import('../vendor/novnc-1.7.0/core/rfb.js'),
    import('../vendor/novnc-1.7.0/core/util/logging.js'),
  ]);
  // noVNC writes its failures to the browser console; this page says them in its status line
  initLogging('none');
  return { RFB };
}

function connect({ token, kind, server }, libs) {
  const screen = $('console-screen');
  screen.dataset.kind = kind;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  // /console/ws is at the site's root wherever the panel is mounted, like /socket.io/
  const ws = new WebSocket(`${scheme}://${location.host}/console/ws`, 'ospab-console');
  ws.binaryType = 'arraybuffer';
  let session = null;
  let refusal = '';
  const connected = () => setStatus('connected', t('consolePage.connected'));

  const onMessage = (e) => {
    if (session) {
      if (typeof e.data !== 'string') session.data(e.data);
      return;
    }
    let m = null;
    try {
      m = JSON.parse(e.data);
    } catch {
      // not the agent's answer: the close that follows says what happened
    }
    if (m?.status === 'ok' && m.kind === kind) {
      setTitle(server, typeof m.name === 'string' ? m.name : '');
      try {
        if (kind === 'terminal') {
          session = terminalSession(ws, screen, libs);
          connected();
        } else {
          ws.removeEventListener('message', onMessage);
          session = vncSession(ws, screen, libs, connected);
          setStatus('connecting', t('consolePage.vncStarting'));
        }
      } catch {
        refusal = t('consolePage.broken');
        ws.close();
      }
    } else {
      refusal = typeof m?.error === 'string' && m.error ? m.error : t('consolePage.broken');
      ws.close();
    }
  };
  // the server it is for: the agent refuses a token of another one
  ws.addEventListener('open', () => ws.send(JSON.stringify(/^\d+$/.test(server)
    ? { token, server } : { token })));
  ws.addEventListener('message', onMessage);
  ws.addEventListener('close', (e) => {
    if (session) session.end();
    let reason;
    // Proxmox refusing before the console started is not a connection lost
    if (e.code === 4502 && !session) reason = t('consolePage.unreachable');
    else if (CLOSE_TEXT[e.code]) reason = t(CLOSE_TEXT[e.code]);
    else if (refusal) reason = refusal;
    else if (e.code === 1000 || e.code === 1005) reason = t('consolePage.ended');
    else reason = t('consolePage.dropped', { code: e.code });
    showClosed(reason);
  });
}

async function main() {
  const frag = readFragment();
  initI18n(await loadSettings());
  fillTexts(frag.server);
  if (!frag.token || !['terminal', 'vnc'].includes(frag.kind)) {
    showClosed(t('consolePage.noToken'));
    return;
  }
  setStatus('connecting', t('consolePage.connecting'));
  let libs;
  try {
    libs = await loadKind(frag.kind);
  } catch {
    showClosed(t('consolePage.broken'));
    return;
  }
  connect(frag, libs);
}

main().catch(() => showClosed(t('consolePage.broken')));
