import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { compilePlan, PROBE_SLOW_LINK_MS, stepKey } from '../compiler/compile-plan.js';
import type { CompileOptions } from '../compiler/compile-plan.js';
import type { Plan, PlanStep, UnplannedStep } from '../compiler/plan-types.js';
import type { ResolvedConfig } from '../config/types.js';
import { BisyncError, ExitCode } from '../errors.js';
import { fingerprintChanges, planFingerprint } from '../compiler/plan-fingerprint.js';
import type { PlanFingerprint } from '../compiler/plan-fingerprint.js';
import type { SavedPlan } from './plan.js';
import { bootstrapState, checkState, stateCheckStatement } from '../executor/bootstrap.js';
import { Databases } from '../executor/databases.js';
import { DryRunDatabases } from '../executor/dry-run.js';
import { pinSettings } from '../executor/read-only.js';
import { runStep, ZERO } from '../executor/run-step.js';
import { NOTHING, probeSteps } from '../executor/probe.js';
import type { ProbeOutcome, Skip } from '../executor/probe.js';
import type { WireCounts } from '../executor/databases.js';
import { runScheduled } from '../executor/schedule.js';
import { run, statement } from '../executor/statements.js';
import { backoffMs, isTransient } from '../executor/transient.js';
import type { StepOptions, StepResult } from '../executor/run-step.js';
import { applyAttention } from './needs-you.js';
import { readCatalogs } from './validate.js';

export interface ApplyOptions extends CompileOptions {
  dryRun: boolean;
  allowDeletes: boolean;
  /** Exit 1 when any step of this run left rows in rejects (errors or insert-only conflicts). */
  failOnRejects?: boolean;
  /** Steps run at once (default 1); dependencies and forward-before-reverse always hold. */
  concurrency?: number;
  /** Times a step that failed for a transient reason (connection lost, deadlock…) is run again (default 2). */
  retries?: number;
  logger: Logger;
  /** Aborted on Ctrl-C: open connections are cut (uncommitted work rolls back), no new step starts. */
  signal?: AbortSignal;
  onProgress?: (step: PlanStep, rows: number) => void;
  /** `apply --plan FILE`: run only if the plan compiled now is the saved one, from the same catalog and state. */
  savedPlan?: SavedPlan;
  /**
   * The run-level probe before the steps (probe.ts): `auto` (default) only over a slow link (a round
   * trip of PROBE_SLOW_LINK_MS or more to either database while the catalog was read), true always,
   * false never (every step runs).
   */
  probe?: boolean | 'auto';
  /** Test hooks, see StepOptions. */
  afterRead?: StepOptions['afterRead'];
  duringCopy?: StepOptions['duringCopy'];
  /** When each step last committed, as read with the plan (set by applyCommand itself; see StepOptions.stateVersion). */
  stateVersions?: Readonly<Record<string, string | null>>;
}

export interface ApplyReport {
  /** True when the exit code is 0. */
  ok: boolean;
  runId: string;
  planHash: string;
  dryRun: boolean;
  steps: StepResult[];
  /** What needs the owner, one sentence each (failed steps, rejects, conflicts, unmarked rows). */
  attention: string[];
  /** True when the run was interrupted (Ctrl-C): steps that succeeded are committed, the others rolled back or not started. */
  interrupted: boolean;
  exitCode: number;
  /**
   * The run-level probe before the steps (probe.ts): steps probed, steps it found nothing to do for
   * (reported with `notRun`, 0 round trips of their own), what it cost on the wire, and what the
   * skipped steps' run rows cost (`runRows`). Absent when no step was probed (dry run, first runs),
   * except that `off` says why `--probe auto` did not probe (a fast link).
   */
  probe?: { probed: number; skipped: number; error?: string; off?: string; runRows?: WireCounts } & Partial<WireCounts>;
}

/**
 * `bisync apply`: compile the plan from the live catalogs and state, bootstrap state where missing,
 * then run each step. A failed step does not stop the others; their commits stand.
 */
