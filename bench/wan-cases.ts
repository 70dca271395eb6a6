import { LinkProxy } from '../test/proxy/link-proxy.js';
import type { LinkShape, LinkStats } from '../test/proxy/link-proxy.js';
import { applyOnce, CheckFailure, freshTargets } from './bench-cases.js';
import type { ApplyRoute, CaseContext } from './bench-cases.js';
import { BENCH_KEY_BASE, settle } from './bench-databases.js';
import type { BisyncRun } from './spawn-bisync.js';
import { editDesktopRows, insertMobileRows } from './workload.js';

export const WAN_CASES = [
  'first sync (empty cloud), apply',
  'no-change apply (both ways)',
  '0.1% desktop rows edited, forward',
  '1% desktop rows edited, forward',
  '1% new mobile rows, reverse',
] as const;
export type WanCaseName = (typeof WAN_CASES)[number];

/** A way of syncing the same data: the config a user would write for it. */
export interface WanPath {
  /** Shown in the report, e.g. "full read". */
  name: string;
  configFile: string;
}

/** One measurement of one case on one path. */
export interface WanSample {
  path: string;
  name: WanCaseName;
  seconds: number;
  read: number;
  written: number;
  cloud: LinkStats;
  desktop: LinkStats;
  /** The largest round trips (on both databases) any one step reported in `apply --json`, when it reports them. */
  stepRoundTrips: number | null;
}

const MOBILE_SEED_KEYS = BENCH_KEY_BASE + 100_000_000;
const MOBILE_NEW_KEYS = BENCH_KEY_BASE + 600_000_000;

function check(condition: boolean, message: string): void {
  if (!condition) throw new CheckFailure(message);
}

/** The proxies a WAN run goes through: the cloud far away, the desktop beside bisync (counted only). */
export interface WanLinks {
  cloud: LinkProxy;
  desktop: LinkProxy;
  close(): Promise<void>;
}

export async function openLinks(ctx: Pick<CaseContext, 'dbs'>, shape: LinkShape): Promise<WanLinks> {
  const cloud = await LinkProxy.start(ctx.dbs.cloudUrl, shape);
  const desktop = await LinkProxy.start(ctx.dbs.desktopUrl, { rttMs: 0, bitsPerSecond: Infinity });
  return {
    cloud,
    desktop,
    close: async () => {
      await Promise.all([cloud.stop(), desktop.stop()]);
    },
  };
}

/**
 * Every WAN case on one path, in the order a user meets them, each `apply` run through the links.
 * The bench's own preparation (resets, edits, mobile inserts) goes straight to the databases and is
 * not counted. Throws CheckFailure when a correctness check fails.
 */
