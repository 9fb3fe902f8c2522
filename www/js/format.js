// Numbers, sizes, dates and durations for people, in the chosen language's conventions.
import { t, locale } from './i18n.js';
import { getSettings } from './settings.js';

const KiB = 1024;
const MiB = KiB * 1024;
const GiB = MiB * 1024;
const TiB = GiB * 1024;

const number = (v, digits = 1) =>
  new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(v);

export const integer = (v) => number(v, 0);

// bytes -> "512 MiB", "1,5 ГиБ"
export function bytes(n) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return t('common.none');
  n = Number(n);
  const a = Math.abs(n);
  if (a >= TiB) return t('unit.tib', { n: number(n / TiB) });
  if (a >= GiB) return t('unit.gib', { n: number(n / GiB) });
  if (a >= MiB || a === 0) return t('unit.mib', { n: number(n / MiB) });
  return t('unit.kib', { n: number(n / KiB) });
}

export const megabytes = (mb) => bytes(Number(mb) * MiB);
export const gigabytes = (gb) => bytes(Number(gb) * GiB);

// bytes per second
export const rate = (bps) => t('unit.perSecond', { value: bytes(bps) });

// 0..100 -> "42,5 %"
export function percent(v) {
  if (v === null || v === undefined || !Number.isFinite(Number(v))) return t('common.none');
  return new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 1 })
    .format(Number(v) / 100);
}

function toDate(v) {
  if (v instanceof Date) return v;
  if (typeof v === 'number') return new Date(v < 1e12 ? v * 1000 : v);   // seconds or ms
  return new Date(v);
}

export function dateTime(v) {
  if (v === null || v === undefined || v === '') return t('common.none');
  const d = toDate(v);
  if (Number.isNaN(d.getTime())) return t('common.none');
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' })
    .format(d);
}

// for graph axes: what a timeframe's ticks need
export function axisTime(seconds, timeframe) {
  const d = new Date(seconds * 1000);
  const opts = {
    hour: { hour: '2-digit', minute: '2-digit' },
    day: { hour: '2-digit', minute: '2-digit' },
    week: { weekday: 'short', day: 'numeric' },
    month: { day: 'numeric', month: 'short' },
    year: { month: 'short', year: 'numeric' },
  }[timeframe] || { hour: '2-digit', minute: '2-digit' };
  return new Intl.DateTimeFormat(locale(), opts).format(d);
}

export function money(price) {
  if (price === null || price === undefined) return t('common.none');
  const currency = getSettings().currency || 'RUB';
  try {
    return new Intl.NumberFormat(locale(), { style: 'currency', currency,
                                            maximumFractionDigits: 0 }).format(price);
  } catch {
    return number(price, 2);
  }
}

// "in 5 minutes" / "через 5 минут": how long to wait (Retry-After), in words
export function inTime(seconds) {
  const s = Math.max(1, Math.ceil(Number(seconds) || 0));
  const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: 'always' });
  if (s < 60) return rtf.format(s, 'second');
  if (s < 3600) return rtf.format(Math.ceil(s / 60), 'minute');
  return rtf.format(Math.ceil(s / 3600), 'hour');
}

// seconds of uptime -> "3 d 4 h" / "3 д 4 ч"
export function uptime(seconds) {
  let s = Math.max(0, Math.floor(Number(seconds) || 0));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  if (d) return t('unit.daysHours', { d, h });
  if (h) return t('unit.hoursMinutes', { h, m });
  return t('unit.minutes', { m });
}
