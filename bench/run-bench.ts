/**
 * `npm run bench`: measure bisync against a raw COPY pipe between the same two databases, on the
 * sample dataset, in one run on one machine (SPEC §5). See docs/benchmarks.md for what each case
 * does and the numbers recorded.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { CommanderError } from 'commander';
import { isMap, isSeq, parseDocument } from 'yaml';
import { loadConfig } from '../src/config/load-config.js';
import { packageFile } from '../src/package-root.js';
import { CheckFailure, runAllCases } from './bench-cases.js';
import type { BaseSize, CaseContext, CaseName, CaseSample } from './bench-cases.js';
import { parseBenchOptions, redactUrls } from './bench-options.js';
import type { BenchOptions } from './bench-options.js';
import { STATE_SCHEMA, countRows, loadDesktop, openBenchDatabases, serverVersion } from './bench-databases.js';
import type { BenchDatabases } from './bench-databases.js';
import { memoryCheck } from './memory-check.js';
import { openLinks, runWanCases, wanTable } from './wan-cases.js';
import type { WanPath, WanSample } from './wan-cases.js';
import { casesTable, cpuFacts, factsSection, gitCommit, loadAverage, pairedRatio, runsTable, stepsTable, summarize } from './report.js';
import type { CaseSummary, MachineFacts } from './report.js';
import { describeRssMethod, measureStartup, resolveRssMethod } from './spawn-bisync.js';
import type { StepSummary } from './spawn-bisync.js';

// The package root: where sync.config.yaml is (dist/ has a package.json of its own, so not that).
const ROOT = dirname(packageFile('sync.config.yaml', import.meta.url));
const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** Run the bench with `args` (without node and script); resolves to the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseBenchOptions(args);
  } catch (error) {
    if (error instanceof CommanderError) return 0;
    log(`error: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  const rss = resolveRssMethod(options.rss);
  const started = { at: new Date().toISOString(), load: loadAverage() };
  let dbs: BenchDatabases;
  try {
    dbs = await openBenchDatabases({ desktop: options.urlDesktop, cloud: options.urlCloud }, log);
  } catch (error) {
    log(`error: ${redactUrls(error instanceof Error ? error.message : String(error))}`);
    return 2;
  }
  const stop = (): void => {
    log('interrupted: stopping the servers');
    void dbs.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const configFile = packageFile('sync.config.yaml', import.meta.url);
    const config = await loadConfig(configFile, { ...process.env, DESKTOP_DATABASE_URL: dbs.desktopUrl, CLOUD_DATABASE_URL: dbs.cloudUrl });
    const reverse = new Set(config.tables.filter((t) => t.directions.includes('reverse')).map((t) => t.name));
    const ctx: Omit<CaseContext, 'desktopRows'> = {
      dbs,
      configFile,
      tables: options.tables,
      reverseTables: options.tables.filter((t) => reverse.has(t)),
      allTables: options.tables.length === config.tables.length,
      threeWayTables: options.tables.filter((t) => config.tables.some((c) => c.name === t && c.edits === 'both')),
      concurrency: options.concurrency,
      rss,
      log,
    };
    const factsAt = async (): Promise<MachineFacts> => await machineFacts(options, dbs, describeRssMethod(rss), started);
    if (options.memoryCheck) return await runMemoryCheck(options, ctx, factsAt);
    return options.wan ? await runWan(options, ctx, factsAt) : await runCases(options, ctx, factsAt);
  } catch (error) {
    if (!(error instanceof CheckFailure)) throw error;
    log(`\nBENCH CHECK FAILED: ${error.message}`);
    return 1;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await dbs.close();
  }
}

async function runCases(options: BenchOptions, ctx: Omit<CaseContext, 'desktopRows'>, factsAt: () => Promise<MachineFacts>): Promise<number> {
  log(`loading the sample at SF=${options.sf} on the desktop…`);
  await loadDesktop(ctx.dbs.desktopUrl, options.sf);
  const desktopRows = await countRows(ctx.dbs.desktopUrl, 'desktop', options.tables);
  const ownerConfigFile = ctx.threeWayTables.length > 0 ? ownerVariant(ctx.configFile) : undefined;
  const samples = new Map<CaseName, CaseSample[]>();
  let steps: StepSummary[] = [];
  const bases: BaseSize[] = [];
  try {
    for (let run = 1; run <= options.runs; run++) {
      log(`run ${run}/${options.runs} (SF=${options.sf}, ${desktopRows} rows, concurrency ${options.concurrency})`);
      const result = await runAllCases({ ...ctx, desktopRows, ownerConfigFile });
      for (const [name, s] of result.samples) samples.set(name, [...(samples.get(name) ?? []), s]);
      steps = result.fullForwardSteps;
      if (result.base !== null) bases.push(result.base);
    }
  } finally {
    // The bench leaves nothing behind (README): not even its edits: owner copy of the config.
    if (ownerConfigFile !== undefined) rmSync(dirname(ownerConfigFile), { recursive: true, force: true });
  }
  const facts = await factsAt();
  const summaries = summarize(samples);
  const table = casesTable(summaries, options.runs);
  const targets = targetLines(summaries, pairedRatio(samples, 'full forward (empty cloud)'), options.sf);
  const title = `## SF=${options.sf}, --concurrency ${options.concurrency}, ${options.runs} run${options.runs === 1 ? '' : 's'}`;
  const document = [
    title,
    factsSection(facts),
    table,
    '### Targets (SPEC §5)',
    targets,
    ...(ctx.threeWayTables.length > 0 ? [`### edits: both on ${ctx.threeWayTables.join(', ')} (issue 10)`, threeWayLines(samples, bases)] : []),
    '### Seconds of each run',
    runsTable(samples, options.runs),
    `### Full forward by table (run ${options.runs})`,
    stepsTable(steps),
  ].join('\n\n');
  const threeWay = ctx.threeWayTables.length > 0 ? [threeWayLines(samples, bases)] : [];
  process.stdout.write(`${[title, factsSection(facts), table, targets, ...threeWay].join('\n\n')}\n`);
  writeResult(options.out, document);
  return 0;
}

async function runWan(options: BenchOptions, ctx: Omit<CaseContext, 'desktopRows'>, factsAt: () => Promise<MachineFacts>): Promise<number> {
  log(`loading the sample at SF=${options.sf} on the desktop…`);
  await loadDesktop(ctx.dbs.desktopUrl, options.sf);
  const desktopRows = await countRows(ctx.dbs.desktopUrl, 'desktop', options.tables);
  const shape = { rttMs: options.rttMs, bitsPerSecond: options.mbit * 1e6 };
  const links = await openLinks(ctx, shape);
  const samples: WanSample[] = [];
  const paths = wanPaths(ctx.configFile);
  try {
    for (let run = 1; run <= options.runs; run++) {
      for (const path of paths) {
        log(`run ${run}/${options.runs}, path "${path.name}" (SF=${options.sf}, ${desktopRows} rows, concurrency ${options.concurrency}, ${linkLabel(options)})`);
        samples.push(...(await runWanCases({ ...ctx, desktopRows }, links, path)));
      }
    }
  } finally {
    await links.close();
    // The variants' config copies (the worked example itself is the user's file).
    for (const path of paths) if (path.configFile !== ctx.configFile) rmSync(dirname(path.configFile), { recursive: true, force: true });
  }
  const facts = await factsAt();
  const title = `## WAN: SF=${options.sf}, cloud behind ${linkLabel(options)}, --concurrency ${options.concurrency}, ${options.runs} run${options.runs === 1 ? '' : 's'}`;
  const table = wanTable(samples);
  const document = [title, factsSection(facts, false), table].join('\n\n');
  process.stdout.write(`${document}\n`);
  writeResult(options.out, document);
  return 0;
}

const linkLabel = (options: BenchOptions): string =>
  `${options.rttMs} ms round trip, ${Number.isFinite(options.mbit) ? `${options.mbit} Mbit/s` : 'unlimited bandwidth'}`;

/**
 * The paths compared in one WAN run: the first is the baseline (every desktop row read every run:
 * the worked example with `defaults.compare: full`), then the worked example as it is (checksum-first,
 * SPEC §8), then the same with `timestamps: { desktop: xmin }`.
 */
