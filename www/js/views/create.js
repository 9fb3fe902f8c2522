// Ordering a server: a tariff and an OS from /api/tariffs and /api/os (each OS with its
// kind: a container or a KVM server), and which of the customer's SSH keys
// (/api/account/ssh-keys) root gets, none chosen unless the customer ticks them; the root
// password is shown once.
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
  const [keys, setKeys] = useState(null);       // the customer's SSH keys; null: unknown
  const [keyIds, setKeyIds] = useState([]);     // the ones ticked, in the list's order
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
    // the keys are a choice on top: without them the server can still be ordered
    get('/api/account/ssh-keys').then((ks) => setKeys(Array.isArray(ks) ? ks : []))
      .catch(() => setKeys(null));
  }, []);

  const toggleKey = (kid, on) => setKeyIds((cur) => (keys || [])
    .map((k) => k.id).filter((x) => (x === kid ? on : cur.includes(x))));

  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setFields({});
    try {
      const body = { osId, tariffId };
      if (keyIds.length) body.sshKeyIds = keyIds;
      const r = await api('POST', '/api/server/create', body);
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
            <span class="muted">${t(o.type === 'windows' ? 'os.windows' : 'os.linux')}</span>
            <span class=${`kind kind-${o.kind === 'qemu' ? 'qemu' : 'lxc'}`}
                data-kind=${o.kind === 'qemu' ? 'qemu' : 'lxc'}>${
              t(o.kind === 'qemu' ? 'os.kvm' : 'os.container')}</span></span>
        </label>`)}</div>
        ${fields.osId && html`<p class="field-error" id=${`${id}-oe`}>${fields.osId}</p>`}
      </fieldset>
      ${keys && html`<fieldset class="choices ssh-choice" data-testid="create-keys"
          aria-describedby=${[`${id}-kh`, fields.sshKeyIds ? `${id}-ke` : ''].filter(Boolean).join(' ')}>
        <legend>${t('create.sshKeys')}</legend>
        ${keys.length === 0 ? html`<p class="muted" id=${`${id}-kh`}>${t('create.noKeys')}${' '}
            <a href="#/keys" data-testid="create-keys-link">${t('create.addKey')}</a></p>`
          : html`<p class="hint" id=${`${id}-kh`}>${t('create.keysHint')}</p>
        <div class="key-choices">${keys.map((k) => html`<label class="key-choice" key=${k.id}>
          <input type="checkbox" name="sshKey" value=${k.id} checked=${keyIds.includes(k.id)}
              onChange=${(e) => toggleKey(k.id, e.target.checked)} />
          <span><strong>${k.name}</strong>
            <span class="mono muted fingerprint">${k.fingerprint}</span></span>
        </label>`)}</div>
        <p class="muted" data-testid="create-keys-chosen">${keyIds.length
          ? t('create.keysChosen', { count: keyIds.length }) : t('create.keysNone')}</p>`}
        ${fields.sshKeyIds && html`<p class="field-error" id=${`${id}-ke`}>${fields.sshKeyIds}</p>`}
      </fieldset>`}
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
