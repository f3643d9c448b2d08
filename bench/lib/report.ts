/**
 * The results of one `npm run bench`: medians over repetitions, ratios to each scenario's
 * baseline, and three files under bench/results/: latest.json (everything, histograms included,
 * encoded so they can be merged again), latest.md (the table for the README) and latest.svg (p99
 * latency against throughput, one point per server, drawn by hand).
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { HttpLoadResult } from './http-load.js';
import type { WsLoadResult } from './ws-load.js';
import { mergeEncoded, type LatencySummary } from './latency.js';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  os: string;
}

export interface Settings {
  durationS: number;
  warmupS: number;
  connections: number;
  reps: number;
}

export interface RepMeasurement {
  rep: number;
  /** Place of this target in the rep's order (the order rotates between reps). */
  position: number;
  /** Server CPU time over the measured seconds, in % of one core (over 100% means several threads busy). */
  serverCpuPercent?: number;
  result: HttpLoadResult | WsLoadResult;
}

export interface TargetMedians {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  p99_9: number;
  max: number;
  errors: number;
  serverCpuPercent?: number;
}

export interface TargetResult {
  name: string;
  server: string;
  serverDescription: string;
  status: 'measured' | 'skipped' | 'failed';
  reason?: string;
  reps: RepMeasurement[];
  median?: TargetMedians;
  /** All reps' latencies merged into one histogram. */
  merged?: LatencySummary;
  /** Median req/s over the baseline's median req/s. */
  ratio?: number;
  /** In an added-latency scenario: median p50 and p99 minus the baseline's, in µs. */
  addedUs?: { p50: number; p99: number };
}

export interface ScenarioResult {
  name: string;
  description: string;
  baseline: string;
  /** Connections of this scenario when it fixes them (else the run's). */
  connections?: number;
  /** `added-latency`: compared by the p50 added over the baseline, not by req/s. */
  compare?: 'throughput' | 'added-latency';
  targets: TargetResult[];
}

export interface BenchRun {
  command: string;
  startedAt: string;
  finishedAt: string;
  machine: Machine;
  settings: Settings;
  scenarios: ScenarioResult[];
}

export function describeMachine(): Machine {
  const cpuList = cpus();
  return {
    cpu: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    os: `${platform()} ${release()}`,
  };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  // middle < length, and middle ≥ 1 whenever the length is even.
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Fills medians, merged latencies and ratios from the raw repetitions. */
export function summarizeScenario(scenario: ScenarioResult): ScenarioResult {
  for (const target of scenario.targets) {
    if (target.status !== 'measured' || target.reps.length === 0) continue;
    const results = target.reps.map((r) => r.result);
    const cpu = target.reps.map((r) => r.serverCpuPercent).filter((v): v is number => v !== undefined);
    target.median = {
      rps: median(results.map((r) => r.rps)),
      p50: median(results.map((r) => r.latency.p50)),
      p90: median(results.map((r) => r.latency.p90)),
      p99: median(results.map((r) => r.latency.p99)),
      p99_9: median(results.map((r) => r.latency.p99_9)),
      max: median(results.map((r) => r.latency.max)),
      errors: median(results.map((r) => r.errors.total)),
      ...(cpu.length > 0 ? { serverCpuPercent: Math.round(median(cpu)) } : {}),
    };
    target.merged = mergeEncoded(results.map((r) => r.latencyHistogram));
  }
  const baseline = scenario.targets.find((t) => t.name === scenario.baseline)?.median;
  for (const target of scenario.targets) {
    if (target.median && baseline && baseline.rps > 0) target.ratio = Math.round((target.median.rps / baseline.rps) * 100) / 100;
    if (scenario.compare === 'added-latency' && target.median && baseline) {
      target.addedUs = { p50: Math.round((target.median.p50 - baseline.p50) * 1000), p99: Math.round((target.median.p99 - baseline.p99) * 1000) };
    }
  }
  return scenario;
}

export function writeResults(run: BenchRun, directory: string): { json: string; md: string; svg: string } {
  mkdirSync(directory, { recursive: true });
  const paths = { json: join(directory, 'latest.json'), md: join(directory, 'latest.md'), svg: join(directory, 'latest.svg') };
  writeAtomically(paths.json, JSON.stringify(run, null, 2) + '\n');
  writeAtomically(paths.md, renderMarkdown(run));
  writeAtomically(paths.svg, renderSvg(run));
  return paths;
}

function writeAtomically(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2));

