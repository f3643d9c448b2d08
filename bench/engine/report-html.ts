/**
 * `--report out.html`: one self-contained page (inline SVG and CSS, no script, no network) with,
 * per run, latency over time, the percentile spectrum corrected vs uncorrected, throughput against
 * the schedule, and errors by kind; sweeps and searches add latency and throughput against rate.
 */
import type { BenchReport, LabeledRun } from './report.js';
import { renderRun } from './render-text.js';
import { barChart, lineChart } from './svg.js';

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The spectrum's x axis: -log10(1 - p), so 90, 99, 99.9 are evenly spaced. */
const nines = (p: number): number => -Math.log10(1 - Math.min(p, 99.999) / 100);
const SPECTRUM_TICKS: Array<[number, string]> = [0, 50, 90, 99, 99.9, 99.99, 99.999].map((p) => [nines(p), p === 99.999 ? 'max' : String(p)]);

const MAX_RUNS_DRAWN = 16;

function runSection(run: LabeledRun): string {
  const r = run.result;
  const latency = lineChart({
    title: 'Latency over time',
    xLabel: 'seconds since the start',
    yLabel: 'ms',
    series: [
      { name: 'p99 corrected', color: '#c0392b', points: r.timeline.map((t) => [t.second, t.p99]) },
      { name: 'p50 corrected', color: '#2471a3', points: r.timeline.map((t) => [t.second, t.p50]) },
      { name: 'p99 uncorrected', color: '#7f8c8d', dashed: true, points: r.timeline.map((t) => [t.second, t.p99Uncorrected]) },
    ],
  });
  const spectrum = lineChart({
    title: 'Percentile spectrum (corrected: from the intended send)',
    xLabel: 'percentile',
    yLabel: 'ms',
    xTicks: SPECTRUM_TICKS,
    series: [
      { name: 'corrected', color: '#c0392b', points: r.latency.spectrum.corrected.map(([p, ms]) => [nines(p), ms]) },
      { name: 'uncorrected', color: '#7f8c8d', dashed: true, points: r.latency.spectrum.uncorrected.map(([p, ms]) => [nines(p), ms]) },
    ],
  });
  const throughput = lineChart({
    title: r.mode === 'open' ? 'Throughput against the schedule' : 'Throughput',
    xLabel: 'seconds since the start',
    yLabel: 'requests per second',
    series: [
      ...(r.mode === 'open' ? [{ name: 'scheduled', color: '#95a5a6', dashed: true, points: r.timeline.map((t): [number, number] => [t.second, t.scheduled]) }] : []),
      { name: 'sent', color: '#2471a3', points: r.timeline.map((t) => [t.second, t.sent]) },
      { name: 'ok', color: '#27ae60', points: r.timeline.map((t) => [t.second, t.ok]) },
      { name: 'failed', color: '#c0392b', points: r.timeline.map((t) => [t.second, t.errors]) },
    ],
  });
  const errors = barChart('Errors by kind', Object.entries(r.errors.byKind).sort((a, b) => b[1] - a[1]));
  return `<section><h2>${escape(run.label)}</h2><pre>${escape(renderRun(run))}</pre><div class="charts">${latency}${spectrum}${throughput}${errors}</div></section>`;
}

function rateSection(report: BenchReport): string {
  const runs = report.runs.filter((r) => r.rate !== undefined).sort((a, b) => a.rate! - b.rate!);
  if (runs.length < 2) return '';
  const latency = lineChart({
    title: 'Latency against offered rate',
    xLabel: 'offered requests per second',
    yLabel: 'ms',
    series: [
      { name: 'p99 corrected', color: '#c0392b', points: runs.map((r) => [r.rate!, r.result.latency.corrected.p99]) },
      { name: 'p50 corrected', color: '#2471a3', points: runs.map((r) => [r.rate!, r.result.latency.corrected.p50]) },
      { name: 'p99 uncorrected', color: '#7f8c8d', dashed: true, points: runs.map((r) => [r.rate!, r.result.latency.uncorrected.p99]) },
    ],
  });
  const throughput = lineChart({
    title: 'Throughput against offered rate',
    xLabel: 'offered requests per second',
    yLabel: 'requests per second',
    series: [
      { name: 'ok', color: '#27ae60', points: runs.map((r) => [r.rate!, r.result.rates.throughput]) },
      ...(runs.some((r) => r.result.slo) ? [{ name: 'goodput', color: '#8e44ad', points: runs.map((r): [number, number] => [r.rate!, r.result.slo?.goodput ?? 0]) }] : []),
      { name: 'offered', color: '#95a5a6', dashed: true, points: runs.map((r): [number, number] => [r.rate!, r.rate!]) },
    ],
  });
  return `<section><h2>Against rate</h2><div class="charts">${latency}${throughput}</div></section>`;
}

export function renderHtml(report: BenchReport): string {
  const heading = report.kind === 'compare' && report.comparison ? `${report.comparison.a} vs ${report.comparison.b}` : (report.runs[0]?.result.url ?? '');
  const summary: string[] = [];
  if (report.search) summary.push(report.search.bestRate === null ? 'No rate tried met the SLO.' : `Highest rate meeting the SLO: <b>${report.search.bestRate} req/s</b>.`);
  if (report.comparison) {
    const c = report.comparison;
    const s = (x: { median: number; min: number; max: number }): string => `${x.median.toFixed(2)}× (${x.min.toFixed(2)}–${x.max.toFixed(2)})`;
    summary.push(`B/A over ${c.rounds} rounds: throughput ${s(c.ratios.throughput)}, p50 ${s(c.ratios.p50)}, p99 ${s(c.ratios.p99)}.`);
  }
  for (const w of report.warnings) summary.push(`<span class="warn">Warning: ${escape(w)}</span>`);
  const drawn = report.runs.slice(0, MAX_RUNS_DRAWN).map(runSection).join('');
  const more = report.runs.length > MAX_RUNS_DRAWN ? `<p>${report.runs.length - MAX_RUNS_DRAWN} more runs are in the JSON report.</p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>switchyard bench: ${escape(heading)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1340px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #ddd}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts svg{border:1px solid #e5e5e5}
.warn{color:#b03a2e}.meta{color:#666}
</style></head><body>
<h1>switchyard bench — ${escape(heading)}</h1>
<p class="meta">${escape(report.kind)} · started ${escape(report.startedAt)} · schema ${escape(report.schema)}</p>
${summary.map((s) => `<p>${s}</p>`).join('\n')}
${rateSection(report)}
${drawn}${more}
</body></html>
`;
}
