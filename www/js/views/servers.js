// "My servers" (seed 002): name, status, address, OS, tariff; statuses change live
// (server-status); pages by keyset (?limit=&after=, X-Next-Cursor). Admins see every
// server and whose it is.
import { html, useState, useEffect } from '../lib.js';
import { t } from '../i18n.js';
import { get, api } from '../api.js';
import { watch } from '../live.js';
import { dateTime, money } from '../format.js';
import { StatusBadge, Notice, errorText, useFocusHeading } from '../ui.js';

const PAGE = 25;

export function Servers({ user }) {
  const [items, setItems] = useState(null);
  const [next, setNext] = useState(null);
  const [error, setError] = useState(null);
  const [more, setMore] = useState(false);
  const [alerts, setAlerts] = useState({});
  const heading = useFocusHeading([]);
  const admin = user.role === 'admin';
  const [flash, setFlash] = useState(consumeFlash);

  const page = async (after) => {
    const q = `/api/server?limit=${PAGE}${after ? `&after=${after}` : ''}`;
    const r = await api('GET', q);
    const cursor = r.headers.get('X-Next-Cursor');
    return { list: Array.isArray(r.data) ? r.data : [], cursor: cursor || null };
  };

  useEffect(() => {
    let gone = false;
    page(null).then(({ list, cursor }) => {
      if (gone) return;
      setItems(list);
      setNext(cursor);
    }).catch((e) => { if (!gone) setError(e); });
    return () => { gone = true; };
  }, []);

  const loadMore = async () => {
    setMore(true);
    try {
      const { list, cursor } = await page(next);
      setItems((cur) => [...cur, ...list.filter((s) => !cur.some((c) => c.id === s.id))]);
      setNext(cursor);
    } catch (e) {
      setError(e);
    }
    setMore(false);
  };

  // one record again (its address arrives when it starts; a resync after a reconnect)
  const reload = async (id) => {
    try {
      const s = await get(`/api/server/${id}`);
      setItems((cur) => cur && cur.map((c) => (c.id === id ? { ...c, ...s } : c)));
    } catch (e) {
      if (e.status === 404) setItems((cur) => cur && cur.filter((c) => c.id !== id));
    }
  };

  const ids = items ? items.map((s) => s.id).join(',') : '';
  useEffect(() => {
    if (!items) return undefined;
    const offs = items.map((s) => watch(s.id, (event, d) => {
      if (event === 'server-status') {
        setItems((cur) => cur && cur.map((c) => (c.id === s.id ? { ...c, status: d.status } : c)));
        reload(s.id);
      } else if (event === 'server-deleted') {
        setItems((cur) => cur && cur.filter((c) => c.id !== s.id));
      } else if (event === 'server-alerts') {
        setAlerts((cur) => ({ ...cur, [s.id]: Array.isArray(d.alerts) ? d.alerts.length : 0 }));
      } else if (event === 'resync') {
        reload(s.id);
      }
    }));
    return () => offs.forEach((off) => off());
  }, [ids]);

  return html`<section class="page">
    <div class="page-head">
      <h1 ref=${heading} tabindex="-1">${admin ? t('servers.titleAdmin') : t('servers.title')}</h1>
      <a class="button primary" href="#/servers/new">${t('servers.new')}</a>
    </div>
    ${flash && html`<${Notice} kind="ok" onClose=${() => setFlash(null)}>${flash}</${Notice}>`}
    ${error && html`<${Notice} kind="error">${errorText(error)}</${Notice}>`}
    ${!items && !error && html`<p class="muted" aria-busy="true">${t('common.loading')}</p>`}
    ${items && items.length === 0 && html`<div class="empty">
      <p>${t('servers.empty')}</p>
      <a class="button primary" href="#/servers/new">${t('servers.orderFirst')}</a>
    </div>`}
    ${items && items.length > 0 && html`<table class="servers" data-testid="servers">
      <caption class="visually-hidden">${admin ? t('servers.titleAdmin') : t('servers.title')}</caption>
      <thead><tr>
        <th scope="col">${t('servers.name')}</th>
        <th scope="col">${t('servers.status')}</th>
        <th scope="col">${t('servers.ip')}</th>
        <th scope="col">${t('servers.os')}</th>
        <th scope="col">${t('servers.tariff')}</th>
        ${admin && html`<th scope="col">${t('servers.owner')}</th>`}
        <th scope="col">${t('servers.created')}</th>
      </tr></thead>
      <tbody>${items.map((s) => html`<tr key=${s.id} data-server=${s.id}>
        <th scope="row" data-label=${t('servers.name')}>
          <a href=${`#/servers/${s.id}`}>${s.name || `#${s.id}`}</a>
          ${alerts[s.id] > 0 && html` <span class="chip warn"
              title=${t('servers.alertsHint')}>${t('servers.alerts', { count: alerts[s.id] })}</span>`}
        </th>
        <td data-label=${t('servers.status')}><${StatusBadge} status=${s.status} /></td>
        <td data-label=${t('servers.ip')} class="mono">${s.ipAddress || t('common.none')}</td>
        <td data-label=${t('servers.os')}>${s.os?.name || t('common.none')}</td>
        <td data-label=${t('servers.tariff')}>${s.tariff?.name || t('common.none')}${
          s.tariff?.price != null ? html` <span class="muted">${t('tariff.perMonth',
            { price: money(s.tariff.price) })}</span>` : ''}</td>
        ${admin && html`<td data-label=${t('servers.owner')}>${t('servers.user', { id: s.userId })}</td>`}
        <td data-label=${t('servers.created')}>${dateTime(s.createdAt)}</td>
      </tr>`)}</tbody>
    </table>`}
    ${next && html`<p class="more"><button type="button" onClick=${loadMore} disabled=${more}
        data-testid="more">${more ? t('common.loading') : t('servers.more')}</button></p>`}
  </section>`;
}

// a message for the list, left by a screen that navigated here (a deleted server)
let pendingFlash = null;
export function flashToList(text) {
  pendingFlash = text;
}
function consumeFlash() {
  const f = pendingFlash;
  pendingFlash = null;
  return f;
}
