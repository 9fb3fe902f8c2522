// The login screen: e-mail and password; a wrong one, the rate limit and a session that
// ended are said in words.
import { html, useState, useId } from '../lib.js';
import { t } from '../i18n.js';
import { login } from '../session.js';
import { inTime } from '../format.js';
import { Notice, useFocusHeading, Brand, LanguageSwitch } from '../ui.js';

function loginError(r) {
  if (r.status === 0) return t('error.network');
  if (r.status === 401) return t('login.wrong');
  if (r.status === 400) return t('login.missing');
  if (r.status === 429) {
    const s = Number(r.headers?.get('Retry-After'));
    return s ? t('login.tooManyIn', { when: inTime(s) }) : t('login.tooMany');
  }
  if (r.status === 501) return t('login.external');
  return r.data?.error || t('error.server');
}

export function Login({ settings, notice }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const id = useId();
  const heading = useFocusHeading([]);

  const submit = async (e) => {
    e.preventDefault();
    if (!email.trim() || !password) {
      setError(t('login.missing'));
      return;
    }
    setBusy(true);
    setError(null);
    let r;
    try {
      r = await login(email.trim(), password);
    } catch {
      r = { status: 0 };
    }
    if (r.status !== 200) {
      setBusy(false);
      setError(loginError(r));
    }
  };

  return html`<div class="login-page">
    <div class="login-top"><${Brand} settings=${settings} /><${LanguageSwitch} /></div>
    <main id="main" class="login-card" tabindex="-1">
      <h1 ref=${heading} tabindex="-1">${t('login.title')}</h1>
      ${notice === 'ended' && html`<${Notice} kind="warning">${t('login.ended')}</${Notice}>`}
      <form onSubmit=${submit} noValidate>
        <div class="field">
          <label for=${`${id}-e`}>${t('login.email')}</label>
          <input id=${`${id}-e`} type="email" name="email" autocomplete="username"
              value=${email} onInput=${(e) => setEmail(e.target.value)} required />
        </div>
        <div class="field">
          <label for=${`${id}-p`}>${t('login.password')}</label>
          <input id=${`${id}-p`} type="password" name="password"
              autocomplete="current-password" value=${password}
              onInput=${(e) => setPassword(e.target.value)} required />
        </div>
        ${error && html`<p class="form-error" role="alert" data-testid="login-error">${error}</p>`}
        <button type="submit" class="primary wide" disabled=${busy}>
          ${busy ? t('login.busy') : t('login.submit')}</button>
      </form>
    </main>
  </div>`;
}