function wanPaths(configFile: string): WanPath[] {
  const variant = (name: string, path: readonly string[], value: string): string => {
    const doc = parseDocument(readFileSync(configFile, 'utf8'));
    doc.setIn(path, value);
    const file = join(mkdtempSync(join(tmpdir(), `bisync-bench-${name}-`)), 'sync.config.yaml');
    writeFileSync(file, doc.toString());
    return file;
  };
  return [
    { name: 'full read', configFile: variant('full', ['defaults', 'compare'], 'full') },
    { name: 'checksum-first', configFile },
    { name: 'desktop: xmin', configFile: variant('xmin', ['defaults', 'timestamps', 'desktop'], 'xmin') },
  ];
}

/** The config with `edits: owner` (and no conflict policy) wherever it says `edits: both`. */
function ownerVariant(configFile: string): string {
  const doc = parseDocument(readFileSync(configFile, 'utf8'));
  const tables = doc.get('tables');
  if (isSeq(tables)) {
    for (const item of tables.items) {
      if (isMap(item) && item.get('edits') === 'both') {
        item.set('edits', 'owner');
        item.delete('conflicts');
      }
    }
  }
  const file = join(mkdtempSync(join(tmpdir(), 'bisync-bench-owner-')), 'sync.config.yaml');
  writeFileSync(file, doc.toString());
  return file;
}