export async function applyCommand(config: ResolvedConfig, options: ApplyOptions): Promise<ApplyReport> {
  // One set of connections for the whole run: the catalog read, the bootstrap and every step reuse
  // them (at most `concurrency` per database), instead of two new ones per step.
  // A dry run keeps one transaction per database for the whole run (rolled back at its end), so
  // each step sees what the steps before it would have written.
  const dbs = options.dryRun ? new DryRunDatabases(config) : new Databases(config, { reuse: true });
  const cut = (): void => dbs.cutAll();
  const aborted = (): boolean => options.signal?.aborted === true;
  options.signal?.addEventListener('abort', cut, { once: true });
  const runId = randomUUID();
  let results: StepResult[] = [];
  let planHash = '';
  let probeReport: ApplyReport['probe'];
  try {
    const { catalogs, state, stateVersions, xmin, pendingRejects, untrackedBase, stateReady } = await readCatalogs(config, dbs);
    const compileOptions: CompileOptions = { direction: options.direction, tables: options.tables ?? [], mode: options.mode, pendingRejects, untrackedBase };
    const plan: Plan = compilePlan(config, catalogs, state, compileOptions, xmin);
    planHash = plan.hash;
    if (options.savedPlan !== undefined) refuseIfChanged(options.savedPlan, planFingerprint(plan, catalogs, state, xmin, pendingRejects));
    // A dry run creates missing state inside its transaction too (the source's as well, for
    // edits: both): the rollback removes it.
    // A state row read with the plan exists (a watermark of null included): nothing to claim.
    await bootstrapTargets(plan, dbs, config, options.logger, options.dryRun, (database, rows) => stateReady[database] === true && rows.every((key) => key in state));
    const notRun = await Promise.all((plan.unplanned ?? []).map(async (u) => await notPlanned(u, dbs, config, plan.hash, runId, options)));
    // The probe (probe.ts): steps with nothing to do are not run at all. A dry run runs every step.
    // Nor with a test hook inside a step (afterRead, duringCopy): such a test needs its step to run.
    const wanted = !options.dryRun && options.probe !== false && options.afterRead === undefined && options.duringCopy === undefined;
    // --probe auto: only where round trips are what a run costs (see PROBE_SLOW_LINK_MS).
    const fast = wanted && (options.probe ?? 'auto') === 'auto' ? fastLink(plan, dbs) : undefined;
    if (fast !== undefined) options.logger.debug({ probe: 'off' }, `probe: off, ${fast}`);
    const probing = wanted && fast === undefined;
    const probe = !probing || aborted() ? null : await probeSteps(plan, dbs, config.forward.from, { runId, planHash: plan.hash });
    if (probe?.error !== undefined) options.logger.warn({ error: probe.error }, `the probe before the steps failed, so every step runs as planned: ${probe.error}`);
    else if (probe !== null && probe.probed > 0) {
      options.logger.debug({ probed: probe.probed, skipped: probe.skipped.size, ...probe.wire }, `probe: ${probe.skipped.size} of ${probe.probed} steps probed have nothing to do`);
    }
    probeReport = probeSummary(plan, fast, probe);
    results = await runScheduled(plan.steps, options.dryRun ? 1 : (options.concurrency ?? 1), async (planned) => {
      const nothing = probe?.skipped.get(planned);
      if (nothing !== undefined) return notRunStep(planned, plan.hash, nothing, options);
      if (aborted()) return notStarted(planned, plan.hash);
      let step = planned;
      // Attempts are numbered across retries and re-plans of this step: each leaves its own run row.
      let attempts = 0;
      const nextAttempt = (): number => ++attempts;
      const stepOptions = { ...options, stateVersions };
      let result = await runOne(step, dbs, plan.hash, runId, stepOptions, nextAttempt);
      // Another run moved the watermark between our read and our lock: plan this step again from
      // the state now under the lock, so what runs is what a plan would print now.
      if (result.status === 'replan' && options.savedPlan !== undefined) {
        return { ...result, status: 'failed', error: `another run moved the watermark of ${step.table} ${step.direction} after the saved plan was checked; nothing of this step ran; plan again` };
      }
      for (let attempt = 0; result.status === 'replan' && attempt < 3 && !aborted(); attempt++) {
        const fresh = { ...state, [stepKey(step.table, step.direction)]: result.currentWatermark ?? null };
        const replanned = compilePlan(config, catalogs, fresh, { ...compileOptions, direction: step.direction, tables: [step.table] }, xmin).steps[0];
        if (replanned === undefined) break;
        options.logger.info({ table: step.table, direction: step.direction }, 'watermark moved since planning; planned this step again');
        step = replanned;
        result = await runOne(step, dbs, plan.hash, runId, stepOptions, nextAttempt);
      }
      return result;
    });
    results = inRunOrder(config, [...results, ...notRun]);
  } finally {
    options.signal?.removeEventListener('abort', cut);
    await dbs.close();
  }
  const interrupted = aborted();
  const exitCode = interrupted ? ExitCode.interrupted : exitCodeOf(results, options.failOnRejects === true);
  return {
    ok: exitCode === ExitCode.ok,
    runId,
    planHash,
    dryRun: options.dryRun,
    steps: results,
    attention: applyAttention(results, options.dryRun),
    interrupted,
    exitCode,
    ...(probeReport === undefined ? {} : { probe: probeReport }),
  };
}

