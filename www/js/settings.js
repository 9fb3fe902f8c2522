// The provider's branding: www/settings.json (docs/panel.md). Only these keys are read.
const DEFAULTS = {
  productName: 'ospab panel',
  logo: 'logo.svg',
  defaultLanguage: 'en',
  currency: 'RUB',
  supportUrl: '',
  colors: {},
};

// settings.json key -> CSS custom property of panel.css
const COLOR_VARS = {
  brand: '--brand',
  brandText: '--brand-text',
  background: '--bg',
  surface: '--surface',
  text: '--text',
};

let settings = { ...DEFAULTS };

export async function loadSettings() {
  try {
    const r = await fetch('settings.json', { cache: 'no-cache' });
    if (r.ok) {
      const s = await r.json();
      settings = { ...DEFAULTS, ...pick(s) };
    }
  } catch {
    // a missing or broken file: the defaults
  }
  applyColors(settings.colors);
  document.title = settings.productName;
  return settings;
}

export const getSettings = () => settings;

function pick(s) {
  const out = {};
  for (const k of Object.keys(DEFAULTS)) {
    if (s && typeof s[k] === typeof DEFAULTS[k]) out[k] = s[k];
  }
  return out;
}

function applyColors(colors) {
  const root = document.documentElement.style;
  for (const [k, v] of Object.entries(colors || {})) {
    // CSSOM, not a style attribute: allowed by the Content-Security-Policy
    if (COLOR_VARS[k] && typeof v === 'string' && CSS.supports('color', v)) {
      root.setProperty(COLOR_VARS[k], v);
    }
  }
}

// A link the provider gave: http(s) only, never javascript: and the like.
export function safeUrl(u) {
  try {
    const url = new URL(u, location.href);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : '';
  } catch {
    return '';
  }
}
