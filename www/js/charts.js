// uPlot graphs, loaded only when a server page shows them (import() from views/graphs.js).
import uPlot from '../vendor/uPlot-1.6.32.esm.js';

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

// room for the longest tick label of the y axis ("1,5 ГиБ/с"), measured in the axis font
let measure = null;
function axisWidth(u, values, axisIdx, cycleNum) {
  if (!values || !values.length) return 50;
  measure ||= document.createElement('canvas').getContext('2d');
  const axis = u.axes[axisIdx];
  measure.font = (Array.isArray(axis.font) ? axis.font[0] : axis.font) || '12px sans-serif';
  const longest = Math.max(...values.map((v) => measure.measureText(String(v)).width));
  const size = Math.ceil(longest + 24);
  // uPlot asks again while it settles; keep the first answer unless it grew
  const prev = axis._size;
  return cycleNum > 1 && prev ? Math.max(prev, size) : size;
}

// el: the container; series: [{label, color}]; fmtY(v) for the axis; fmtX(seconds).
export function createChart(el, { series, fmtY, fmtX, yMax, timeLabel }) {
  const grid = { stroke: cssVar('--chart-grid', '#e3e7ef'), width: 1 };
  const axisColor = cssVar('--muted', '#5b6578');
  const opts = {
    width: Math.max(240, el.clientWidth || 300),
    height: 170,
    cursor: { drag: { x: false, y: false } },
    legend: { show: true, live: true },
    scales: { x: { time: true }, y: yMax ? { range: [0, yMax] } : { range: (u, min, max) => [0, Math.max(max || 0, 1) * 1.1] } },
    axes: [
      { stroke: axisColor, grid, ticks: grid, space: 90,
        values: (u, splits) => splits.map((s) => fmtX(s)) },
      { stroke: axisColor, grid, ticks: grid, size: axisWidth,
        values: (u, splits) => splits.map((s) => fmtY(s)) },
    ],
    series: [
      { label: timeLabel, value: (u, v) => (v == null ? '' : fmtX(v)) },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color || cssVar(`--chart-${i + 1}`, '#1f5fd1'),
        width: 2,
        fill: i === 0 ? cssVar('--chart-fill', 'rgba(31,95,209,0.08)') : undefined,
        spanGaps: false,
        points: { show: (u, si, i0, i1) => i1 - i0 < 40 },
        value: (u, v) => (v == null ? '—' : fmtY(v)),
      })),
    ],
  };
  const empty = [[], ...series.map(() => [])];
  const chart = new uPlot(opts, empty, el);
  const ro = new ResizeObserver(() => {
    const w = el.clientWidth;
    if (w > 0 && Math.abs(w - chart.width) > 2) chart.setSize({ width: w, height: 170 });
  });
  ro.observe(el);
  return {
    setData(data) {
      chart.setData(data);
    },
    destroy() {
      ro.disconnect();
      chart.destroy();
    },
  };
}
