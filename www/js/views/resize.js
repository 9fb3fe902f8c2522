// Resize: cores, memory and disk within the server's tariff, or a move to another tariff
// (docs/proxmox.md). The disk only grows; the API's per-field messages appear next to the
// inputs they are about.
import { html, useState, useEffect, useId } from '../lib.js';
import { t } from '../i18n.js';
import { api, get } from '../api.js';
import { money, megabytes, gigabytes } from '../format.js';
import { Notice, Field, errorText } from '../ui.js';

export function Resize({ id, vps, server, busy, start }) {
  const [cores, setCores] = useState(String(vps.cpu));
  const [memory, setMemory] = useState(String(vps.ram));
  const [disk, setDisk] = useState(String(vps.disk));
  const [fields, setFields] = useState({});
  const [error, setError] = useState(null);
  const [tariffs, setTariffs] = useState(null);
  const [tariffId, setTariffId] = useState('');
  const [moveFields, setMoveFields] = useState({});
  const [moveError, setMoveError] = useState(null);
  const fid = useId();

  // the record changed (an operation finished): the form starts from it again
  useEffect(() => {
    setCores(String(vps.cpu));
    setMemory(String(vps.ram));
    setDisk(String(vps.disk));
  }, [vps.cpu, vps.ram, vps.disk]);

  useEffect(() => {
    get('/api/tariffs').then((ts) => setTariffs(Array.isArray(ts) ? ts : [])).catch(() => setTariffs([]));
  }, []);

  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    const want = {};
    const mine = {};
    for (const [k, v, cur] of [['cores', cores, vps.cpu], ['memory', memory, vps.ram],
                               ['disk', disk, vps.disk]]) {
      const n = Number(v);
      if (!/^\d+$/.test(String(v).trim())) mine[k] = t('resize.wholeNumber');
      else if (n !== Number(cur)) want[k] = n;
    }
    if (want.disk !== undefined && want.disk < Number(vps.disk)) {
      mine.disk = t('resize.diskGrows', { size: gigabytes(vps.disk) });
    }
    setFields(mine);
    if (Object.keys(mine).length) return;
    if (!Object.keys(want).length) {
      setError({ text: t('resize.nothing') });
      return;
    }
    try {
      await start('resize', () => api('PUT', `/api/server/${id}/resize`, want).then((r) => r.data),
                  true);
    } catch (err) {
      setFields(err.fields || {});
      // the fields say what is wrong next to each input; the form only points at them
      setError({ text: err.fields && Object.keys(err.fields).some((k) => k in want)
        ? t('resize.fixFields') : errorText(err) });
    }
  };

  const move = async (e) => {
    e.preventDefault();
    setMoveError(null);
    setMoveFields({});
    if (!tariffId) return;
    try {
      await start('resize', () => api('PUT', `/api/server/${id}/resize`,
                                      { tariffId: Number(tariffId) }).then((r) => r.data), true);
      setTariffId('');
    } catch (err) {
      setMoveFields(err.fields || {});
      setMoveError({ text: errorText(err) });
    }
  };

  const input = (value, set, min, extra) => (a) => html`<input type="number" inputmode="numeric"
      min=${min} step="1" value=${value} onInput=${(e) => set(e.target.value)} ...${a}
      ...${extra || {}} />`;

  const others = (tariffs || []).filter((x) => x.id !== server.tariffId);
  return html`<section class="panel" aria-labelledby="resize-h">
    <div class="panel-head"><h2 id="resize-h">${t('resize.title')}</h2></div>
    <form class="inline-form" onSubmit=${submit} noValidate data-testid="resize">
      <div class="field-row">
        <${Field} id=${`${fid}-c`} label=${t('resize.cores')} error=${fields.cores}>
          ${input(cores, setCores, 1)}</${Field}>
        <${Field} id=${`${fid}-m`} label=${t('resize.memory')} error=${fields.memory}
            hint=${t('resize.now', { value: megabytes(vps.ram) })}>
          ${input(memory, setMemory, 128)}</${Field}>
        <${Field} id=${`${fid}-d`} label=${t('resize.disk')} error=${fields.disk}
            hint=${t('resize.diskHint', { value: gigabytes(vps.disk) })}>
          ${input(disk, setDisk, vps.disk)}</${Field}>
      </div>
      ${error && html`<p class="form-error" role="alert" data-testid="resize-error">${error.text}</p>`}
      <button type="submit" disabled=${busy} data-action="resize">${t('resize.apply')}</button>
    </form>
    ${others.length > 0 && html`<form class="inline-form" onSubmit=${move}>
      <h3>${t('resize.moveTitle')}</h3>
      <${Field} id=${`${fid}-t`} label=${t('resize.tariff')} error=${moveFields.tariffId}>
        ${(a) => html`<select value=${tariffId} onChange=${(e) => setTariffId(e.target.value)}
            data-testid="tariff" ...${a}>
          <option value="">${t('resize.chooseTariff')}</option>
          ${others.map((x) => html`<option value=${x.id}>${x.name} — ${t('tariff.sizes',
            { cores: x.cores, memory: megabytes(x.memory), disk: gigabytes(x.disk) })}, ${t(
            'tariff.perMonth', { price: money(x.price) })}</option>`)}
        </select>`}
      </${Field}>
      ${moveError && html`<${Notice} kind="error">${moveError.text}</${Notice}>`}
      <button type="submit" disabled=${busy || !tariffId} data-action="move">${t('resize.move')}</button>
    </form>`}
  </section>`;
}