/**
 * Issue 10: what maintaining the base costs (full-forward rows/s of the edits: both tables against
 * the same steps with edits: owner, in the same run), the no-change and 1% checks, the base's size.
 */
function threeWayLines(samples: ReadonlyMap<CaseName, readonly CaseSample[]>, bases: readonly BaseSize[]): string {
  const lines: string[] = [];
  const owner = samples.get('edits: owner, full forward (cursor tables\' steps)') ?? [];
  const both = samples.get('edits: both, full forward (cursor tables\' steps)') ?? [];
  const ratio = pairedRatio(samples, 'edits: both, full forward (cursor tables\' steps)', 'edits: owner, full forward (cursor tables\' steps)');
  if (ratio !== null) {
    const rate = (list: readonly CaseSample[]): string => list.map((s) => Math.round(s.rows / s.seconds).toLocaleString('en-US')).join(' / ');
    lines.push(
      `- maintaining the base costs ≤ 25% of the full-forward rows/s without it (≥ 0.75× edits: owner, same steps, same run): ` +
        `${ratio.toFixed(2)}× (median of the per-run ratios; rows/s owner ${rate(owner)}, both ${rate(both)}) — ${ratio >= 0.75 ? 'met' : 'NOT met'}`,
    );
  }
  const whole = pairedRatio(samples, 'full forward (empty cloud)', 'edits: owner, full forward (whole process)');
  if (whole !== null) {
    lines.push(
      `- a second, looser reading (not the target's measure, which is the line above): the whole full forward process, every table, Node start-up included, ` +
        `with edits: both on these tables against the same with edits: owner: ${whole.toFixed(2)}× (median of the per-run ratios)`,
    );
  }
  const again = samples.get('edits: both, no-change re-run, both ways');
  if (again !== undefined) {
    lines.push(`- a no-change re-run (both ways) writes 0 rows on both sides, base included: ${again.map((s) => s.written).join(', ')} rows written, no base row written — met (checked on every run; the bench fails otherwise)`);
  }
  const edited = samples.get('edits: both, 1% edited on each side, both ways');
  if (edited !== undefined) lines.push(`- 1% edited on each side: apply both ways wrote exactly the rows edited (${edited.map((s) => s.written).join(', ')}) — checked on every run`);
  const last = bases.at(-1);
  if (last !== undefined && last.rows > 0) {
    lines.push(
      `- the base's size per row (cloud copy after the full forward; pg_total_relation_size of \`${STATE_SCHEMA}.base\`, heap + primary key): ` +
        `${Math.round(last.bytes / last.rows)} bytes (${last.bytes.toLocaleString('en-US')} bytes / ${last.rows.toLocaleString('en-US')} rows)`,
    );
  }
  return lines.join('\n');
}

