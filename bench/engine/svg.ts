/** Small SVG charts drawn as text, so the HTML report needs no script and no network. */

export interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
  dashed?: boolean;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Tick positions and labels for x, when the default numeric ticks do not fit (the spectrum). */
  xTicks?: Array<[number, string]>;
}

const W = 620;
const H = 300;
const M = { left: 64, right: 16, top: 36, bottom: 44 };

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceTicks(min: number, max: number, count = 5): number[] {
  if (max <= min) return [min];
  const raw = (max - min) / count;
  const step = 10 ** Math.floor(Math.log10(raw));
  const unit = [1, 2, 5, 10].map((m) => m * step).find((s) => (max - min) / s <= count) ?? step * 10;
  const ticks: number[] = [];
  for (let v = Math.ceil(min / unit) * unit; v <= max + unit * 1e-9; v += unit) ticks.push(Math.round(v * 1e9) / 1e9);
  return ticks;
}

const label = (v: number): string => (Math.abs(v) >= 1000 ? `${Math.round(v / 100) / 10}k` : String(Math.round(v * 100) / 100));

export function lineChart(chart: LineChart): string {
  const all = chart.series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const xMin = xs.length ? Math.min(...xs) : 0;
  const xMax = xs.length ? Math.max(...xs, xMin + 1e-9) : 1;
  const yMax = ys.length ? Math.max(...ys) * 1.08 || 1 : 1;
  const px = (x: number): number => M.left + ((x - xMin) / (xMax - xMin || 1)) * (W - M.left - M.right);
  const py = (y: number): number => H - M.bottom - (y / yMax) * (H - M.top - M.bottom);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escape(chart.title)}">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${M.left}" y="20" font-size="14" font-weight="600">${escape(chart.title)}</text>`);
  for (const t of niceTicks(0, yMax)) {
    parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py(t)}" y2="${py(t)}" stroke="#eee"/>`);
    parts.push(`<text x="${M.left - 6}" y="${py(t) + 4}" font-size="11" text-anchor="end" fill="#555">${label(t)}</text>`);
  }
  const xTicks = chart.xTicks ?? niceTicks(xMin, xMax, 8).map((t): [number, string] => [t, label(t)]);
  for (const [t, text] of xTicks) {
    if (t < xMin - 1e-9 || t > xMax + 1e-9) continue;
    parts.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${H - M.bottom}" y2="${H - M.bottom + 4}" stroke="#555"/>`);
    parts.push(`<text x="${px(t)}" y="${H - M.bottom + 16}" font-size="11" text-anchor="middle" fill="#555">${escape(text)}</text>`);
  }
  parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#555"/>`);
  parts.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#555"/>`);
  parts.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - 8}" font-size="12" text-anchor="middle">${escape(chart.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${(M.top + H - M.bottom) / 2}) rotate(-90)" font-size="12" text-anchor="middle">${escape(chart.yLabel)}</text>`);
  chart.series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points.map(([x, y], j) => `${j ? 'L' : 'M'}${px(x).toFixed(1)} ${py(y).toFixed(1)}`).join('');
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    if (s.points.length === 1) parts.push(`<circle cx="${px(s.points[0]![0])}" cy="${py(s.points[0]![1])}" r="3" fill="${s.color}"/>`);
    const lx = W - M.right - 190;
    const ly = M.top + 4 + i * 16;
    parts.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    parts.push(`<text x="${lx + 24}" y="${ly + 4}" font-size="11">${escape(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

export function barChart(title: string, bars: Array<[string, number]>, color = '#c0392b'): string {
  const rowH = 24;
  const height = M.top + Math.max(1, bars.length) * rowH + 16;
  const max = Math.max(1, ...bars.map((b) => b[1]));
  const left = 150;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${height}" width="${W}" height="${height}" role="img" aria-label="${escape(title)}">`];
  parts.push(`<rect width="${W}" height="${height}" fill="#fff"/>`);
  parts.push(`<text x="16" y="20" font-size="14" font-weight="600">${escape(title)}</text>`);
  if (bars.length === 0) parts.push(`<text x="16" y="${M.top + 14}" font-size="12" fill="#2e7d32">no errors</text>`);
  bars.forEach(([name, value], i) => {
    const y = M.top + i * rowH;
    const w = (value / max) * (W - left - 90);
    parts.push(`<text x="${left - 8}" y="${y + 15}" font-size="12" text-anchor="end">${escape(name)}</text>`);
    parts.push(`<rect x="${left}" y="${y + 3}" width="${Math.max(1, w)}" height="16" fill="${color}"/>`);
    parts.push(`<text x="${left + w + 6}" y="${y + 15}" font-size="12">${value}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}
