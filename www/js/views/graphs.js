// CPU, memory, disk and network over an hour .. a year (GET /api/server/{id}/status
// ?timeframe=, Proxmox's rrd data), extended by the live server-stats samples.
import { html, useState, useEffect, useRef, useMemo } from '../lib.js';
import { t, language } from '../i18n.js';
import { api } from '../api.js';
import { bytes, rate, percent, axisTime } from '../format.js';
import { Notice, errorText } from '../ui.js';

export const TIMEFRAMES = ['hour', 'day', 'week', 'month', 'year'];

const METRICS = [
  { key: 'cpu', fmt: (v) => percent(v), yMax: 100,
    series: [{ label: 'graph.cpu', pick: (p) => (p.cpu == null ? null : p.cpu * 100) }] },
  { key: 'memory', fmt: (v) => bytes(v),
    series: [{ label: 'graph.used', pick: (p) => (p.mem == null ? null : p.mem) }] },
  { key: 'disk', fmt: (v) => bytes(v),
    series: [{ label: 'graph.used', pick: (p) => (p.disk == null ? null : p.disk) }] },
  { key: 'network', fmt: (v) => rate(v),
    series: [{ label: 'graph.in', pick: (p) => (p.netin == null ? null : p.netin) },
             { label: 'graph.out', pick: (p) => (p.netout == null ? null : p.netout) }] },
];

// a server-stats sample as an rrd point (network counters become rates)
export function livePoint(data, seconds, prev) {
  const p = { time: seconds, cpu: data.cpu, mem: data.memory?.used, disk: data.disk?.used };
  if (prev && seconds > prev.time && data.network && prev.network) {
    const dt = seconds - prev.time;
    const din = data.network.in - prev.network.in;
    const dout = data.network.out - prev.network.out;
    if (din >= 0 && dout >= 0) {
      p.netin = din / dt;
      p.netout = dout / dt;
    }
  }
  return p;
}

let chartsModule = null;
const loadCharts = () => (chartsModule ||= import('../charts.js'));

export function Graphs({ id, livePoints, onCurrent }) {
  const [timeframe, setTimeframe] = useState('hour');
  const [loaded, setLoaded] = useState({ tf: null, points: null });   // points of which period
  const [error, setError] = useState(null);
  const [ready, setReady] = useState(false);
  const boxes = useRef({});
  const charts = useRef({});
  const tf = useRef(timeframe);
  tf.current = timeframe;

  useEffect(() => {
    let gone = false;
    setError(null);
    api('GET', `/api/server/${id}/status?timeframe=${timeframe}`).then((r) => {
      if (gone) return;
      const data = r.data?.stats?.data || {};
      setLoaded({ tf: timeframe, points: Array.isArray(data.rrdData)
        ? data.rrdData.filter((p) => p && p.time) : [] });
      onCurrent?.(r.data);
    }).catch((e) => { if (!gone) { setError(e); setLoaded({ tf: timeframe, points: [] }); } });
    return () => { gone = true; };
  }, [id, timeframe]);

  // the charts, made again when the language changes (labels and number formats)
  const lang = language();
  useEffect(() => {
    let gone = false;
    loadCharts().then(({ createChart }) => {
      if (gone) return;
      for (const m of METRICS) {
        charts.current[m.key] = createChart(boxes.current[m.key], {
          series: m.series.map((s) => ({ label: t(s.label) })),
          fmtY: m.fmt, yMax: m.yMax, fmtX: (s) => axisTime(s, tf.current),
          timeLabel: t('graph.time'),
        });
      }
      setReady(true);
    });
    return () => {
      gone = true;
      for (const c of Object.values(charts.current)) c.destroy();
      charts.current = {};
      setReady(false);
    };
  }, [lang]);

  // rrd points, then the live samples newer than the last of them
  const points = loaded.tf === timeframe ? loaded.points : null;
  const all = useMemo(() => (points ? merge(points, livePoints) : null), [points, livePoints]);
  useEffect(() => {
    if (!ready || !all) return;
    for (const m of METRICS) {
      const data = [all.map((p) => p.time), ...m.series.map((s) => all.map((p) => s.pick(p)))];
      charts.current[m.key]?.setData(data);
    }
  }, [ready, all]);

  const count = (m) => (all ? all.filter((p) => m.series[0].pick(p) != null).length : 0);
  const last = (m) => {
    for (let i = (all || []).length - 1; i >= 0; i -= 1) {
      const v = m.series[0].pick(all[i]);
      if (v != null) return m.fmt(v);
    }
    return t('common.none');
  };

  return html`<section class="panel graphs" aria-labelledby="graphs-h">
    <div class="panel-head">
      <h2 id="graphs-h">${t('graph.title')}</h2>
      <div class="segmented" role="group" aria-label=${t('graph.timeframe')}>
        ${TIMEFRAMES.map((x) => html`<button type="button" aria-pressed=${x === timeframe}
            data-timeframe=${x} onClick=${() => setTimeframe(x)}>${t(`graph.tf.${x}`)}</button>`)}
      </div>
    </div>
    ${error && html`<${Notice} kind="error">${errorText(error)}</${Notice}>`}
    <div class="chart-grid">
      ${METRICS.map((m) => html`<figure class="chart" data-metric=${m.key}
          data-timeframe=${loaded.tf || ''} data-points=${ready && all ? count(m) : ''}
          aria-busy=${!ready || !all}>
        <figcaption>${t(`graph.${m.key}`)}
          <span class="visually-hidden">: ${t('graph.latest', { value: last(m) })}</span></figcaption>
        <div class="chart-box" ref=${(el) => { if (el) boxes.current[m.key] = el; }}></div>
      </figure>`)}
    </div>
  </section>`;
}

// rrd points end a minute or more ago; the live samples continue them
function merge(points, live) {
  const end = points.length ? points[points.length - 1].time : 0;
  return points.concat((live || []).filter((p) => p.time > end));
}