async function runMemoryCheck(options: BenchOptions, ctx: Omit<CaseContext, 'desktopRows'>, factsAt: () => Promise<MachineFacts>): Promise<number> {
  const result = await memoryCheck(ctx, options.memoryScales, options.runs);
  const facts = await factsAt();
  const document = [`## Memory check: full forward at SF=${options.memoryScales.join(', ')}, --concurrency ${options.concurrency}`, factsSection(facts, false), result.table, result.verdict].join('\n\n');
  process.stdout.write(`${document}\n`);
  writeResult(options.out, document);
  return result.passed ? 0 : 1;
}

function targetLines(summaries: readonly CaseSummary[], paired: number | null, sf: number): string {
  const byName = new Map(summaries.map((s) => [s.name, s]));
  const full = byName.get('full forward (empty cloud)');
  const lines: string[] = [];
  if (full?.ratio !== null && full?.ratio !== undefined) {
    lines.push(
      `- full forward ≥ 0.7× the raw COPY pipe's rows/s${sf < 10 ? ` (the target is stated for SF=10; this run is SF=${sf})` : ''}: ` +
        `${full.ratio.toFixed(2)}× (ratio of the medians) — ${full.ratio >= 0.7 ? 'met' : 'NOT met'}` +
        (paired === null ? '' : `; median of the per-run ratios ${paired.toFixed(2)}× — ${paired >= 0.7 ? 'met' : 'NOT met'}`),
    );
  }
  for (const name of ['no-change re-run, forward', 'no-change re-run, reverse'] as const) {
    const s = byName.get(name);
    if (s !== undefined) lines.push(`- ${name} writes 0 rows: ${s.written.join(', ')} written — ${s.written.every((w) => w === 0) ? 'met' : 'NOT met'} (checked on every run; the bench fails otherwise)`);
  }
  const again = byName.get('no-change re-run, reverse');
  const inc = byName.get('incremental reverse (1% new mobile rows)');
  if (again !== undefined && inc !== undefined && full !== undefined) {
    lines.push(
      `- reverse on cursor tables costs time in proportion to the rows changed: the no-change reverse read ${again.rows.toLocaleString('en-US')} rows ` +
        `(the mobile rows still inside the 5 s lookback) and the incremental reverse ${inc.rows.toLocaleString('en-US')}, against ${full.rows.toLocaleString('en-US')} rows synced`,
    );
  }
  lines.push('- peak memory flat in table size: see `npm run bench -- --memory-check`');
  return lines.join('\n');
}

async function machineFacts(options: BenchOptions, dbs: BenchDatabases, rssMethod: string, started: { at: string; load: string }): Promise<MachineFacts> {
  const [desktopVersion, cloudVersion] = await Promise.all([serverVersion(dbs.desktopUrl), serverVersion(dbs.cloudUrl)]);
  const viaNpm = process.env.npm_lifecycle_event === 'bench';
  const command = `${viaNpm ? 'npm run bench --' : 'node dist/bench/run-bench.js'} ${options.argv.join(' ')}`.trim();
  return {
    ...cpuFacts(),
    node: process.version,
    postgres: desktopVersion === cloudVersion ? desktopVersion : `${desktopVersion} (desktop), ${cloudVersion} (cloud)`,
    servers: dbs.description,
    commit: gitCommit(ROOT),
    rssMethod,
    startupSeconds: await measureStartup(),
    loadStart: started.load,
    loadEnd: loadAverage(),
    startedAt: started.at,
    commandLine: command,
  };
}

function writeResult(out: string, document: string): void {
  const file = out.startsWith('bench/results/') ? resolve(ROOT, out) : resolve(out);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${document}\n`);
  log(`\nwritten to ${file}`);
}

const code = await main(process.argv.slice(2)).catch((error: unknown) => {
  // One line, like bisync's own errors: a stack trace helps nobody who runs the bench.
  log(`error: ${redactUrls((error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '')}`);
  return 1;
});
// Exit explicitly with the code: a stray handle must not keep the process alive after the report.
process.exit(code);
