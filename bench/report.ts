import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { CASES, THREE_WAY_CASES } from './bench-cases.js';
import type { CaseName, CaseSample } from './bench-cases.js';
import type { StepSummary } from './spawn-bisync.js';

/** The facts a reader needs to judge the numbers. */
export interface MachineFacts {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  postgres: string;
  servers: string;
  commit: string;
  rssMethod: string;
  startupSeconds: number;
  loadStart: string;
  loadEnd: string;
  startedAt: string;
  commandLine: string;
}

/** "1.23 / 1.10 / 0.95" (1, 5 and 15 minutes) for `cores` cores. */
export function loadAverage(): string {
  return loadavg().map((l) => l.toFixed(2)).join(' / ');
}

/** The short commit the bench ran on, with "+ uncommitted changes" when the tree is dirty. */
export function gitCommit(cwd: string): string {
  try {
    const run = (args: string[]): string => execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const commit = run(['rev-parse', '--short', 'HEAD']);
    const dirty = run(['status', '--porcelain', '--untracked-files=no', '--', 'src', 'templates', 'bin', 'test/fixtures']) !== '';
    return dirty ? `${commit} + uncommitted changes in src/templates` : commit;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

export function cpuFacts(): { cpu: string; cores: number; memoryGiB: number } {
  const list = cpus();
  return { cpu: list[0]?.model.trim() ?? 'unknown', cores: list.length, memoryGiB: totalmem() / 1024 ** 3 };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const mib = (kib: number): string => (kib / 1024).toFixed(0);

/** What the main table shows for one case, aggregated over runs. */
export interface CaseSummary {
  name: CaseName;
  rows: number;
  seconds: number;
  rowsPerSecond: number;
  ratio: number | null;
  peakRssKiB: number | null;
  written: number[];
}

/** Median seconds and rows; peak RSS as the largest of the runs; rows written as every distinct value. */
export function summarize(samples: ReadonlyMap<CaseName, readonly CaseSample[]>): CaseSummary[] {
  const out: CaseSummary[] = [];
  let baseline: number | null = null;
  for (const name of CASES) {
    const list = samples.get(name);
    if (list === undefined || list.length === 0) continue;
    const rows = median(list.map((s) => s.rows));
    const seconds = median(list.map((s) => s.seconds));
    const rowsPerSecond = rows / seconds;
    if (name === 'baseline: raw COPY pipe') baseline = rowsPerSecond;
    const rss = list.map((s) => s.peakRssKiB).filter((r): r is number => r !== null);
    out.push({
      name,
      rows,
      seconds,
      rowsPerSecond,
      // The edits: both cases time a few tables' steps: their reference is each other, not the raw COPY.
      ratio: baseline === null || THREE_WAY_CASES.includes(name) ? null : rowsPerSecond / baseline,
      peakRssKiB: rss.length === 0 ? null : Math.max(...rss),
      written: [...new Set(list.map((s) => s.written))].sort((a, b) => a - b),
    });
  }
  return out;
}

/**
 * The median over runs of one case's rows/s against the reference's (the baseline by default) in
 * the same run: steadier than the ratio of medians when the machine's load drifts between runs.
 */
export function pairedRatio(samples: ReadonlyMap<CaseName, readonly CaseSample[]>, name: CaseName, reference: CaseName = 'baseline: raw COPY pipe'): number | null {
  const base = samples.get(reference) ?? [];
  const other = samples.get(name) ?? [];
  const ratios = other.flatMap((s, i) => {
    const b = base[i];
    return b === undefined ? [] : [s.rows / s.seconds / (b.rows / b.seconds)];
  });
  return ratios.length === 0 ? null : median(ratios);
}

/** The one markdown table of the bench. */
export function casesTable(summaries: readonly CaseSummary[], runs: number): string {
  const lines = [
    `| case | rows | seconds (median of ${runs}) | rows/s | × baseline rows/s | peak RSS MiB | rows written |`,
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const s of summaries) {
    lines.push(
      `| ${s.name} | ${int(s.rows)} | ${s.seconds.toFixed(2)} | ${int(s.rowsPerSecond)} | ${s.ratio === null ? '—' : `${s.ratio.toFixed(2)}×`} | ${s.peakRssKiB === null ? '—' : mib(s.peakRssKiB)} | ${s.written.map(int).join(' – ')} |`,
    );
  }
  return lines.join('\n');
}

/** Seconds of every run of every case, so the noise is visible. */
export function runsTable(samples: ReadonlyMap<CaseName, readonly CaseSample[]>, runs: number): string {
  const header = Array.from({ length: runs }, (_v, i) => `run ${i + 1}`);
  const lines = [`| case | ${header.join(' | ')} |`, `|---|${header.map(() => '---:').join('|')}|`];
  for (const name of CASES) {
    const list = samples.get(name);
    if (list === undefined) continue;
    lines.push(`| ${name} | ${list.map((s) => s.seconds.toFixed(2)).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Full forward per table (one run): with --concurrency > 1 the step times overlap. */
export function stepsTable(steps: readonly StepSummary[]): string {
  const lines = ['| table | rows | step seconds | rows/s |', '|---|---:|---:|---:|'];
  for (const s of steps) lines.push(`| ${s.table} | ${int(s.read)} | ${(s.durationMs / 1000).toFixed(2)} | ${s.durationMs > 0 ? int(s.read / (s.durationMs / 1000)) : '—'} |`);
  return lines.join('\n');
}

/** The header every result file starts with. */
export function factsSection(facts: MachineFacts, withBaseline = true): string {
  return [
    `- command: \`${facts.commandLine}\``,
    `- started: ${facts.startedAt}; commit ${facts.commit}`,
    `- machine: ${facts.cpu}, ${facts.cores} cores, ${facts.memoryGiB.toFixed(1)} GiB memory; Node ${facts.node}; PostgreSQL ${facts.postgres}`,
    `- servers: ${facts.servers}`,
    `- load average (1 / 5 / 15 min) at start: ${facts.loadStart}; at end: ${facts.loadEnd} — on ${facts.cores} cores; other work on the machine shows up here and in the timings`,
    `- peak RSS: ${facts.rssMethod}`,
    `- bisync times are wall time of the whole process as a user runs it, including Node start-up and config/catalog reading (\`bisync --version\` alone: ${facts.startupSeconds.toFixed(2)} s)${withBaseline ? '; the baseline is timed from opening its two connections to closing them' : ''}`,
  ].join('\n');
}
