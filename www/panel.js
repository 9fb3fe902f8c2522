// The customer panel's entry point (docs/panel.md): plain ES modules, no build step.
import { html, render } from './js/lib.js';
import { loadSettings } from './js/settings.js';
import { initI18n } from './js/i18n.js';
import { App } from './js/app.js';

const settings = await loadSettings();
initI18n(settings);
render(html`<${App} settings=${settings} />`, document.getElementById('app'));
