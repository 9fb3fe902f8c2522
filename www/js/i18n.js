// Every text of the panel comes from one catalogue per language (www/i18n/*.js).
import en from '../i18n/en.js';
import ru from '../i18n/ru.js';

const CATALOGUES = { ru, en };
const KEY = 'ospab.lang';
export const LANGUAGES = Object.keys(CATALOGUES);

let lang = 'en';
const listeners = new Set();

export function initI18n(settings) {
  setLanguage(chooseLanguage(settings.defaultLanguage), false);
}

// The saved choice, else the browser's first language we have, else the provider's default.
function chooseLanguage(fallback) {
  let saved = null;
  try {
    saved = localStorage.getItem(KEY);
  } catch {
    // storage disabled
  }
  if (CATALOGUES[saved]) return saved;
  for (const l of navigator.languages || [navigator.language]) {
    const base = String(l || '').toLowerCase().split('-')[0];
    if (CATALOGUES[base]) return base;
  }
  return CATALOGUES[fallback] ? fallback : 'en';
}

export function setLanguage(l, save = true) {
  if (!CATALOGUES[l]) return;
  lang = l;
  document.documentElement.lang = l;
  if (save) {
    try {
      localStorage.setItem(KEY, l);
    } catch {
      // storage disabled: the choice lasts for this page
    }
  }
  listeners.forEach((f) => f(l));
}

export const language = () => lang;

export function onLanguage(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

// The BCP 47 locale for Intl: the browser's own variant of the chosen language (en-US,
// en-GB, ...) when it has one, else the language itself.
export function locale() {
  for (const l of navigator.languages || [navigator.language]) {
    if (String(l || '').toLowerCase().split('-')[0] === lang) return l;
  }
  return lang;
}

// t('servers.alerts', {count: 3}): a string with {name} placeholders, or plural forms
// ({one, few, many, other}) chosen by params.count with the language's plural rules.
export function t(key, params) {
  let v = CATALOGUES[lang][key];
  if (v === undefined) v = CATALOGUES.en[key];
  if (v === undefined) return key;
  if (typeof v === 'object') {
    const form = new Intl.PluralRules(locale()).select(Number(params?.count ?? 0));
    v = v[form] ?? v.other;
  }
  if (!params) return v;
  return v.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m));
}

// a key exists (API values like a status or an action may be new to this catalogue)
export const has = (key) => key in CATALOGUES[lang] || key in CATALOGUES.en;
