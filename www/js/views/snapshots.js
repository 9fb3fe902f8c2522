// Snapshots: list, create, roll back, delete (each destructive one asks first).
import { html, useState, useEffect, useId } from '../lib.js';
import { t } from '../i18n.js';
import { api, get } from '../api.js';
import { dateTime } from '../format.js';
import { Notice, errorText } from '../ui.js';

// Proxmox's rule for snapshot names (docs/proxmox.md)
const NAME = /^[A-Za-z][A-Za-z0-9_-]{1,39}$/;
const RESERVED = new Set(['current', 'vzdump', 'pending']);

function suggestName() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `backup-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}`;
}

export function Snapshots({ id, busy, version, start, setDialog }) {
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  const [name, setName] = useState(suggestName);
  const [description, setDescription] = useState('');
  const [nameError, setNameError] = useState(null);
  const [formError, setFormError] = useState(null);
  const fid = useId();

  useEffect(() => {
    let gone = false;
    get(`/api/server/${id}/snapshots`).then((r) => {
      if (!gone) { setList(Array.isArray(r?.data) ? r.data : []); setError(null); }
    }).catch((e) => { if (!gone) { setError(e); setList([]); } });
    return () => { gone = true; };
  }, [id, version]);

  const create = async (e) => {
    e.preventDefault();
    const n = name.trim();
    if (!NAME.test(n) || RESERVED.has(n)) {
      setNameError(t('snap.nameRule'));
      return;
    }
    setNameError(null);
    setFormError(null);
    try {
      await start('snapshot', () => api('POST', `/api/server/${id}/snapshots`,
                                       { snapname: n, description }).then((r) => r.data), true);
      setName(suggestName());
      setDescription('');
    } catch (err) {
      if (err.fields?.snapname) setNameError(err.fields.snapname);
      else setFormError(errorText(err));
    }
  };

  const rollback = (s) => setDialog({
    kind: 'confirm', title: t('snap.rollbackTitle', { name: s.name }),
    text: t('snap.rollbackText'), confirm: t('snap.rollback'), danger: true,
    onYes: () => start('rollback', () => api('POST', `/api/server/${id}/snapshots/rollback`,
                                             { snapname: s.name }).then((r) => r.data))
      .catch(() => {}),
  });
  const remove = (s) => setDialog({
    kind: 'confirm', title: t('snap.deleteTitle', { name: s.name }),
    text: t('snap.deleteText'), confirm: t('snap.delete'), danger: true,
    onYes: () => start('delsnapshot', () => api('DELETE', `/api/server/${id}/snapshots`,
                                                { snapname: s.name }).then((r) => r.data))
      .catch(() => {}),
  });

  return html`<section class="panel" aria-labelledby="snap-h">
    <div class="panel-head"><h2 id="snap-h">${t('snap.title')}</h2></div>
    ${error && html`<${Notice} kind="error">${errorText(error)}</${Notice}>`}
    ${list === null && html`<p class="muted" aria-busy="true">${t('common.loading')}</p>`}
    ${list && list.length === 0 && !error && html`<p class="muted">${t('snap.none')}</p>`}
    ${list && list.length > 0 && html`<table class="snapshots" data-testid="snapshots">
      <thead><tr><th scope="col">${t('snap.name')}</th><th scope="col">${t('snap.description')}</th>
        <th scope="col">${t('snap.taken')}</th><th scope="col"><span class="visually-hidden">${t('snap.actions')}</span></th></tr></thead>
      <tbody>${list.map((s) => html`<tr key=${s.name} data-snapshot=${s.name}>
        <th scope="row" data-label=${t('snap.name')} class="mono">${s.name}</th>
        <td data-label=${t('snap.description')}>${s.description || ''}</td>
        <td data-label=${t('snap.taken')}>${s.snaptime ? dateTime(s.snaptime) : t('common.none')}</td>
        <td class="row-actions">
          <button type="button" disabled=${busy} data-action="rollback" onClick=${() => rollback(s)}
              aria-label=${t('snap.rollbackNamed', { name: s.name })}>${t('snap.rollback')}</button>
          <button type="button" class="danger-text" disabled=${busy} data-action="delete-snapshot"
              onClick=${() => remove(s)}
              aria-label=${t('snap.deleteNamed', { name: s.name })}>${t('snap.delete')}</button>
        </td>
      </tr>`)}</tbody>
    </table>`}
    <form class="inline-form" onSubmit=${create}>
      <h3>${t('snap.create')}</h3>
      <div class="field-row">
        <div class=${nameError ? 'field has-error' : 'field'}>
          <label for=${`${fid}-n`}>${t('snap.name')}</label>
          <input id=${`${fid}-n`} type="text" class="mono" value=${name} maxlength="40"
              aria-invalid=${nameError ? 'true' : undefined}
              aria-describedby=${`${fid}-nh${nameError ? ` ${fid}-ne` : ''}`}
              onInput=${(e) => setName(e.target.value)} />
          <p class="hint" id=${`${fid}-nh`}>${t('snap.nameRule')}</p>
          ${nameError && html`<p class="field-error" id=${`${fid}-ne`}>${nameError}</p>`}
        </div>
        <div class="field">
          <label for=${`${fid}-d`}>${t('snap.description')}</label>
          <input id=${`${fid}-d`} type="text" value=${description} maxlength="200"
              onInput=${(e) => setDescription(e.target.value)} />
        </div>
      </div>
      ${formError && html`<p class="form-error" role="alert">${formError}</p>`}
      <button type="submit" disabled=${busy} data-action="snapshot">${t('snap.take')}</button>
    </form>
  </section>`;
}
