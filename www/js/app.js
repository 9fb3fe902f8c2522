// The panel's frame: who is logged in, which screen, the header.
import { html, useState, useEffect } from './lib.js';
import { t, language, onLanguage } from './i18n.js';
import { onSession, restore, logout } from './session.js';
import { startLive, stopLive, onLiveState, liveState } from './live.js';
import { useRoute, navigate } from './router.js';
import { safeUrl } from './settings.js';
import { Login } from './views/login.js';
import { Servers } from './views/servers.js';
import { Server } from './views/server.js';
import { Create } from './views/create.js';
import { SshKeys } from './views/sshkeys.js';
import { useFocusHeading, Brand, LanguageSwitch } from './ui.js';

export function App({ settings }) {
  const [, setLang] = useState(language());
  const [auth, setAuth] = useState({ state: 'checking', user: null, notice: null });
  const route = useRoute();

  useEffect(() => onLanguage(setLang), []);
  useEffect(() => {
    const off = onSession(({ user, reason }) => {
      if (user) {
        startLive();
        setAuth({ state: 'in', user, notice: null });
      } else {
        stopLive();
        setAuth({ state: 'out', user: null, notice: reason === 'ended' ? 'ended' : null });
      }
    });
    restore();
    return off;
  }, []);

  useEffect(() => {
    if (auth.state === 'in' && route.name === 'login') navigate('/servers');
  }, [auth.state, route.name]);

  if (auth.state === 'checking') return html`<div class="boot" aria-busy="true"></div>`;
  if (auth.state === 'out') {
    return html`<${Login} settings=${settings} notice=${auth.notice} />`;
  }
  return html`<${Shell} settings=${settings} user=${auth.user} route=${route}>
    ${route.name === 'servers' && html`<${Servers} user=${auth.user} />`}
    ${route.name === 'create' && html`<${Create} user=${auth.user} />`}
    ${route.name === 'keys' && html`<${SshKeys} />`}
    ${route.name === 'server' && html`<${Server} key=${route.id} id=${route.id}
        user=${auth.user} />`}
    ${route.name === 'notfound' && html`<${NotFound} />`}
  </${Shell}>`;
}

function LiveIndicator() {
  const [s, setS] = useState(liveState());
  useEffect(() => {
    const off = onLiveState(setS);
    setS(liveState());            // it may have changed between the render and now
    return off;
  }, []);
  return html`<span class=${`live live-${s}`} role="status" data-live=${s}
      title=${t(`live.${s}.hint`)}>${t(`live.${s}`)}</span>`;
}

function Shell({ settings, user, route, children }) {
  const [busy, setBusy] = useState(false);
  const out = async () => {
    setBusy(true);
    await logout();
  };
  const support = settings.supportUrl ? safeUrl(settings.supportUrl) : '';
  const current = (name) => (route.name === name ? 'page' : undefined);
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault();
      document.getElementById('main')?.focus(); }}>${t('nav.skip')}</a>
    <header class="top">
      <${Brand} settings=${settings} />
      <nav aria-label=${t('nav.main')}>
        <a href="#/servers" aria-current=${current('servers')}>
          ${user.role === 'admin' ? t('nav.allServers') : t('nav.myServers')}</a>
        <a href="#/servers/new" aria-current=${current('create')}>${t('nav.newServer')}</a>
        <a href="#/keys" aria-current=${current('keys')}>${t('nav.sshKeys')}</a>
      </nav>
      <div class="top-end">
        <${LiveIndicator} />
        <${LanguageSwitch} />
        <span class="who" data-testid="who">${user.email}${user.role === 'admin'
          ? html` <span class="role">${t('user.admin')}</span>` : ''}</span>
        <button type="button" class="ghost" onClick=${out} disabled=${busy}
            data-testid="logout">${t('nav.logout')}</button>
      </div>
    </header>
    <main id="main" tabindex="-1">${children}</main>
    <footer class="foot">
      <span>${settings.productName}</span>
      ${support && html`<a href=${support} rel="noopener noreferrer">${t('nav.support')}</a>`}
    </footer>
  </div>`;
}

function NotFound() {
  const h = useFocusHeading([]);
  return html`<section class="page">
    <h1 ref=${h} tabindex="-1">${t('notFound.title')}</h1>
    <p>${t('notFound.text')}</p>
    <p><a href="#/servers">${t('notFound.back')}</a></p>
  </section>`;
}

