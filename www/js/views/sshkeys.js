// SSH keys (#/keys): the customer's OpenSSH public keys (GET/POST/DELETE
// /api/account/ssh-keys, docs/ssh-keys.md), which a new server can be given at its order.
// The API checks a key the way OpenSSH reads it; its refusal is shown at the field.
import { html, useState, useEffect, useRef, useId } from '../lib.js';
import { t } from '../i18n.js';
import { api, get } from '../api.js';
import { dateTime } from '../format.js';
import { Notice, Dialog, Field, errorText, useFocusHeading } from '../ui.js';

export const MAX_KEYS = 32;          // the API's limit per account

export function SshKeys() {
  const [keys, setKeys] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [name, setName] = useState('');
  const [publicKey, setPublicKey] = useState('');
  const [fields, setFields] = useState({});
  const [formError, setFormError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [flash, setFlash] = useState(null);      // what the last add or delete did
  const [removing, setRemoving] = useState(null); // the key the delete dialog asks about
  const heading = useFocusHeading([]);
  const listHeading = useRef(null);
  const nameRef = useRef(null);
  const keyRef = useRef(null);
  const fid = useId();

  const load = () => get('/api/account/ssh-keys').then((list) => {
    setKeys(Array.isArray(list) ? list : []);
    setLoadError(null);
  }).catch((e) => { setLoadError(e); setKeys((cur) => cur || []); });

  useEffect(() => { load(); }, []);

  const add = async (e) => {
    e.preventDefault();
    setFields({});
    setFormError(null);
    setFlash(null);
    if (!publicKey.trim()) {
      setFields({ publicKey: t('sshkeys.keyMissing') });
      keyRef.current?.focus();
      return;
    }
    setBusy(true);
    const body = { publicKey: publicKey.trim() };
    if (name.trim()) body.name = name.trim();
    try {
      const r = await api('POST', '/api/account/ssh-keys', body);
      const k = r.data?.key;
      setName('');
      setPublicKey('');
      setFlash(t('sshkeys.added', { name: k?.name || '' }));
      if (k) setKeys((cur) => [...(cur || []).filter((x) => x.id !== k.id), k]);
      else await load();
    } catch (err) {
      const f = err.fields || {};
      const mine = {};
      if (f.publicKey) mine.publicKey = f.publicKey;
      if (f.name) mine.name = f.name;
      // a duplicate or the 33rd key (409) is about the key pasted: said at its field
      if (!mine.publicKey && !mine.name && err.status === 409) mine.publicKey = errorText(err);
      setFields(mine);
      if (!mine.publicKey && !mine.name) setFormError(errorText(err));
      // the field the message is about, so it is read out with it
      setTimeout(() => (mine.name && !mine.publicKey ? nameRef : keyRef).current?.focus(), 0);
    }
    setBusy(false);
  };

  const deleted = (k) => {
    setKeys((cur) => (cur || []).filter((x) => x.id !== k.id));
    setFlash(t('sshkeys.deleted', { name: k.name }));
  };

  // the dialog gives the focus back to its button, which left with the row: the list instead
  const closed = () => {
    setRemoving(null);
    setTimeout(() => {
      if (!document.activeElement || document.activeElement === document.body) {
        listHeading.current?.focus();
      }
    }, 0);
  };

  const full = keys && keys.length >= MAX_KEYS;
  return html`<section class="page sshkeys-page">
    <div class="page-head"><h1 ref=${heading} tabindex="-1">${t('sshkeys.title')}</h1></div>
    <p class="muted">${t('sshkeys.intro')}</p>
    ${flash && html`<${Notice} kind="ok" onClose=${() => setFlash(null)}>
      <span data-testid="sshkeys-flash">${flash}</span></${Notice}>`}
    ${loadError && html`<${Notice} kind="error">${errorText(loadError)}</${Notice}>`}
    <section class="panel" aria-labelledby=${`${fid}-lh`}>
      <div class="panel-head">
        <h2 id=${`${fid}-lh`} ref=${listHeading} tabindex="-1">${t('sshkeys.yours')}</h2>
        ${keys && keys.length > 0 && html`<span class="muted" data-testid="sshkeys-count">${
          t('sshkeys.count', { count: keys.length, max: MAX_KEYS })}</span>`}
      </div>
      ${keys === null && html`<p class="muted" aria-busy="true">${t('common.loading')}</p>`}
      ${keys && keys.length === 0 && !loadError && html`<p class="muted"
          data-testid="sshkeys-none">${t('sshkeys.none')}</p>`}
      ${keys && keys.length > 0 && html`<table class="sshkeys" data-testid="sshkeys">
        <thead><tr><th scope="col">${t('sshkeys.name')}</th><th scope="col">${t('sshkeys.type')}</th>
          <th scope="col">${t('sshkeys.fingerprint')}</th><th scope="col">${t('sshkeys.addedOn')}</th>
          <th scope="col"><span class="visually-hidden">${t('sshkeys.actions')}</span></th></tr></thead>
        <tbody>${keys.map((k) => html`<tr key=${k.id} data-key=${k.id}>
          <th scope="row" data-label=${t('sshkeys.name')} class="key-name">${k.name}</th>
          <td data-label=${t('sshkeys.type')} class="mono">${k.type}</td>
          <td data-label=${t('sshkeys.fingerprint')} class="mono fingerprint"
              data-testid="key-fingerprint">${k.fingerprint}</td>
          <td data-label=${t('sshkeys.addedOn')}>${dateTime(k.createdAt)}</td>
          <td class="row-actions">
            <button type="button" class="danger-text" data-action="delete-key"
                onClick=${() => { setFlash(null); setRemoving(k); }}
                aria-label=${t('sshkeys.deleteNamed', { name: k.name })}>${t('sshkeys.delete')}</button>
          </td>
        </tr>`)}</tbody>
      </table>`}
    </section>
    <section class="panel" aria-labelledby=${`${fid}-ah`}>
      <div class="panel-head"><h2 id=${`${fid}-ah`}>${t('sshkeys.addTitle')}</h2></div>
      ${full ? html`<p class="muted" data-testid="sshkeys-full">${t('sshkeys.full', { max: MAX_KEYS })}</p>`
        : html`<form class="sshkey-add" onSubmit=${add} novalidate>
        <${Field} id=${`${fid}-k`} label=${t('sshkeys.publicKey')} error=${fields.publicKey}
            hint=${t('sshkeys.publicKeyHint')}>
          ${(a) => html`<textarea ...${a} ref=${keyRef} class="mono" rows="4" name="publicKey"
              value=${publicKey} spellcheck="false" autocomplete="off" autocapitalize="off"
              placeholder="ssh-ed25519 AAAAC3Nza… user@host"
              onInput=${(e) => setPublicKey(e.target.value)}></textarea>`}
        </${Field}>
        <${Field} id=${`${fid}-n`} label=${t('sshkeys.nameOptional')} error=${fields.name}
            hint=${t('sshkeys.nameHint')}>
          ${(a) => html`<input ...${a} ref=${nameRef} type="text" name="name" maxlength="64"
              value=${name} autocomplete="off" onInput=${(e) => setName(e.target.value)} />`}
        </${Field}>
        ${formError && html`<p class="form-error" role="alert"
            data-testid="sshkeys-error">${formError}</p>`}
        <div class="actions">
          <button type="submit" class="primary" disabled=${busy} data-action="add-key">
            ${busy ? t('sshkeys.adding') : t('sshkeys.add')}</button>
        </div>
      </form>`}
    </section>
    ${removing && html`<${DeleteKeyDialog} k=${removing} onDeleted=${deleted}
        onClose=${closed} />`}
  </section>`;
}

// "Delete the key laptop?": servers made with it keep it, which the dialog says.
function DeleteKeyDialog({ k, onDeleted, onClose }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const yes = async () => {
    setBusy(true);
    setError(null);
    try {
      await api('DELETE', `/api/account/ssh-keys/${k.id}`);
      onDeleted(k);
      onClose();
    } catch (e) {
      if (e.status === 404) {          // gone already (another tab): as good as deleted
        onDeleted(k);
        onClose();
        return;
      }
      setError(e);
      setBusy(false);
    }
  };
  return html`<${Dialog} title=${t('sshkeys.deleteTitle', { name: k.name })} onClose=${onClose}>
    <p>${t('sshkeys.deleteText')}</p>
    <p class="mono fingerprint">${k.fingerprint}</p>
    ${error && html`<${Notice} kind="error">${errorText(error)}</${Notice}>`}
    <div class="actions">
      <button type="button" class="danger" onClick=${yes} disabled=${busy}
          data-testid="confirm">${busy ? t('common.working') : t('sshkeys.delete')}</button>
      <button type="button" class="ghost" onClick=${onClose} autofocus>${t('common.cancel')}</button>
    </div>
  </${Dialog}>`;
}
