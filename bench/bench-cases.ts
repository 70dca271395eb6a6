import type { RssMethod } from './bench-options.js';
import { BENCH_KEY_BASE, STATE_SCHEMA, cleanDesktop, resetSide, settle, withClient } from './bench-databases.js';
import type { BenchDatabases } from './bench-databases.js';
import { rawCopy } from './raw-copy.js';
import { runBisync } from './spawn-bisync.js';
import type { BisyncRun, StepSummary } from './spawn-bisync.js';
import { editCloudRows, editDesktopRows, insertMobileRows } from './workload.js';

export const CASES = [
  'baseline: raw COPY pipe',
  'full forward (empty cloud)',
  'no-change re-run, forward',
  'no-change re-run, reverse',
  'incremental reverse (1% new mobile rows)',
  'incremental forward (1% desktop rows edited)',
  'edits: owner, full forward (cursor tables\' steps)',
  'edits: owner, full forward (whole process)',
  'edits: both, full forward (cursor tables\' steps)',
  'edits: both, 1% edited on each side, both ways',
  'edits: both, no-change re-run, both ways',
] as const;
export type CaseName = (typeof CASES)[number];

/**
 * The cases of issue 10 on the tables synced with `edits: both` (in the worked example: jobshead and
 * jobtasks, cursor columns on the cloud): their rows are the base's business, so they are not
 * compared with the raw COPY pipe but with each other.
 */
export const THREE_WAY_CASES: readonly CaseName[] = CASES.filter((c) => c.startsWith('edits: '));

/** One measurement of one case. */
export interface CaseSample {
  /** Rows copied (baseline) or read from F by bisync. */
  rows: number;
  seconds: number;
  /** Peak RSS of the bisync process (null for the baseline, which runs inside the bench). */
  peakRssKiB: number | null;
  written: number;
}

export interface CaseContext {
  dbs: BenchDatabases;
  configFile: string;
  /** Config names synced, in foreign-key order; `reverseTables` are those with a reverse step. */
  tables: readonly string[];
  reverseTables: readonly string[];
  allTables: boolean;
  /** The chosen tables the config syncs with `edits: both` (the issue-10 cases run when there are any). */
  threeWayTables: readonly string[];
  /** The same config with `edits: owner` on those tables: the same-run reference for the base's cost. */
  ownerConfigFile?: string;
  concurrency: number;
  rss: RssMethod;
  /** Rows on the desktop after loading (what full forward and the baseline must move). */
  desktopRows: number;
  log: (line: string) => void;
}

export interface RunResult {
  samples: Map<CaseName, CaseSample>;
  /** The steps of the full forward run, for the per-table breakdown. */
  fullForwardSteps: StepSummary[];
  /** Size of the cloud's base after the full forward with `edits: both` (null when no case ran). */
  base: BaseSize | null;
}

export interface BaseSize {
  /** pg_total_relation_size of `<state>.base` (heap, index, TOAST). */
  bytes: number;
  rows: number;
}

/** A failed correctness check: reported loudly, and the bench exits 1. */
export class CheckFailure extends Error {}

const MOBILE_SEED_KEYS = BENCH_KEY_BASE;
const MOBILE_NEW_KEYS = BENCH_KEY_BASE + 500_000_000;

function check(condition: boolean, message: string): void {
  if (!condition) throw new CheckFailure(message);
}

/** Where `applyOnce` connects, when not straight to the bench's databases (e.g. through the WAN proxy). */
export interface ApplyRoute {
  desktopUrl: string;
  cloudUrl: string;
  configFile: string;
}

/** `bisync apply` as a user runs it, failing loudly unless every step succeeded. */
export async function applyOnce(ctx: CaseContext, direction: 'forward' | 'reverse' | 'both', route?: ApplyRoute): Promise<BisyncRun> {
  const tables = direction === 'reverse' ? ctx.reverseTables : ctx.tables;
  const args = ['apply', '--config', route?.configFile ?? ctx.configFile, '--direction', direction, '--concurrency', String(ctx.concurrency), '--json'];
  if (!ctx.allTables) args.push('--table', ...tables);
  const env = { ...process.env, DESKTOP_DATABASE_URL: route?.desktopUrl ?? ctx.dbs.desktopUrl, CLOUD_DATABASE_URL: route?.cloudUrl ?? ctx.dbs.cloudUrl };
  const run = await runBisync(args, env, ctx.rss);
  const bad = run.steps.filter((s) => s.status !== 'succeeded' || s.rejected > 0);
  check(
    run.exitCode === 0 && run.steps.length > 0 && bad.length === 0,
    `bisync apply --direction ${direction} exited ${run.exitCode}` +
      (bad.length > 0 ? `; steps not clean: ${bad.map((s) => `${s.table} ${s.status} (rejected ${s.rejected}${s.error === undefined ? '' : `: ${s.error}`})`).join('; ')}` : '') +
      (run.steps.length === 0 ? `; no report on stdout. stderr:\n${run.stderrTail}` : ''),
  );
  return run;
}

