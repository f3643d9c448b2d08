/** The text report `switchyard bench` prints when `--json` is not given. */
import type { BenchReport, LabeledRun, Spread } from './report.js';
import type { LatencySummary } from './histograms.js';
import { GENERATOR_BUSY, type RunResult } from './result.js';

// Made on first use: the first Intl.NumberFormat loads ICU's locale data (~25 ms of CPU), which a
// --json run never needs.
let integerFormat: Intl.NumberFormat | undefined;
const integer = { format: (n: number): string => (integerFormat ??= new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })).format(n) };
const fmt = (n: number): string => (n >= 100 ? integer.format(n) : String(Math.round(n * 100) / 100));

function percentiles(s: LatencySummary): string {
  return `p50 ${fmt(s.p50)}  p90 ${fmt(s.p90)}  p99 ${fmt(s.p99)}  p99.9 ${fmt(s.p99_9)}  max ${fmt(s.max)}`;
}

function describeLoad(r: RunResult): string {
  const transport = r.transport === 'ws' ? 'WebSocket' : 'HTTP';
  if (r.mode === 'closed') return `closed loop, ${r.connections.limit} connections, ${transport}, ${r.durationS} s`;
  return `open loop, ${fmt(r.offered!.rate)} req/s ${r.offered!.arrival}, ${transport}, up to ${r.connections.limit} connections (peak ${r.connections.peak}), ${r.durationS} s`;
}

export function renderRun(run: LabeledRun): string {
  const r = run.result;
  const kinds = Object.entries(r.errors.byKind).map(([k, n]) => `${k}: ${integer.format(n)}`);
  const lines = [
    `${run.label}: ${r.url}`,
    `  load          ${describeLoad(r)}`,
    `  requests      ${integer.format(r.requests.ok)} ok (${fmt(r.rates.throughput)}/s), sent ${integer.format(r.requests.sent)} (${fmt(r.rates.sent)}/s of ${fmt(r.rates.scheduled)}/s scheduled)`,
    `  errors        ${integer.format(r.errors.total)}${kinds.length ? `  (${kinds.join(', ')})` : ''}`,
    `  latency ms    corrected    ${percentiles(r.latency.corrected)}`,
    `                uncorrected  ${percentiles(r.latency.uncorrected)}`,
  ];
  const g = r.generator;
  lines.push(`  generator     ${fmt(g.cpuUsPerRequest)} µs CPU per request, ${Math.round(g.busy * 100)}% of ${g.threads} load thread${g.threads === 1 ? '' : 's'}`);
  if (g.busy >= GENERATOR_BUSY) lines.push(`                ! the generator was busy for the whole run: the rate may be its limit, not the target's (--workers, a lower -c, or another machine)`);
  if (r.mode === 'open') {
    lines.push(`  schedule      ${r.schedule.kept ? 'kept' : 'NOT KEPT'}; generator lag p50 ${fmt(r.schedule.lag.p50)} p99 ${fmt(r.schedule.lag.p99)} ms; send delay p99 ${fmt(r.schedule.sendDelay.p99)} ms`);
    for (const problem of r.schedule.problems) lines.push(`                ! ${problem}`);
  }
  if (r.stream) {
    const s = r.stream;
    lines.push(
      `  first chunk   ${percentiles(s.firstChunk)}`,
      `   (uncorr.)    ${percentiles(s.firstChunkUncorrected)}`,
      `  chunk gap     ${percentiles(s.chunkGap)}`,
      `  per stream    chunks p50 ${fmt(s.chunksPerStream.p50)} (min ${fmt(s.chunksPerStream.min)}, max ${fmt(s.chunksPerStream.max)}), bytes p50 ${fmt(s.bytesPerStream.p50)}`,
      `  streams       ${integer.format(s.complete)} complete, ${integer.format(s.truncated)} ended early, ${integer.format(s.errorFrame)} with an error frame`,
    );
  }
  if (r.slo) {
    const terms = r.slo.terms.map((t) => `${t.name} ${t.observedMs < 0 ? 'n/a' : fmt(t.observedMs)} ≤ ${fmt(t.limitMs)} ${t.met ? 'yes' : 'NO'}`);
    lines.push(`  slo           ${r.slo.met ? 'met' : 'MISSED'}: ${terms.join(', ')}; goodput ${fmt(r.slo.goodput)}/s`);
    for (const reason of r.slo.reasons) lines.push(`                ! ${reason}`);
  }
  return lines.join('\n') + '\n';
}

function table(report: BenchReport): string {
  const rows = report.runs.map((run) => {
    const r = run.result;
    return `| ${run.rate ?? run.label} | ${fmt(r.rates.sent)} | ${fmt(r.rates.throughput)} | ${fmt(r.latency.corrected.p50)} | ${fmt(r.latency.corrected.p99)} | ${fmt(r.latency.uncorrected.p99)} | ${r.errors.total} | ${r.slo ? `${r.slo.met ? 'met' : 'missed'}, goodput ${fmt(r.slo.goodput)}` : r.schedule.kept ? 'kept' : 'not kept'} |`;
  });
  return ['| rate | sent/s | ok/s | p50 ms | p99 ms | p99 uncorrected | errors | slo / schedule |', '|---:|---:|---:|---:|---:|---:|---:|---|', ...rows].join('\n') + '\n';
}

function spreadText(s: Spread): string {
  return `${s.median.toFixed(2)}× (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;
}

export function renderText(report: BenchReport): string {
  const parts: string[] = [];
  if (report.kind === 'sweep' || report.kind === 'search') parts.push(table(report));
  else parts.push(...report.runs.map(renderRun));
  if (report.search) {
    parts.push(report.search.bestRate === null ? 'no rate tried met the SLO\n' : `highest rate meeting the SLO: ${fmt(report.search.bestRate)} req/s\n`);
  }
  if (report.comparison) {
    const c = report.comparison;
    parts.push(
      [
        `B/A over ${c.rounds} rounds, median (min–max); A = ${c.a}, B = ${c.b}`,
        `  throughput    ${spreadText(c.ratios.throughput)}   A ${fmt(c.a_median.throughput)}/s, B ${fmt(c.b_median.throughput)}/s`,
        `  p50           ${spreadText(c.ratios.p50)}   A ${fmt(c.a_median.p50)} ms, B ${fmt(c.b_median.p50)} ms`,
        `  p99           ${spreadText(c.ratios.p99)}   A ${fmt(c.a_median.p99)} ms, B ${fmt(c.b_median.p99)} ms`,
      ].join('\n') + '\n',
    );
  }
  if (report.warnings.length > 0) parts.push(report.warnings.map((w) => `warning: ${w}\n`).join(''));
  return parts.join('\n');
}