/** ApplyReport.probe: what the probe found and cost, or why `--probe auto` did not probe; undefined when no step was probed. */
function probeSummary(plan: Plan, fast: string | undefined, probe: ProbeOutcome | null): ApplyReport['probe'] {
  if (fast !== undefined) return plan.steps.some((s) => s.probe !== undefined && s.probe.length > 0) ? { probed: 0, skipped: 0, off: fast } : undefined;
  if (probe === null || probe.probed === 0) return undefined;
  return {
    probed: probe.probed,
    skipped: probe.skipped.size,
    ...(probe.wire ?? {}),
    ...(probe.recordWire === null ? {} : { runRows: probe.recordWire }),
    ...(probe.error === undefined ? {} : { error: probe.error }),
  };
}

/**
 * `--probe auto`: why not to probe (every database of the plan answered a query on an idle connection
 * within PROBE_SLOW_LINK_MS while the catalog was read), or undefined when some link is slow or unmeasured.
 */
function fastLink(plan: Plan, dbs: Databases): string | undefined {
  const names = [...new Set(plan.steps.flatMap((s) => [s.source, s.target]))].sort();
  const quickest = names.map((name) => ({ name, ms: dbs.quickestAnswerMs(name) }));
  if (quickest.some((q) => q.ms === undefined || q.ms >= PROBE_SLOW_LINK_MS)) return undefined;
  const seen = quickest.map((q) => `${q.name} ${(q.ms ?? 0).toFixed(1)} ms`).join(', ');
  return `every database answered within ${PROBE_SLOW_LINK_MS} ms (${seen}): on a link this fast a probe costs more than the round trips it saves`;
}

/** apply --plan: exit 4, running nothing, when what the plan was compiled from changed since it was saved. */
function refuseIfChanged(saved: SavedPlan, now: PlanFingerprint): void {
  const changes = fingerprintChanges(saved.fingerprint, now);
  if (changes.length === 0) return;
  throw new BisyncError('PLAN_STALE', `the saved plan ${saved.hash.slice(0, 12)} no longer matches the databases, so nothing was run: ${changes.join('; ')}`, {
    exitCode: ExitCode.guard,
    hint: 'review a new plan (bisync plan --out FILE), then bisync apply --plan FILE',
  });
}

/** One step, run again with backoff while it fails for a transient reason (bounded by `retries`). */
async function runOne(
  step: PlanStep,
  dbs: Databases,
  planHash: string,
  runId: string,
  options: ApplyOptions,
  nextAttempt: () => number,
): Promise<StepResult> {
  const retries = options.retries ?? 2;
  let result = await attempt(step, dbs, planHash, runId, options, nextAttempt());
  for (let n = 1; n <= retries && result.status === 'failed' && options.signal?.aborted !== true && isTransient(result.errorCode, result.error); n++) {
    const wait = backoffMs(n);
    options.logger.warn({ table: step.table, direction: step.direction, error: result.error, retry: n, waitMs: wait }, 'transient failure; running the step again');
    await new Promise((resolve) => setTimeout(resolve, wait));
    result = { ...(await attempt(step, dbs, planHash, runId, options, nextAttempt())), retries: n };
  }
  return result;
}

async function attempt(step: PlanStep, dbs: Databases, planHash: string, runId: string, options: ApplyOptions, number: number): Promise<StepResult> {
  const log = options.logger.child({ table: step.table, direction: step.direction });
  log.debug({ mode: step.mode, reason: step.reason, from: step.source, to: step.target }, `${step.table} ${step.direction}: started (${step.mode})`);
  const { result: stepResult, wire } = await dbs.counting(async () => await runStep(step, dbs, planHash, {
    runId,
    attempt: number,
    dryRun: options.dryRun,
    allowDeletes: options.allowDeletes,
    sharedTransaction: options.dryRun,
    stateVersion: options.stateVersions?.[stepKey(step.table, step.direction)] ?? null,
    interrupted: () => options.signal?.aborted === true,
    ...(options.onProgress === undefined ? {} : { onProgress: (rows: number) => options.onProgress?.(step, rows) }),
    ...(options.afterRead === undefined ? {} : { afterRead: options.afterRead }),
    ...(options.duringCopy === undefined ? {} : { duringCopy: options.duringCopy }),
  }));
  const result: StepResult = { ...stepResult, ...wire };
  for (const reject of result.newRejects ?? []) {
    const key = Object.entries(reject.key).map(([k, v]) => `${k}=${v}`).join(', ');
    log.warn({ key: reject.key, errorCode: reject.errorCode, dryRun: options.dryRun }, `${step.table} ${step.direction}: row ${key} rejected by ${step.target}: ${reject.error}`);
  }
  if (result.unmarked > 0) log.warn({ unmarked: result.unmarked }, unmarkedSentence(step, result.unmarked));
  const { table: _t, direction: _d, newRejects: _n, ...fields } = result;
  const name = `${step.table} ${step.direction}`;
  if (result.status === 'interrupted') log.warn(fields, `${name} interrupted: rolled back`);
  else if (result.status === 'failed' || result.status === 'refused') log.error(fields, `${name} ${result.status}: ${result.error ?? ''}`);
  else if (result.status === 'locked') log.warn(fields, `${name}: another run holds this step; skipped`);
  else log.info(fields, `${name}: ${stepSentence(result, options.dryRun)}`);
  return result;
}