const sample = (run: BisyncRun): CaseSample => ({ rows: run.read, seconds: run.seconds, peakRssKiB: run.peakRssKiB, written: run.written });

/** Only the steps of `tables` in a run, timed by the steps' own durations (the rest of the run excluded). */
function stepsSample(run: BisyncRun, tables: readonly string[]): CaseSample {
  const steps = run.steps.filter((s) => tables.includes(s.table));
  return {
    rows: steps.reduce((n, s) => n + s.read, 0),
    seconds: steps.reduce((n, s) => n + s.durationMs, 0) / 1000,
    peakRssKiB: run.peakRssKiB,
    written: steps.reduce((n, s) => n + s.inserted + s.updated + s.deleted, 0),
  };
}

/** `<state>.base` of one database as its row versions (ctid and xmin): any row written changes it. */
async function baseVersions(url: string): Promise<string> {
  return await withClient(url, async (c) => {
    const r = await c.query<{ n: number; v: string }>(
      `SELECT count(*)::int AS n, md5(coalesce(string_agg(ctid::text || ':' || xmin::text, ',' ORDER BY ctid), '')) AS v FROM ${STATE_SCHEMA}.base`,
    );
    return `${r.rows[0]?.n ?? 0} rows, versions ${r.rows[0]?.v ?? ''}`;
  });
}

async function baseSize(url: string): Promise<BaseSize> {
  return await withClient(url, async (c) => {
    const r = await c.query<{ bytes: string; n: string }>(`SELECT pg_total_relation_size('${STATE_SCHEMA}.base') AS bytes, (SELECT count(*) FROM ${STATE_SCHEMA}.base) AS n`);
    return { bytes: Number(r.rows[0]?.bytes ?? 0), rows: Number(r.rows[0]?.n ?? 0) };
  });
}

/** Empty cloud, desktop as loaded (bench rows and bisync state removed). */
export async function freshTargets(ctx: CaseContext): Promise<void> {
  await resetSide(ctx.dbs.cloudUrl, 'cloud');
  await cleanDesktop(ctx.dbs.desktopUrl, ctx.tables);
  await settle([ctx.dbs.desktopUrl, ctx.dbs.cloudUrl]);
}

/**
 * One run of every case, in the order a user meets them: the baseline and full forward each into
 * fresh, empty targets; then, on the synced pair, re-runs with nothing changed, and the incremental
 * runs. Throws CheckFailure when a correctness check fails (rows lost, or a no-change run wrote).
 */
