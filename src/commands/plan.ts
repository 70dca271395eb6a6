import { readFileSync, writeFileSync } from 'node:fs';
import { compilePlan, stepKey } from '../compiler/compile-plan.js';
import type { CompileOptions, DirectionOption, ModeOption, StateSnapshot } from '../compiler/compile-plan.js';
import { compileStatus } from '../compiler/compile-status.js';
import type { Catalog } from '../compiler/catalog.js';
import { planFingerprint } from '../compiler/plan-fingerprint.js';
import type { PlanFingerprint } from '../compiler/plan-fingerprint.js';
import type { Plan } from '../compiler/plan-types.js';
import type { ResolvedConfig } from '../config/types.js';
import { BisyncError, ExitCode } from '../errors.js';
import { Databases } from '../executor/databases.js';
import { readOnly } from '../executor/read-only.js';
import { run } from '../executor/statements.js';
import { packageFile } from '../package-root.js';
import { readCatalogs } from './validate.js';

/** `bisync plan`: introspect and read state (read-only), then compile. Writes nothing. */
export async function planCommand(config: ResolvedConfig, options: CompileOptions): Promise<Plan> {
  const { catalogs, state, xmin, pendingRejects, untrackedBase } = await readCatalogs(config);
  return compilePlan(config, catalogs, state, { ...options, pendingRejects, untrackedBase }, xmin);
}

/** A plan with what a person reviews it by: rows waiting per step, and the fingerprint a saved plan carries. */
export interface ReviewedPlan {
  plan: Plan;
  /** `<table>/<direction>` → rows past the watermark on the source (as `status` counts them); null: not counted (full read, xmin). */
  waiting: Record<string, number | null>;
  fingerprint: PlanFingerprint;
}

/** `bisync plan` with rows waiting counted where cheap (steps that read incrementally by cursor columns). Read-only. */
export async function planReview(config: ResolvedConfig, options: CompileOptions): Promise<ReviewedPlan> {
  const dbs = new Databases(config, { reuse: true });
  try {
    const { catalogs, state, xmin, pendingRejects } = await readCatalogs(config, dbs);
    const plan = compilePlan(config, catalogs, state, { ...options, pendingRejects }, xmin);
    const waiting = await countWaiting(config, catalogs, state, plan, dbs);
    return { plan, waiting, fingerprint: planFingerprint(plan, catalogs, state, xmin, pendingRejects) };
  } finally {
    await dbs.close();
  }
}

async function countWaiting(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>, state: StateSnapshot, plan: Plan, dbs: Databases): Promise<Record<string, number | null>> {
  const status = compileStatus(config, catalogs, [...new Set(plan.steps.map((s) => s.table))]);
  const waiting: Record<string, number | null> = {};
  for (const step of plan.steps) {
    const key = stepKey(step.table, step.direction);
    const counter = status.steps.find((s) => s.table === step.table && s.direction === step.direction);
    const query = step.mode === 'incremental' ? counter?.waiting(state[key] ?? null) : null;
    waiting[key] = null;
    if (counter === undefined || query === null || query === undefined) continue;
    const client = await dbs.client(step.source);
    try {
      waiting[key] = await readOnly(client, async () => {
        await run(client, counter.settings);
        return Number((await run<{ waiting: string }>(client, query)).rows[0]?.waiting ?? 0);
      });
    } finally {
      await dbs.release(client);
    }
  }
  return waiting;
}

/** What `plan --out FILE` writes: the plan, how it was asked for, and its fingerprint. */
export interface SavedPlan {
  format: 'bisync saved plan';
  version: 1;
  /** The bisync version that wrote it: another version refuses it. */
  bisync: string;
  config: string;
  options: { direction: DirectionOption; tables: string[]; mode: ModeOption };
  hash: string;
  fingerprint: PlanFingerprint;
  plan: Plan;
}

/** Write a reviewed plan to `file` for `apply --plan`. */
export function writeSavedPlan(file: string, reviewed: ReviewedPlan, options: CompileOptions): void {
  const saved: SavedPlan = {
    format: 'bisync saved plan',
    version: 1,
    bisync: bisyncVersion(),
    config: reviewed.plan.config,
    options: { direction: options.direction, tables: [...(options.tables ?? [])], mode: options.mode },
    hash: reviewed.plan.hash,
    fingerprint: reviewed.fingerprint,
    plan: reviewed.plan,
  };
  try {
    writeFileSync(file, `${JSON.stringify(saved, null, 2)}\n`);
  } catch (error) {
    throw new BisyncError('PLAN_FILE', `cannot write the plan to ${file}: ${(error as Error).message}`, { exitCode: ExitCode.usage, cause: error });
  }
}

/** Read a plan `plan --out` wrote; exit 2 when it is not one, or another bisync version wrote it. */
export function readSavedPlan(file: string): SavedPlan {
  let saved: Partial<SavedPlan>;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<SavedPlan>;
  } catch (error) {
    throw new BisyncError('PLAN_FILE', `cannot read a saved plan from ${file}: ${(error as Error).message}`, { exitCode: ExitCode.usage, hint: 'write one with bisync plan --out FILE', cause: error });
  }
  if (saved.format !== 'bisync saved plan' || saved.version !== 1 || saved.fingerprint === undefined || saved.options === undefined) {
    throw new BisyncError('PLAN_FILE', `${file} is not a plan written by bisync plan --out`, { exitCode: ExitCode.usage, hint: 'write one with bisync plan --out FILE' });
  }
  if (saved.bisync !== bisyncVersion()) {
    throw new BisyncError('PLAN_FILE', `${file} was written by bisync ${saved.bisync ?? '?'}; this is bisync ${bisyncVersion()}`, {
      exitCode: ExitCode.usage,
      hint: 'plan again with this bisync (bisync plan --out FILE)',
    });
  }
  return saved as SavedPlan;
}

function bisyncVersion(): string {
  return (JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string }).version;
}
