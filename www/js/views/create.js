// Ordering a server: a tariff and an OS from /api/tariffs and /api/os; the root password
// is shown once.
import { html, useState, useEffect, useId } from '../lib.js';
import { t } from '../i18n.js';
import { get, api } from '../api.js';
import { money, megabytes, gigabytes } from '../format.js';
import { navigate } from '../router.js';
import { Notice, Dialog, Secret, errorText, useFocusHeading } from '../ui.js';

export function Create() {
  const [tariffs, setTariffs] = useState(null);
  const [oses, setOses] = useState(null);
  const [tariffId, setTariffId] = useState(null);
  const [osId, setOsId] = useState(null);
  const [error, setError] = useState(null);
  const [fields, setFields] = useState({});
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState(null);
  const heading = useFocusHeading([]);
  const id = useId();

  useEffect(() => {
    Promise.all([get('/api/tariffs'), get('/api/os')]).then(([ts, os]) => {
      setTariffs(ts || []);
      setOses(os || []);
      if (ts?.length) setTariffId(ts[0].id);
      if (os?.length) setOsId(os[0].id);
    }).catch(setError);
  }, []);

  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setFields({});
    try {
      const r = await api('POST', '/api/server/create', { osId, tariffId });
      setCreated(r.data);
    } catch (err) {
      setError(err);
      setFields(err.fields || {});
    }
    setBusy(false);
  };

  const done = () => navigate(`/servers/${created.id}`);

  return html`<section class="page">
    <h1 ref=${heading} tabindex="-1">${t('create.title')}</h1>
    ${error && html`<${Notice} kind="error">${errorText(error)}</${Notice}>`}
    ${(!tariffs || !oses) && !error && html`<p class="muted" aria-busy="true">${t('common.loading')}</p>`}
    ${tariffs && oses && html`<form onSubmit=${submit} class="create">
      <fieldset class="choices" aria-describedby=${fields.tariffId ? `${id}-te` : undefined}>
        <legend>${t('create.tariff')}</legend>
        ${tariffs.length === 0 && html`<p class="muted">${t('create.noTariffs')}</p>`}
        <div class="cards">${tariffs.map((tr) => html`<label class="card-choice" key=${tr.id}>
          <input type="radio" name="tariff" value=${tr.id} checked=${tariffId === tr.id}
              onChange=${() => setTariffId(tr.id)} />
          <span class="card-body">
            <strong>${tr.name}</strong>
            <span class="price">${t('tariff.perMonth', { price: money(tr.price) })}</span>
            <span class="muted">${t('tariff.sizes', { cores: tr.cores,
              memory: megabytes(tr.memory), disk: gigabytes(tr.disk) })}</span>
          </span>
        </label>`)}</div>
        ${fields.tariffId && html`<p class="field-error" id=${`${id}-te`}>${fields.tariffId}</p>`}
      </fieldset>
      <fieldset class="choices" aria-describedby=${fields.osId ? `${id}-oe` : undefined}>
        <legend>${t('create.os')}</legend>
        <div class="cards">${oses.map((o) => html`<label class="card-choice" key=${o.id}>
          <input type="radio" name="os" value=${o.id} checked=${osId === o.id}
              onChange=${() => setOsId(o.id)} />
          <span class="card-body"><strong>${o.name}</strong>
            <span class="muted">${t(o.type === 'windows' ? 'os.windows' : 'os.linux')}</span></span>
        </label>`)}</div>
        ${fields.osId && html`<p class="field-error" id=${`${id}-oe`}>${fields.osId}</p>`}
      </fieldset>
      <div class="actions">
        <button type="submit" class="primary" disabled=${busy || !tariffId || !osId}>
          ${busy ? t('create.busy') : t('create.submit')}</button>
        <a href="#/servers" class="button ghost">${t('common.cancel')}</a>
      </div>
    </form>`}
    ${created && html`<${Dialog} title=${t('create.doneTitle')} onClose=${done}>
      <p>${t('create.doneText')}</p>
      <${Secret} label=${t('password.label')} value=${created.rootPassword} />
      <p class="once"><strong>${t('password.onlyNow')}</strong></p>
      <div class="actions"><button type="button" class="primary" onClick=${done}
          autofocus>${t('create.toServer')}</button></div>
    </${Dialog}>`}
  </section>`;
}
