// One server: live figures and graphs, alerts, power, snapshots, resize, root password,
// console, reinstall, delete. Operations run one at a time (the API's rule): while one
// runs, its task's progress is shown and the buttons wait.
import { html, useState, useEffect, useRef, useCallback } from '../lib.js';
import { t, has } from '../i18n.js';
import { api, get } from '../api.js';
import { watch } from '../live.js';
import { navigate } from '../router.js';
import { safeUrl } from '../settings.js';
import { bytes, percent, dateTime, uptime, money, megabytes, gigabytes } from '../format.js';
import { StatusBadge, Notice, Dialog, Secret, errorText, useFocusHeading } from '../ui.js';
import { Graphs, livePoint } from './graphs.js';
import { Snapshots } from './snapshots.js';
import { Resize } from './resize.js';
import { ReinstallDialog } from './reinstall.js';
import { flashToList } from './servers.js';

const POLL = 1500;                    // task follow-up while one runs
const LIVE_KEEP = 720;                // live samples kept for the graphs (an hour at 5 s)
const POWER = ['start', 'stop', 'restart', 'reboot'];
const SETTLED = new Set(['running', 'stopped', 'suspended', 'error', 'missing']);

const actionName = (a) => {
  const base = String(a || '').split(':')[0];
  return has(`action.${base}`) ? t(`action.${base}`) : base;
};