function errorText(target: TargetResult): string {
  if (!target.median) return '';
  const byStatus = new Map<string, number>();
  for (const rep of target.reps) {
    for (const [status, count] of Object.entries(rep.result.errors.byStatus)) byStatus.set(status, (byStatus.get(status) ?? 0) + count);
  }
  const detail = [...byStatus].map(([status, count]) => `${status}: ${count}`).join(', ');
  return detail ? `${integer.format(target.median.errors)} (${detail})` : integer.format(target.median.errors);
}

export function renderMarkdown(run: BenchRun): string {
  const { machine, settings } = run;
  const lines = [
    '# Switchyard benchmark',
    '',
    `${run.startedAt} · ${machine.cpu} · ${machine.cores} cores · ${machine.memoryGiB} GiB · Node ${machine.node} · ${machine.os}`,
    '',
    `Command: \`${run.command}\``,
    '',
    `Each row: ${settings.connections} connections, ${settings.warmupS} s warm-up then ${settings.durationS} s measured, ` +
      `median of ${settings.reps} repetition${settings.reps === 1 ? '' : 's'} (servers alternate between repetitions). ` +
      'Load generator and servers share this machine; all traffic on 127.0.0.1. ' +
      'Compare ratios within one run, not absolute numbers across machines.',
    '',
    '| scenario | server | req/s | ratio | p50 ms | p99 ms | errors | server CPU |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  const notes: string[] = [];
  for (const scenario of run.scenarios) {
    for (const target of scenario.targets) {
      const name = target.name === scenario.baseline ? `${target.name} (baseline)` : target.name;
      if (!target.median) {
        lines.push(`| ${scenario.name} | ${name} | ${target.status} | | | | | |`);
        notes.push(`- ${scenario.name} / ${target.name} ${target.status}: ${oneLine(target.reason ?? 'no measurement')}`);
        continue;
      }
      const m = target.median;
      const ratio = target.addedUs
        ? `${target.addedUs.p50 >= 0 ? '+' : ''}${target.addedUs.p50} µs p50`
        : target.ratio === undefined
          ? '—'
          : `${target.ratio.toFixed(2)}×`;
      const cpu = m.serverCpuPercent === undefined ? '—' : `${m.serverCpuPercent}%`;
      const latency = scenario.compare === 'added-latency' ? (value: number): string => value.toFixed(3) : ms;
      lines.push(`| ${scenario.name} | ${name} | ${integer.format(m.rps)} | ${ratio} | ${latency(m.p50)} | ${latency(m.p99)} | ${errorText(target)} | ${cpu} |`);
    }
  }
  lines.push(
    '',
    'Scenarios:',
    ...run.scenarios.map((s) => `- **${s.name}**: ${s.description}${s.connections === undefined ? '' : ` (${s.connections} connection${s.connections === 1 ? '' : 's'})`}; ratios against *${s.baseline}*.`),
  );
  if (notes.length > 0) lines.push('', 'Not measured:', ...notes);
  lines.push('', `Server CPU: the server process's CPU time over the measured seconds, in % of one core. Raw data: latest.json; chart: latest.svg.`, '');
  return lines.join('\n');
}

function oneLine(text: string): string {
  return text.split('\n')[0]!.replace(/\|/g, '\\|');
}

/* ---------------------------------------------------------------- SVG chart */

const PANEL_WIDTH = 760;
const PANEL_HEIGHT = 300;
const MARGIN = { left: 70, right: 170, top: 40, bottom: 50 };
const PALETTE = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22', '#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd'];

function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / magnitude;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * magnitude;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function renderSvg(run: BenchRun): string {
  const panels = run.scenarios.filter((s) => s.targets.some((t) => t.median));
  const colors = new Map<string, string>();
  for (const target of panels.flatMap((s) => s.targets)) {
    if (!colors.has(target.name)) colors.set(target.name, PALETTE[colors.size % PALETTE.length]!);
  }
  const height = Math.max(1, panels.length) * PANEL_HEIGHT + 30;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${PANEL_WIDTH}" height="${height}" viewBox="0 0 ${PANEL_WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${PANEL_WIDTH / 2}" y="${height - 10}" text-anchor="middle" fill="#666">${escapeXml(`${run.machine.cpu}, ${run.machine.cores} cores, Node ${run.machine.node}, ${run.startedAt.slice(0, 10)}; large dot = median, small = one repetition`)}</text>`,
  ];
  if (panels.length === 0) parts.push(`<text x="20" y="40">no measurements</text>`);
  panels.forEach((scenario, index) => parts.push(renderPanel(scenario, index * PANEL_HEIGHT, colors)));
  parts.push('</svg>', '');
  return parts.join('\n');
}

function renderPanel(scenario: ScenarioResult, top: number, colors: Map<string, string>): string {
  const measured = scenario.targets.filter((t) => t.median);
  const points = measured.flatMap((t) => t.reps.map((r) => ({ rps: r.result.rps, p99: r.result.latency.p99 })));
  const xStep = niceStep(Math.max(1, ...points.map((p) => p.rps)) * 1.05, 5);
  const yStep = niceStep(Math.max(0.001, ...points.map((p) => p.p99)) * 1.1, 4);
  const xMax = xStep * Math.ceil((Math.max(1, ...points.map((p) => p.rps)) * 1.05) / xStep);
  const yMax = yStep * Math.ceil((Math.max(0.001, ...points.map((p) => p.p99)) * 1.1) / yStep);
  const plotW = PANEL_WIDTH - MARGIN.left - MARGIN.right;
  const plotH = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (rps: number): number => MARGIN.left + (rps / xMax) * plotW;
  const y = (p99: number): number => top + MARGIN.top + plotH - (p99 / yMax) * plotH;
  const out: string[] = [
    `<text x="${MARGIN.left}" y="${top + 24}" font-size="14" font-weight="bold">${escapeXml(`${scenario.name}: p99 latency against throughput`)}</text>`,
    `<rect x="${MARGIN.left}" y="${top + MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
  ];
  for (let v = 0; v <= xMax + xStep / 2; v += xStep) {
    out.push(`<line x1="${x(v)}" y1="${top + MARGIN.top}" x2="${x(v)}" y2="${top + MARGIN.top + plotH}" stroke="#eee"/>`);
    out.push(`<text x="${x(v)}" y="${top + MARGIN.top + plotH + 16}" text-anchor="middle">${integer.format(v)}</text>`);
  }
  for (let v = 0; v <= yMax + yStep / 2; v += yStep) {
    out.push(`<line x1="${MARGIN.left}" y1="${y(v)}" x2="${MARGIN.left + plotW}" y2="${y(v)}" stroke="#eee"/>`);
    out.push(`<text x="${MARGIN.left - 6}" y="${y(v) + 4}" text-anchor="end">${Number(v.toPrecision(6))}</text>`);
  }
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${top + PANEL_HEIGHT - 12}" text-anchor="middle">requests per second</text>`);
  out.push(`<text transform="translate(18 ${top + MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">p99 latency (ms)</text>`);
  measured.forEach((target, i) => {
    const color = colors.get(target.name)!;
    for (const rep of target.reps) out.push(`<circle cx="${x(rep.result.rps).toFixed(1)}" cy="${y(rep.result.latency.p99).toFixed(1)}" r="2.5" fill="${color}" fill-opacity="0.45"/>`);
    const m = target.median!;
    out.push(`<circle cx="${x(m.rps).toFixed(1)}" cy="${y(m.p99).toFixed(1)}" r="6" fill="${color}" stroke="#fff"><title>${escapeXml(`${target.name}: ${integer.format(m.rps)} req/s, p99 ${ms(m.p99)} ms`)}</title></circle>`);
    const legendY = top + MARGIN.top + 8 + i * 18;
    out.push(`<circle cx="${MARGIN.left + plotW + 18}" cy="${legendY}" r="5" fill="${color}"/>`);
    out.push(`<text x="${MARGIN.left + plotW + 28}" y="${legendY + 4}">${escapeXml(target.name)}</text>`);
  });
  return out.join('\n');
}
