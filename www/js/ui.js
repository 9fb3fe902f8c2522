// Small shared pieces: status badges, notices, dialogs, form fields, the copy button.
import { html, useEffect, useRef, useState, useId } from './lib.js';
import { t, has, language, setLanguage, LANGUAGES } from './i18n.js';
import { inTime } from './format.js';

export function StatusBadge({ status }) {
  const s = String(status || 'unknown');
  const label = has(`status.${s}`) ? t(`status.${s}`) : s;
  return html`<span class=${`badge badge-${s.replace(/[^a-z]/g, '')}`} data-status=${s}>${label}</span>`;
}

// kind: info | ok | warning | error
export function Notice({ kind = 'info', children, onClose, live = true }) {
  const role = kind === 'error' || kind === 'warning' ? 'alert' : (live ? 'status' : undefined);
  return html`<div class=${`notice notice-${kind}`} role=${role}>
    <div class="notice-text">${children}</div>
    ${onClose && html`<button type="button" class="link close" onClick=${onClose}
        aria-label=${t('common.dismiss')}>×</button>`}
  </div>`;
}

// The words for a failed API call: our catalogue's for what we know, the panel's own
// message (already the customer's words, lib/ospab_pve_errors.c) otherwise.
export function errorText(e) {
  if (!e) return '';
  if (e.status === 0) return t('error.network');
  if (e.status === 429) {
    return e.retryAfter ? t('error.tooManyIn', { when: inTime(e.retryAfter) })
                        : t('error.tooMany');
  }
  const msg = e.body?.error;
  if (e.status === 404 && !msg) return t('error.notFound');
  if (msg) return msg;
  if (e.status >= 500) return t('error.server');
  return t('error.generic', { status: e.status });
}

// A modal <dialog>: the browser keeps focus inside and Escape closes it.
export function Dialog({ title, onClose, children, wide }) {
  const ref = useRef(null);
  const id = useId();
  useEffect(() => {
    const d = ref.current;
    const before = document.activeElement;
    if (!d.open) d.showModal();
    const cancel = (e) => {
      e.preventDefault();
      onClose?.();
    };
    d.addEventListener('cancel', cancel);
    return () => {
      d.removeEventListener('cancel', cancel);
      if (d.open) d.close();
      if (before && before.isConnected) before.focus();
    };
  }, []);
  return html`<dialog ref=${ref} class=${wide ? 'dialog wide' : 'dialog'}
      aria-labelledby=${`${id}-t`}>
    <h2 id=${`${id}-t`}>${title}</h2>
    ${children}
  </dialog>`;
}

// An input with its label, a hint and the API's message for it (fields).
export function Field({ label, error, hint, children, id }) {
  const err = error ? `${id}-err` : undefined;
  const hnt = hint ? `${id}-hint` : undefined;
  return html`<div class=${error ? 'field has-error' : 'field'}>
    <label for=${id}>${label}</label>
    ${children({ id, 'aria-invalid': error ? 'true' : undefined,
                 'aria-describedby': [err, hnt].filter(Boolean).join(' ') || undefined })}
    ${hint && html`<p class="hint" id=${hnt}>${hint}</p>`}
    ${error && html`<p class="field-error" id=${err}>${error}</p>`}
  </div>`;
}

// A secret shown once (a root password): readable, selectable, copyable.
export function Secret({ label, value }) {
  const id = useId();
  const [copied, setCopied] = useState(null);
  const input = useRef(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied('ok');
    } catch {
      input.current.select();          // the user can press Ctrl+C
      setCopied('select');
    }
  };
  return html`<div class="secret">
    <label for=${id}>${label}</label>
    <div class="secret-row">
      <input id=${id} ref=${input} class="mono" type="text" readonly value=${value}
          autocomplete="off" spellcheck="false" onFocus=${(e) => e.target.select()} />
      <button type="button" class="primary" onClick=${copy}>${t('common.copy')}</button>
    </div>
    <p class="hint" role="status">${copied === 'ok' ? t('common.copied')
                                    : copied === 'select' ? t('common.copyManually') : ''}</p>
  </div>`;
}

// Focus the page's heading after navigation, so keyboard and screen-reader users start there.
export function useFocusHeading(deps) {
  const ref = useRef(null);
  useEffect(() => {
    if (ref.current && document.activeElement?.closest?.('dialog') == null) {
      ref.current.focus({ preventScroll: false });
    }
  }, deps);
  return ref;
}

export function LanguageSwitch() {
  return html`<label class="lang">
    <span class="visually-hidden">${t('nav.language')}</span>
    <select value=${language()} onChange=${(e) => setLanguage(e.target.value)}
        data-testid="language">
      ${LANGUAGES.map((l) => html`<option value=${l} lang=${l}>${t(`lang.${l}`)}</option>`)}
    </select>
  </label>`;
}

export function Brand({ settings }) {
  return html`<a class="brand" href="#/servers">
    <img src=${settings.logo} alt="" width="28" height="28" />
    <span>${settings.productName}</span>
  </a>`;
}