export function Server({ id, user }) {
  const [server, setServer] = useState(null);
  const [vps, setVps] = useState(null);
  const [missing, setMissing] = useState(false);
  const [error, setError] = useState(null);
  const [op, setOp] = useState(null);            // {action, upid, status}
  const [outcome, setOutcome] = useState(null);  // {kind, text}
  const [alerts, setAlerts] = useState([]);
  const [current, setCurrent] = useState(null);  // stats.data of the last status/live sample
  const [livePoints, setLivePoints] = useState([]);
  const [tasks, setTasks] = useState([]);
  const [version, setVersion] = useState(0);     // bumped when an operation finished
  const [dialog, setDialog] = useState(null);
  const [consoleUrl, setConsoleUrl] = useState(null);
  const heading = useFocusHeading([!!server, missing]);
  const opRef = useRef(op);
  opRef.current = op;
  const nameRef = useRef(null);
  nameRef.current = server?.name || `#${id}`;
  const prevLive = useRef(null);

  const loadServer = useCallback(async () => {
    try {
      const [s, v] = await Promise.all([get(`/api/server/${id}`), get(`/api/vps/${id}`)]);
      setServer(s);
      setVps(v);
    } catch (e) {
      // gone while it was being deleted: that is the delete's success
      if (e.status === 404 && opRef.current?.action === 'delete') finishRef.current('delete', true);
      else if (e.status === 404) setMissing(true);
      else setError(e);
    }
  }, [id]);

  const loadTasks = useCallback(async () => {
    try {
      const list = await get(`/api/server/${id}/tasks`);
      setTasks(Array.isArray(list) ? list : []);
      return Array.isArray(list) ? list : [];
    } catch (e) {
      // gone while it was being deleted: that is the delete's success
      if (e.status === 404 && opRef.current?.action === 'delete') finishRef.current('delete', true);
      else if (e.status === 404) setMissing(true);
      return null;
    }
  }, [id]);

  // the page opens on an operation that is still running: wait for it like for our own
  useEffect(() => {
    loadServer();
    loadTasks().then((list) => {
      const running = (list || []).find((x) => x.status === 'queued' || x.status === 'running');
      if (running && !opRef.current) {
        setOp({ action: running.action, upid: running.upid, status: running.status });
      }
    });
  }, [id]);

  const finish = (action, ok, err) => {
    setOp(null);
    const base = String(action || '').split(':')[0];
    if (base === 'delete' && ok) {
      flashToList(t('server.deleted', { name: nameRef.current }));
      navigate('/servers');
      return;
    }
    setOutcome(ok ? { kind: 'ok', text: t(`done.${base}`) }
                  : { kind: 'error', text: t('done.failed', { action: actionName(base),
                                                              error: err || t('error.server') }) });
    setVersion((v) => v + 1);
    loadServer();
    loadTasks();
  };
  const finishRef = useRef(finish);
  finishRef.current = finish;

  // follow the running task: its row in /tasks (the module follows it up), or its
  // task-finished event, whichever comes first
  useEffect(() => {
    if (!op || !op.upid) return undefined;
    let gone = false;
    const tick = async () => {
      const list = await loadTasks();
      if (gone || !list) return;
      const row = list.find((x) => x.upid === op.upid);
      if (!row && op.action === 'delete') {
        finishRef.current('delete', true);     // the record and its tasks have gone
      } else if (row && (row.status === 'ok' || row.status === 'error')) {
        finishRef.current(op.action, row.status === 'ok', row.error || row.exitstatus);
      } else if (row && row.status !== op.status) {
        setOp((o) => (o && o.upid === row.upid ? { ...o, status: row.status } : o));
      }
    };
    const timer = setInterval(tick, POLL);
    return () => { gone = true; clearInterval(timer); };
  }, [op?.upid]);

  // live push
  useEffect(() => watch(id, (event, d) => {
    if (event === 'server-status') {
      setServer((s) => (s ? { ...s, status: d.status } : s));
      if (SETTLED.has(d.status)) loadServer();
    } else if (event === 'server-stats') {
      const data = d.stats?.data;
      if (!data) return;
      setCurrent(data);
      const seconds = (Number(d.sentAt) || Date.now()) / 1000;
      const p = livePoint(data, seconds, prevLive.current);
      prevLive.current = { time: seconds, network: data.network };
      setLivePoints((cur) => cur.concat([p]).slice(-LIVE_KEEP));
    } else if (event === 'server-alerts') {
      setAlerts(Array.isArray(d.alerts) ? d.alerts : []);
    } else if (event === 'task-finished') {
      const o = opRef.current;
      if (o && d.upid && d.upid === o.upid) finishRef.current(o.action, d.status === 'ok', d.error);
      else loadTasks();
    } else if (event === 'server-deleted') {
      flashToList(t('server.deleted', { name: nameRef.current }));
      navigate('/servers');
    } else if (event === 'resync') {
      loadServer();
      loadTasks();
    }
  }), [id]);

  // Starts an operation: call() answers {taskId} (or throws the API's refusal).
  // ownErrors: the caller shows a refusal itself (next to its inputs)
  const start = async (action, call, ownErrors = false) => {
    setOutcome(null);
    setConsoleUrl(null);
    setOp({ action, upid: null, status: 'queued' });
    try {
      const r = await call();
      const upid = r?.taskId || r?.data?.taskId || null;
      if (upid) {
        setOp({ action, upid, status: 'queued' });
      } else {
        finish(action, true);
      }
      return r;
    } catch (e) {
      setOp(null);
      if (!ownErrors) {
        setOutcome({ kind: 'error', text: t('done.failed', { action: actionName(action),
                                                            error: errorText(e) }) });
      }
      throw e;
    }
  };

  const power = (action) => start(action, () => api('POST', action === 'reboot'
    ? `/api/vps/${id}/reboot` : `/api/server/${id}/${action}`).then((r) => r.data))
    .catch(() => {});

  const openConsole = async () => {
    setOutcome(null);
    try {
      const r = await api('POST', '/api/server/console', { serverId: id });
      const url = safeUrl(r.data?.url || '');
      if (!url) {
        setOutcome({ kind: 'error', text: t('console.failed', { error: t('error.server') }) });
        return;
      }
      // the page on the panel's own origin (console.html), its one-time token in the
      // fragment; the link stays as the fallback for a blocked pop-up
      setConsoleUrl(url);
      window.open(url, '_blank', 'noopener,noreferrer');
    } catch (e) {
      setOutcome({ kind: 'error', text: t('console.failed', { error: errorText(e) }) });
    }
  };

  if (missing) {
    return html`<section class="page">
      <h1 ref=${heading} tabindex="-1" data-testid="not-found">${t('server.notFound')}</h1>
      <p>${t('server.notFoundText')}</p>
      <p><a href="#/servers">${t('notFound.back')}</a></p>
    </section>`;
  }
  if (!server) {
    return html`<section class="page">
      ${error ? html`<${Notice} kind="error">${errorText(error)}</${Notice}>`
              : html`<p class="muted" aria-busy="true">${t('common.loading')}</p>`}
    </section>`;
  }

  const status = server.status;
  const busy = !!op;
  const running = status === 'running';
  // suspended (docs/operations.md): seen, not managed — the API answers 403 to all of it
  const suspended = status === 'suspended';
  const unsettled = status === 'creating' || status === 'deleting' || suspended;
  const canPower = {
    start: !busy && !unsettled && status !== 'running',
    stop: !busy && running, restart: !busy && running, reboot: !busy && running,
  };
  const data = current;

  return html`<section class="page server-page" data-server=${id}>
    <p class="crumbs"><a href="#/servers">${user.role === 'admin' ? t('nav.allServers')
                                                                   : t('nav.myServers')}</a></p>
    <div class="page-head">
      <h1 ref=${heading} tabindex="-1">${server.name || `#${id}`}</h1>
      <${StatusBadge} status=${status} />
    </div>
    ${suspended && html`<${Notice} kind="warning"><span data-testid="suspended">
      ${t('server.suspended')}</span></${Notice}>`}
    <dl class="facts">
      <div><dt>${t('servers.ip')}</dt><dd class="mono" data-testid="ip">${server.ipAddress || t('common.none')}</dd></div>
      <div><dt>${t('servers.os')}</dt><dd>${server.os?.name || t('common.none')}</dd></div>
      <div><dt>${t('servers.tariff')}</dt><dd>${server.tariff?.name || t('common.none')}${
        server.tariff?.price != null ? html` <span class="muted">${t('tariff.perMonth',
          { price: money(server.tariff.price) })}</span>` : ''}</dd></div>
      ${vps && html`<div><dt>${t('server.size')}</dt><dd>${t('tariff.sizes', { cores: vps.cpu,
        memory: megabytes(vps.ram), disk: gigabytes(vps.disk) })}</dd></div>`}
      ${user.role === 'admin' && html`<div><dt>${t('servers.owner')}</dt><dd>${t('servers.user',
        { id: server.userId })}</dd></div>`}
      <div><dt>${t('servers.created')}</dt><dd>${dateTime(server.createdAt)}</dd></div>
    </dl>

    <div class="alerts" data-testid="alerts">
      ${alerts.map((a) => html`<${Notice} kind=${a.level === 'critical' ? 'error' : 'warning'}
          key=${a.id || a.type}>
        <strong>${t(a.level === 'critical' ? 'alert.critical' : 'alert.warning')}</strong>
        ${' '}<span data-alert=${a.type}>${alertText(a)}</span>
      </${Notice}>`)}
    </div>

    <section class="panel" aria-labelledby="power-h">
      <div class="panel-head"><h2 id="power-h">${t('power.title')}</h2></div>
      <div class="power">
        ${POWER.map((a) => html`<button type="button" class=${a === 'start' ? 'primary' : ''}
            data-action=${a} disabled=${!canPower[a]} onClick=${() => power(a)}>
          ${t(`power.${a}`)}</button>`)}
      </div>
      <div class="op-area" aria-live="polite">
        ${op && html`<div class="op" data-testid="op" data-op=${op.action}>
          <progress aria-label=${t('op.progress')}></progress>
          <span>${t('op.running', { action: actionName(op.action) })}
            ${' '}<span class="muted">${t(`task.${op.status}`)}</span></span>
        </div>`}
        ${outcome && html`<${Notice} kind=${outcome.kind} onClose=${() => setOutcome(null)}>
          <span data-testid="outcome">${outcome.text}</span></${Notice}>`}
        ${consoleUrl && html`<p class="hint">${t('console.opened')} ${' '}
          <a href=${consoleUrl} target="_blank" rel="noopener noreferrer">${t('console.link')}</a></p>`}
      </div>
    </section>

    <section class="panel" aria-labelledby="now-h">
      <div class="panel-head"><h2 id="now-h">${t('stats.title')}</h2></div>
      <dl class="gauges" data-testid="now">
        <div><dt>${t('graph.cpu')}</dt><dd data-gauge="cpu">${data ? percent(data.cpu * 100) : t('common.none')}</dd></div>
        <div><dt>${t('graph.memory')}</dt><dd data-gauge="memory">${data ? t('stats.usedOf',
          { used: bytes(data.memory?.used), max: bytes(data.memory?.max),
            pct: percent(data.memory?.usage) }) : t('common.none')}</dd></div>
        <div><dt>${t('graph.disk')}</dt><dd data-gauge="disk">${data ? t('stats.usedOf',
          { used: bytes(data.disk?.used), max: bytes(data.disk?.max),
            pct: percent(data.disk?.usage) }) : t('common.none')}</dd></div>
        <div><dt>${t('graph.network')}</dt><dd data-gauge="network">${data ? t('stats.traffic',
          { in: bytes(data.network?.in), out: bytes(data.network?.out) }) : t('common.none')}</dd></div>
        <div><dt>${t('stats.uptime')}</dt><dd>${data && data.status === 'running'
          ? uptime(data.uptime) : t('common.none')}</dd></div>
      </dl>
    </section>

    <${Graphs} id=${id} livePoints=${livePoints}
        onCurrent=${(r) => { if (!current && r?.stats?.data) setCurrent(r.stats.data); }} />

    ${!suspended && html`<${Snapshots} id=${id} busy=${busy || unsettled} version=${version}
        start=${start} setDialog=${setDialog} />`}

    ${vps && !suspended && html`<${Resize} id=${id} vps=${vps} server=${server} busy=${busy || unsettled}
        start=${start} />`}

    <section class="panel" aria-labelledby="access-h">
      <div class="panel-head"><h2 id="access-h">${t('access.title')}</h2></div>
      <div class="row-actions">
        <button type="button" disabled=${busy || !running} data-action="console"
            onClick=${openConsole}>${t('console.open')}</button>
        <button type="button" disabled=${busy || unsettled} data-action="password"
            onClick=${() => setDialog({ kind: 'password' })}>${t('password.reset')}</button>
      </div>
    </section>

    <${Tasks} tasks=${tasks} />

    <section class="panel danger" aria-labelledby="reinstall-h">
      <div class="panel-head"><h2 id="reinstall-h">${t('reinstall.title')}</h2></div>
      <p>${t('reinstall.text')}</p>
      <button type="button" class="danger" disabled=${busy || unsettled || !vps}
          data-action="reinstall" onClick=${() => setDialog({ kind: 'reinstall' })}>
        ${t('reinstall.button')}</button>
    </section>

    <section class="panel danger" aria-labelledby="danger-h">
      <div class="panel-head"><h2 id="danger-h">${t('delete.title')}</h2></div>
      <p>${t('delete.text')}</p>
      <button type="button" class="danger" disabled=${busy || status === 'deleting' || suspended}
          data-action="delete" onClick=${() => setDialog({ kind: 'delete' })}>
        ${t('delete.button')}</button>
    </section>

    ${dialog?.kind === 'password' && html`<${PasswordDialog} id=${id} start=${start}
        onClose=${() => setDialog(null)} />`}
    ${dialog?.kind === 'delete' && html`<${DeleteDialog} id=${id} name=${server.name || `#${id}`}
        start=${start} onClose=${() => setDialog(null)} />`}
    ${dialog?.kind === 'reinstall' && html`<${ReinstallDialog} id=${id}
        name=${server.name || `#${id}`} kind=${vps?.kind} osId=${server.osId} start=${start}
        onClose=${() => setDialog(null)} />`}
    ${dialog?.kind === 'confirm' && html`<${ConfirmDialog} ...${dialog}
        onClose=${() => setDialog(null)} />`}
  </section>`;
}

function alertText(a) {
  const value = Number.isFinite(Number(a.value)) ? percent(Number(a.value)) : null;
  if (value && has(`alert.${a.type}`)) return t(`alert.${a.type}`, { value });
  return a.message || a.type;
}

function Tasks({ tasks }) {
  const recent = tasks.slice(0, 10);
  return html`<section class="panel" aria-labelledby="tasks-h">
    <div class="panel-head"><h2 id="tasks-h">${t('tasks.title')}</h2></div>
    ${recent.length === 0 ? html`<p class="muted">${t('tasks.none')}</p>` : html`
    <table class="tasks" data-testid="tasks">
      <thead><tr><th scope="col">${t('tasks.action')}</th><th scope="col">${t('tasks.status')}</th>
        <th scope="col">${t('tasks.started')}</th><th scope="col">${t('tasks.result')}</th></tr></thead>
      <tbody>${recent.map((x) => html`<tr key=${x.id}>
        <td data-label=${t('tasks.action')}>${actionName(x.action)}</td>
        <td data-label=${t('tasks.status')}><span class=${`task task-${x.status}`}>${t(`task.${x.status}`)}</span></td>
        <td data-label=${t('tasks.started')}>${dateTime(x.createdAt)}</td>
        <td data-label=${t('tasks.result')}>${x.status === 'error' ? (x.error || x.exitstatus || '')
          : x.finishedAt ? dateTime(x.finishedAt) : ''}</td>
      </tr>`)}</tbody>
    </table>`}
  </section>`;
}

// A yes/no question before something that cannot be undone.
export function ConfirmDialog({ title, text, confirm, danger, onYes, onClose }) {
  const [busy, setBusy] = useState(false);
  const yes = async () => {
    setBusy(true);
    try {
      await onYes();
    } finally {
      onClose();
    }
  };
  return html`<${Dialog} title=${title} onClose=${onClose}>
    <p>${text}</p>
    <div class="actions">
      <button type="button" class=${danger ? 'danger' : 'primary'} onClick=${yes}
          disabled=${busy} data-testid="confirm">${confirm}</button>
      <button type="button" class="ghost" onClick=${onClose} autofocus>${t('common.cancel')}</button>
    </div>
  </${Dialog}>`;
}

function PasswordDialog({ id, start, onClose }) {
  const [password, setPassword] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const reset = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await start('password', () => api('POST', `/api/server/${id}/password`)
        .then((x) => x.data));
      setPassword(r.password);
    } catch (e) {
      setError(e);
    }
    setBusy(false);
  };
  if (password) {
    return html`<${Dialog} title=${t('password.newTitle')} onClose=${onClose}>
      <${Secret} label=${t('password.label')} value=${password} />
      <p class="once"><strong>${t('password.onlyNow')}</strong></p>
      <div class="actions"><button type="button" class="primary" onClick=${onClose}
          data-testid="password-done">${t('common.done')}</button></div>
    </${Dialog}>`;
  }
  return html`<${Dialog} title=${t('password.resetTitle')} onClose=${onClose}>
    <p>${t('password.resetText')}</p>
    ${error && html`<${Notice} kind="error">${errorText(error)}</${Notice}>`}
    <div class="actions">
      <button type="button" class="primary" onClick=${reset} disabled=${busy}
          data-testid="confirm">${busy ? t('common.working') : t('password.resetConfirm')}</button>
      <button type="button" class="ghost" onClick=${onClose} autofocus>${t('common.cancel')}</button>
    </div>
  </${Dialog}>`;
}

function DeleteDialog({ id, name, start, onClose }) {
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const field = `delete-${id}`;
  const go = async (e) => {
    e.preventDefault();
    if (typed !== name) return;
    setBusy(true);
    try {
      await start('delete', () => api('DELETE', `/api/server/${id}`).then((r) => r.data));
    } catch {
      // the outcome says why
    }
    onClose();
  };
  return html`<${Dialog} title=${t('delete.confirmTitle', { name })} onClose=${onClose}>
    <form onSubmit=${go}>
      <p>${t('delete.confirmText')}</p>
      <div class="field">
        <label for=${field}>${t('delete.typeName', { name })}</label>
        <input id=${field} type="text" value=${typed} autocomplete="off" spellcheck="false"
            onInput=${(e) => setTyped(e.target.value)} autofocus />
      </div>
      <div class="actions">
        <button type="submit" class="danger" disabled=${busy || typed !== name}
            data-testid="confirm">${t('delete.button')}</button>
        <button type="button" class="ghost" onClick=${onClose}>${t('common.cancel')}</button>
      </div>
    </form>
  </${Dialog}>`;
}
