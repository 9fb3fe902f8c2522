// Hash routes (#/servers/5): the panel works under any Alias without server rewrites.
import { useState, useEffect } from './lib.js';

export function parse(hash) {
  const path = (hash || '').replace(/^#/, '') || '/';
  let m;
  if (path === '/' || path === '/servers') return { name: 'servers' };
  if (path === '/servers/new') return { name: 'create' };
  if ((m = path.match(/^\/servers\/(\d{1,15})$/))) return { name: 'server', id: Number(m[1]) };
  if (path === '/keys') return { name: 'keys' };
  if (path === '/login') return { name: 'login' };
  return { name: 'notfound' };
}

export function useRoute() {
  const [route, setRoute] = useState(() => parse(location.hash));
  useEffect(() => {
    const on = () => setRoute(parse(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function navigate(path) {
  if (location.hash !== `#${path}`) location.hash = path;
}