export async function runWanCases(ctx: CaseContext, links: WanLinks, path: WanPath): Promise<WanSample[]> {
  const route: ApplyRoute = { desktopUrl: links.desktop.url(ctx.dbs.desktopUrl), cloudUrl: links.cloud.url(ctx.dbs.cloudUrl), configFile: path.configFile };
  const out: WanSample[] = [];
  const measure = async (name: WanCaseName, direction: 'forward' | 'reverse' | 'both'): Promise<BisyncRun> => {
    await settle([ctx.dbs.desktopUrl, ctx.dbs.cloudUrl]);
    links.cloud.resetStats();
    links.desktop.resetStats();
    const run = await applyOnce(ctx, direction, route);
    const stepTrips = run.steps.map((s) => s.roundTrips).filter((n): n is number => n !== undefined);
    const s: WanSample = {
      path: path.name,
      name,
      seconds: run.seconds,
      read: run.read,
      written: run.written,
      cloud: links.cloud.current,
      desktop: links.desktop.current,
      stepRoundTrips: stepTrips.length === 0 ? null : Math.max(...stepTrips),
    };
    out.push(s);
    ctx.log(
      `  [${path.name}] ${name}: ${s.seconds.toFixed(2)} s, up ${mb(s.cloud.bytesFromClient)} MB, down ${mb(s.cloud.bytesFromServer)} MB, ` +
        `${s.cloud.roundTrips} round trips, ${s.desktop.connections}+${s.cloud.connections} connections, ${s.read} read, ${s.written} written`,
    );
    return run;
  };

  await freshTargets(ctx);
  const first = await measure('first sync (empty cloud), apply', 'both');
  check(first.written === ctx.desktopRows, `[${path.name}] the first sync wrote ${first.written} rows into the empty cloud, the desktop holds ${ctx.desktopRows}`);

  // Mobile activity since the first sync, already synced down (not measured): the cloud holds rows
  // of both owners. Stamped now, not in the past: with `edits: both` the first sync's reverse read
  // the cloud and its watermark is already that sync's time.
  if (ctx.reverseTables.length > 0) {
    const seeded = await insertMobileRows(ctx.dbs.cloudUrl, ctx.reverseTables, MOBILE_SEED_KEYS, 0);
    const primed = await applyOnce(ctx, 'reverse', route);
    check(primed.written === seeded, `[${path.name}] reverse wrote ${primed.written} of the ${seeded} mobile rows inserted on the cloud`);
  }
  // Forward once more, unmeasured: a path that remembers what it read (a cursor) gets its first
  // cursor from the run before, as in production where runs follow each other.
  await applyOnce(ctx, 'forward', route);

  const still = await measure('no-change apply (both ways)', 'both');
  check(still.written === 0, `[${path.name}] NO-CHANGE RUN WROTE ROWS: ${still.written} (must be 0)`);

  for (const [name, fraction] of [['0.1% desktop rows edited, forward', 0.001], ['1% desktop rows edited, forward', 0.01]] as const) {
    const edited = await editDesktopRows(ctx.dbs.desktopUrl, ctx.tables, fraction);
    const run = await measure(name, 'forward');
    check(run.written === edited, `[${path.name}] ${name}: forward wrote ${run.written} rows; ${edited} desktop rows were edited`);
  }

  if (ctx.reverseTables.length > 0) {
    const inserted = await insertMobileRows(ctx.dbs.cloudUrl, ctx.reverseTables, MOBILE_NEW_KEYS, 0);
    const run = await measure('1% new mobile rows, reverse', 'reverse');
    check(run.written === inserted, `[${path.name}] reverse wrote ${run.written} rows; ${inserted} mobile rows were inserted`);
  }
  return out;
}

const mb = (bytes: number): string => (bytes / 1e6).toFixed(2);
const kb = (bytes: number): string => (bytes / 1e3).toLocaleString('en-US', { maximumFractionDigits: 1 });

/**
 * The WAN table: one row per case and path, the first path being the baseline the others are compared
 * with: each sample with the baseline's sample of the same run (the n-th of its case and path with the
 * n-th of the baseline's), so a run's ratio is not another run's.
 */
export function wanTable(samples: readonly WanSample[]): string {
  const lines = [
    '| case | path | seconds | uploaded to the cloud (kB) | downloaded (kB) | round trips to the cloud | direction changes | longest step, round trips | connections desktop + cloud | rows read | rows written | × baseline time | × baseline upload |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const baseline = samples[0]?.path;
  for (const name of WAN_CASES) {
    const ofCase = samples.filter((x) => x.name === name);
    const bases = ofCase.filter((x) => x.path === baseline);
    for (const s of ofCase) {
      const base = bases[ofCase.filter((x) => x.path === s.path).indexOf(s)];
      const vs = (a: number, b: number | undefined): string => (b === undefined || b === 0 || s.path === baseline ? '—' : `${(a / b).toFixed(3)}×`);
      lines.push(
        `| ${s.name} | ${s.path} | ${s.seconds.toFixed(2)} | ${kb(s.cloud.bytesFromClient)} | ${kb(s.cloud.bytesFromServer)} | ${s.cloud.roundTrips} | ${s.cloud.directionChanges} | ` +
          `${s.stepRoundTrips ?? '—'} | ${s.desktop.connections} + ${s.cloud.connections} | ${s.read.toLocaleString('en-US')} | ${s.written.toLocaleString('en-US')} | ` +
          `${vs(s.seconds, base?.seconds)} | ${vs(s.cloud.bytesFromClient, base?.cloud.bytesFromClient)} |`,
      );
    }
  }
  return lines.join('\n');
}
