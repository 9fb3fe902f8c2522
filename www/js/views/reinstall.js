// Reinstall: the server made anew from an OS of its kind (POST /api/server/{id}/reinstall,
// docs/proxmox.md). Everything on its disk goes, and so do its snapshots: the dialog says so
// (with how many) before anything is sent, asks for the server's name like a delete, and
// sends "confirm": true only for the snapshots it named. The new root password is shown
// once; the reinstall itself runs as the page's operation (progress, then its outcome).
import { html, useState, useEffect, useRef, useId } from '../lib.js';
import { t } from '../i18n.js';
import { api, get } from '../api.js';
import { Notice, Dialog, Secret, errorText } from '../ui.js';

// a server or OS entry without a kind is a container (lib/ospab_vps.c)
const kindOf = (x) => (x?.kind === 'qemu' ? 'qemu' : 'lxc');

// id, name: the server's; kind: its vps record's kind; osId: the OS installed now
export function ReinstallDialog({ id, name, kind, osId, start, onClose }) {
  const [oses, setOses] = useState(null);       // the OS entries of the server's kind
  const [snaps, setSnaps] = useState(null);     // its snapshots' names, [] when none
  const [snapError, setSnapError] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [choice, setChoice] = useState('');
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);     // {text, field}
  const [done, setDone] = useState(null);       // the API's answer: {rootPassword, ...}
  const busyRef = useRef(false);
  const select = useRef(null);
  const secret = useRef(null);
  const fid = useId();

  const loadSnapshots = () => get(`/api/server/${id}/snapshots`).then((r) => {
    setSnaps((Array.isArray(r?.data) ? r.data : []).map((s) => s.name));
    setSnapError(null);
  }).catch((e) => { setSnaps(null); setSnapError(e); });

  useEffect(() => {
    const want = kindOf({ kind });
    get('/api/os').then((list) => {
      const mine = (Array.isArray(list) ? list : []).filter((o) => kindOf(o) === want);
      setOses(mine);
      if (mine.some((o) => String(o.id) === String(osId))) setChoice(String(osId));
    }).catch(setLoadError);
    loadSnapshots();
  }, [id]);

  const ready = oses !== null && (snaps !== null || !!snapError);

  // the fields came: the choice first; the password came: the password
  useEffect(() => { if (ready) select.current?.focus(); }, [ready]);
  useEffect(() => { if (done) secret.current?.querySelector('input')?.focus(); }, [done]);

  // not while the request is out: its answer carries the only copy of the password
  const close = () => { if (!busyRef.current) onClose(); };

  const go = async (e) => {
    e.preventDefault();
    if (!ready || !choice || typed !== name || busy) return;
    const body = { osId: Number(choice) };
    // the snapshots the warning named may go; any the customer was not told of may not
    if (snaps && snaps.length) body.confirm = true;
    setBusy(true);
    busyRef.current = true;
    setError(null);
    try {
      const r = await start('reinstall', () => api('POST', `/api/server/${id}/reinstall`, body)
        .then((x) => x.data), true);
      setDone(r || {});
    } catch (err) {
      setError({ text: errorText(err), field: err.fields?.osId || null });
      // snapshots were taken meanwhile (409): the warning says how many now
      if (err.status === 409) loadSnapshots();
    }
    busyRef.current = false;
    setBusy(false);
  };

  if (done) {
    const gone = Array.isArray(done.snapshotsDeleted) ? done.snapshotsDeleted : [];
    return html`<${Dialog} title=${t('reinstall.doneTitle')} onClose=${close}>
      <p>${t('reinstall.doneText')}</p>
      <div ref=${secret}>
        <${Secret} label=${t('password.label')} value=${done.rootPassword || ''} />
      </div>
      <p class="once"><strong>${t('password.onlyNow')}</strong></p>
      ${gone.length > 0 && html`<p data-testid="snapshots-deleted">${t('reinstall.snapshotsDeleted',
        { count: gone.length, names: gone.join(', ') })}</p>`}
      <div class="actions"><button type="button" class="primary" onClick=${onClose}
          data-testid="reinstall-done">${t('common.done')}</button></div>
    </${Dialog}>`;
  }

  const warn = `${fid}-w`;
  return html`<${Dialog} title=${t('reinstall.confirmTitle', { name })} onClose=${close}>
    ${loadError && html`<${Notice} kind="error">${errorText(loadError)}</${Notice}>`}
    ${!ready && !loadError && html`<p class="muted" aria-busy="true">${t('common.loading')}</p>`}
    <form onSubmit=${go}>
      ${ready && html`
      <div id=${warn} data-testid="reinstall-warning">
        <${Notice} kind="warning">
          <p><strong>${t('reinstall.erase')}</strong></p>
          <p>${snapError ? t('reinstall.snapshotsUnknown', { error: errorText(snapError) })
            : snaps.length ? t('reinstall.snapshots', { count: snaps.length,
                                                        names: snaps.join(', ') })
              : t('reinstall.noSnapshots')}</p>
        </${Notice}>
      </div>
      ${oses.length === 0 ? html`<p class="muted">${t('reinstall.noOs')}</p>` : html`
      <div class=${error?.field ? 'field has-error' : 'field'}>
        <label for=${`${fid}-os`}>${t('reinstall.os')}</label>
        <select id=${`${fid}-os`} ref=${select} value=${choice} data-testid="reinstall-os"
            aria-invalid=${error?.field ? 'true' : undefined}
            aria-describedby=${error?.field ? `${fid}-oe` : undefined}
            onChange=${(e) => setChoice(e.target.value)}>
          ${!choice && html`<option value="">${t('reinstall.chooseOs')}</option>`}
          ${oses.map((o) => html`<option key=${o.id} value=${String(o.id)}>${
            String(o.id) === String(osId) ? t('reinstall.current', { name: o.name }) : o.name
          }</option>`)}
        </select>
        ${error?.field && html`<p class="field-error" id=${`${fid}-oe`}>${error.field}</p>`}
      </div>
      <div class="field">
        <label for=${`${fid}-n`}>${t('delete.typeName', { name })}</label>
        <input id=${`${fid}-n`} type="text" value=${typed} autocomplete="off" spellcheck="false"
            aria-describedby=${warn} onInput=${(e) => setTyped(e.target.value)} />
      </div>`}`}
      ${error && !error.field && html`<p class="form-error" role="alert"
          data-testid="reinstall-error">${error.text}</p>`}
      <div class="actions">
        <button type="submit" class="danger" data-testid="confirm"
            aria-describedby=${ready ? warn : undefined}
            disabled=${busy || !ready || !choice || typed !== name}>
          ${busy ? t('common.working') : t('reinstall.confirm')}</button>
        <button type="button" class="ghost" onClick=${close} disabled=${busy}>
          ${t('common.cancel')}</button>
      </div>
    </form>
  </${Dialog}>`;
}