export async function runAllCases(ctx: CaseContext): Promise<RunResult> {
  const out = new Map<CaseName, CaseSample>();
  const note = (name: CaseName, s: CaseSample): void => {
    out.set(name, s);
    ctx.log(`  ${name}: ${s.rows} rows in ${s.seconds.toFixed(2)} s${s.peakRssKiB === null ? '' : `, peak RSS ${(s.peakRssKiB / 1024).toFixed(0)} MiB`}, ${s.written} written`);
  };

  await freshTargets(ctx);
  const base = await rawCopy(ctx.dbs.desktopUrl, ctx.dbs.cloudUrl, ctx.tables);
  check(base.rows === ctx.desktopRows, `the raw COPY moved ${base.rows} rows, the desktop holds ${ctx.desktopRows}`);
  note('baseline: raw COPY pipe', { rows: base.rows, seconds: base.seconds, peakRssKiB: null, written: base.rows });

  const threeWay = ctx.threeWayTables.length > 0 && ctx.ownerConfigFile !== undefined ? ctx.threeWayTables : [];
  if (threeWay.length > 0 && ctx.ownerConfigFile !== undefined) {
    // The same full forward with `edits: owner` on the edits: both tables: the reference for what the
    // base costs, in the same run, into an equally empty cloud.
    await freshTargets(ctx);
    const owner = await applyOnce(ctx, 'forward', { desktopUrl: ctx.dbs.desktopUrl, cloudUrl: ctx.dbs.cloudUrl, configFile: ctx.ownerConfigFile });
    check(owner.written === ctx.desktopRows, `full forward with edits: owner wrote ${owner.written} rows into the empty cloud, the desktop holds ${ctx.desktopRows}`);
    note('edits: owner, full forward (cursor tables\' steps)', stepsSample(owner, threeWay));
    // The same, as a user sees it: the whole process (all tables, Node start-up), against 'full forward (empty cloud)'.
    note('edits: owner, full forward (whole process)', sample(owner));
  }

  await freshTargets(ctx);
  const full = await applyOnce(ctx, 'forward');
  check(full.written === ctx.desktopRows, `full forward wrote ${full.written} rows into the empty cloud, the desktop holds ${ctx.desktopRows}`);
  note('full forward (empty cloud)', sample(full));
  let baseRows: BaseSize | null = null;
  if (threeWay.length > 0) {
    const both = stepsSample(full, threeWay);
    note('edits: both, full forward (cursor tables\' steps)', both);
    baseRows = await baseSize(ctx.dbs.cloudUrl);
    check(baseRows.rows === both.written, `the cloud's base holds ${baseRows.rows} rows after full forward wrote ${both.written} rows of ${threeWay.join(', ')}`);
  }

  // Mobile activity an hour ago, already synced down: gives reverse a watermark and the cloud rows
  // the desktop does not own, so the re-runs below see both kinds of rows. Not timed.
  const seeded = ctx.reverseTables.length > 0 ? await insertMobileRows(ctx.dbs.cloudUrl, ctx.reverseTables, MOBILE_SEED_KEYS, 3600) : 0;
  if (ctx.reverseTables.length > 0) {
    const primed = await applyOnce(ctx, 'reverse');
    check(primed.written === seeded, `reverse wrote ${primed.written} of the ${seeded} mobile rows inserted on the cloud`);
  }

  await settle([ctx.dbs.desktopUrl, ctx.dbs.cloudUrl]);
  const againForward = await applyOnce(ctx, 'forward');
  check(againForward.written === 0, `NO-CHANGE RE-RUN WROTE ROWS: forward re-run with nothing changed wrote ${againForward.written} rows (must be 0)`);
  note('no-change re-run, forward', sample(againForward));

  if (ctx.reverseTables.length > 0) {
    await settle([ctx.dbs.desktopUrl, ctx.dbs.cloudUrl]);
    const againReverse = await applyOnce(ctx, 'reverse');
    check(againReverse.written === 0, `NO-CHANGE RE-RUN WROTE ROWS: reverse re-run with nothing changed wrote ${againReverse.written} rows (must be 0)`);
    note('no-change re-run, reverse', sample(againReverse));

    const inserted = await insertMobileRows(ctx.dbs.cloudUrl, ctx.reverseTables, MOBILE_NEW_KEYS, 0);
    await settle([ctx.dbs.desktopUrl, ctx.dbs.cloudUrl]);
    const incReverse = await applyOnce(ctx, 'reverse');
    check(incReverse.written === inserted, `incremental reverse wrote ${incReverse.written} rows; ${inserted} mobile rows were inserted`);
    check(incReverse.steps.every((s) => s.mode === 'incremental'), `incremental reverse ran steps in full mode: ${incReverse.steps.filter((s) => s.mode !== 'incremental').map((s) => s.table).join(', ')}`);
    note('incremental reverse (1% new mobile rows)', sample(incReverse));
  }

  const edited = await editDesktopRows(ctx.dbs.desktopUrl, ctx.tables);
  await settle([ctx.dbs.desktopUrl, ctx.dbs.cloudUrl]);
  const incForward = await applyOnce(ctx, 'forward');
  check(incForward.written === edited, `incremental forward wrote ${incForward.written} rows; ${edited} desktop rows were edited`);
  note('incremental forward (1% desktop rows edited)', sample(incForward));

  if (threeWay.length > 0) {
    // Issue 10: 1% of the edits: both tables' rows edited on each side (different rows: no conflict),
    // then apply both ways: each edit travels, nothing else is written.
    const only: CaseContext = { ...ctx, tables: threeWay, reverseTables: threeWay, allTables: false };
    const onDesktop = await editDesktopRows(ctx.dbs.desktopUrl, threeWay);
    const onCloud = await editCloudRows(ctx.dbs.cloudUrl, threeWay);
    await settle([ctx.dbs.desktopUrl, ctx.dbs.cloudUrl]);
    const edited = await applyOnce(only, 'both');
    check(
      edited.written === onDesktop + onCloud,
      `edits: both, 1% edited on each side: apply both ways wrote ${edited.written} rows; ${onDesktop} desktop and ${onCloud} cloud rows were edited`,
    );
    note('edits: both, 1% edited on each side, both ways', sample(edited));

    // Nothing changed since: zero rows written on both sides, the base's copies included.
    await settle([ctx.dbs.desktopUrl, ctx.dbs.cloudUrl]);
    const before = [await baseVersions(ctx.dbs.desktopUrl), await baseVersions(ctx.dbs.cloudUrl)];
    const again = await applyOnce(only, 'both');
    const after = [await baseVersions(ctx.dbs.desktopUrl), await baseVersions(ctx.dbs.cloudUrl)];
    check(again.written === 0, `NO-CHANGE RE-RUN WROTE ROWS: edits: both, apply both ways with nothing changed wrote ${again.written} rows (must be 0)`);
    check(
      before[0] === after[0] && before[1] === after[1],
      `NO-CHANGE RE-RUN WROTE BASE ROWS: edits: both, apply both ways with nothing changed wrote to ${STATE_SCHEMA}.base ` +
        `(desktop: ${before[0]} → ${after[0]}; cloud: ${before[1]} → ${after[1]})`,
    );
    note('edits: both, no-change re-run, both ways', sample(again));
  }
  return { samples: out, fullForwardSteps: full.steps, base: baseRows };
}