/** A step the plan could not include: reported as failed (or skipped), and recorded in runs so `status` shows it. */
async function notPlanned(u: UnplannedStep, dbs: Databases, config: ResolvedConfig, planHash: string, runId: string, options: ApplyOptions): Promise<StepResult> {
  const started = new Date();
  const log = options.logger.child({ table: u.table, direction: u.direction });
  if (u.status === 'failed') log.error({ status: u.status }, `${u.table} ${u.direction} failed: could not be planned: ${u.reason}`);
  else log.warn({ status: u.status }, `${u.table} ${u.direction} skipped: ${u.reason}`);
  if (!options.dryRun) {
    const client = await dbs.client(u.target);
    try {
      await client.query('BEGIN');
      await pinSettings(client);
      const present = await checkState(client, stateCheckStatement(config.stateSchema), u.target);
      if (present.runs && present.current) {
        await run(client, u.recordRun, {
          'run id': runId,
          attempt: 1,
          'plan hash': planHash,
          status: u.status,
          'started at': started.toISOString(),
          read: 0,
          inserted: 0,
          updated: 0,
          unchanged: 0,
          protected: 0,
          rejected: 0,
          deleted: 0,
          'watermark after': null,
          error: u.reason,
          'round trips': null,
          'bytes sent': null,
          'bytes received': null,
        });
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      await dbs.release(client);
    }
  }
  return {
    table: u.table,
    direction: u.direction,
    status: u.status,
    mode: 'none',
    reason: u.status === 'failed' ? 'could not be planned' : 'skipped',
    planHash,
    watermarkBefore: null,
    watermarkAfter: null,
    durationMs: 0,
    error: u.reason,
    read: 0,
    retried: 0,
    inserted: 0,
    updated: 0,
    unchanged: 0,
    protected: 0,
    rejected: 0,
    conflicts: 0,
    parked: 0,
    deleted: 0,
    unmarked: 0,
  };
}

/** A step the probe found nothing to do for: not run, its run row already written by the probe. */
function notRunStep(step: PlanStep, planHash: string, skip: Skip, options: ApplyOptions): StepResult {
  const result: StepResult = {
    table: step.table,
    direction: step.direction,
    status: 'succeeded',
    mode: step.mode,
    // The plan's reason for the mode, then why it did not run.
    reason: `${step.reason}; nothing to do: ${skip.reason}; not run`,
    planHash,
    watermarkBefore: step.watermark,
    watermarkAfter: step.watermark,
    durationMs: 0,
    ...ZERO,
    // What the step would have counted without reading a row: a checksum step's rows in its equal buckets.
    unchanged: skip.unchanged,
    protected: skip.protected,
    notRun: 'nothing to do',
    // Its share of the wire is the probe's (ApplyReport.probe): nothing of its own.
    ...NOTHING,
    roundTripsByDatabase: {},
    ...(step.edits === undefined ? {} : { edits: step.edits }),
  };
  options.logger.child({ table: step.table, direction: step.direction }).info({ mode: step.mode, notRun: result.notRun, read: 0, unchanged: result.unchanged, protected: result.protected }, `${step.table} ${step.direction}: succeeded (${step.mode}): nothing to do, not run: ${skip.reason}`);
  return result;
}

/** A step the interrupted run did not start: nothing of it was written. */
function notStarted(step: PlanStep, planHash: string): StepResult {
  return {
    table: step.table,
    direction: step.direction,
    status: 'interrupted',
    mode: step.mode,
    reason: step.reason,
    planHash,
    watermarkBefore: step.watermark,
    watermarkAfter: step.watermark,
    durationMs: 0,
    error: 'not started: the run was interrupted',
    read: 0,
    retried: 0,
    inserted: 0,
    updated: 0,
    unchanged: 0,
    protected: 0,
    rejected: 0,
    conflicts: 0,
    parked: 0,
    deleted: 0,
    unmarked: 0,
  };
}

/** Results in the order steps run: forward before reverse, then the config's table order. */
function inRunOrder(config: ResolvedConfig, results: readonly StepResult[]): StepResult[] {
  const index = new Map(config.tables.map((t, i) => [t.name, i]));
  const key = (r: StepResult): number => (r.direction === 'forward' ? 0 : 1) * 1_000_000 + (index.get(r.table) ?? 0);
  return [...results].sort((a, b) => key(a) - key(b));
}

/** One step's outcome in one line: mode, counts and time. */
function stepSentence(r: StepResult, dryRun: boolean): string {
  const counts = `read ${r.read}, inserted ${r.inserted}, updated ${r.updated}, unchanged ${r.unchanged}, protected ${r.protected}, rejected ${r.rejected}, deleted ${r.deleted}`;
  const keys = r.deletedKeys === undefined ? '' : ` (${dryRun ? 'would delete' : 'deleted'} ${r.deletedKeys.join(', ')}${r.deleted > r.deletedKeys.length ? ', …' : ''})`;
  return `${dryRun ? 'would succeed' : 'succeeded'} (${r.mode}): ${counts}${keys} in ${(r.durationMs / 1000).toFixed(2)} s`;
}

/** What an unmarked-rows count means, in one sentence (logs and the summary). */
export function unmarkedSentence(step: Pick<PlanStep, 'table' | 'direction' | 'source' | 'target'>, n: number): string {
  return `${step.table} ${step.direction}: ${n} unmarked row${n === 1 ? '' : 's'} on ${step.target} (origin column NULL) that ${step.source} does not have: never deleted, never sent; set their marker (bisync verify --table ${step.table} names them)`;
}

async function bootstrapTargets(
  plan: Plan,
  dbs: Databases,
  config: ResolvedConfig,
  logger: Logger,
  dryRun: boolean,
  /** Whether `database` has its state, and rows for these steps (`stepKey`s), already in place. */
  inPlace: (database: string, rows: readonly string[]) => boolean,
): Promise<void> {
  const done = new Set<string>();
  for (const step of plan.steps) {
    // edits: both reads the source's copy of the base too, so the source needs its state as well.
    for (const database of step.edits === 'both' ? [step.target, step.source] : [step.target]) {
      if (done.has(database)) continue;
      done.add(database);
      const mine = plan.steps.filter((s) => s.target === database);
      // edits: both reverse steps lock the forward step's row on their source too.
      const pairs = plan.steps.filter((s) => s.source === database && s.bootstrap.some((b) => b.kind === 'claim-state-row' && b.side === 'source'));
      // Nothing to create or claim: the catalog read found every state table (checked as bootstrap
      // checks it) and every row these steps lock. Over a WAN that saves the bootstrap's round trips.
      if (inPlace(database, [...mine.map((s) => stepKey(s.table, s.direction)), ...pairs.map((s) => stepKey(s.table, 'forward'))])) continue;
      const client = await dbs.client(database);
      try {
        const claims = [
          ...mine.map((s) => statement(s, 'claim-state-row', 'target', s.bootstrap)),
          ...pairs.map((s) => statement(s, 'claim-state-row', 'source', s.bootstrap)),
        ];
        if (await bootstrapState(client, step, database, claims)) {
          logger.info({ database, schema: config.stateSchema }, dryRun ? 'created bisync state schema for the dry run (rolled back with it)' : 'created bisync state schema');
        }
      } finally {
        await dbs.release(client);
      }
    }
  }
}

/** SPEC §3: 4 a guard refused, 3 a lock was held, 1 a step failed (or, when asked, left rejects), else 0. */
function exitCodeOf(results: readonly StepResult[], failOnRejects: boolean): number {
  if (results.some((r) => r.status === 'refused')) return ExitCode.guard;
  if (results.some((r) => r.status === 'locked')) return ExitCode.locked;
  if (results.some((r) => r.status === 'failed' || r.status === 'replan' || r.status === 'skipped')) return ExitCode.stepFailed;
  if (failOnRejects && results.some((r) => r.rejected > 0)) return ExitCode.stepFailed;
  return ExitCode.ok;
}
