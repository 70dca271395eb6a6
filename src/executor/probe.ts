import type pg from 'pg';
import type { Plan, PlanStatement, PlanStep } from '../compiler/plan-types.js';
import { groupDigits } from '../compiler/checksum-step.js';
import { PROBE_MAX_ROWS, probeKeyOf } from '../compiler/compile-plan.js';
import type { Databases, WireCounts } from './databases.js';
import { runRow, ZERO } from './run-step.js';
import type { StepOptions } from './run-step.js';
import { runTogether } from './statements.js';
import type { Sendable } from './statements.js';

/**
 * The run-level probe (apply, before any step runs; SPEC §8): every step with a planned probe
 * (`PlanStep.probe`) is asked, in one transaction per database, whether it would find nothing to do.
 * Such steps do not run; each leaves its row in runs, reported as succeeded with nothing to do.
 *
 * Why a skip is safe: it changes no state (watermark, saved xmin, base, rejects, conflicts). It is
 * exactly "the step ran at the probe's instant and found nothing to write": anything committed after
 * the probe is read by the next run, as a change committed just after a step's read would be. A step
 * whose lock another run holds is never skipped (it runs and reports `locked`, exit 3).
 *
 * Round trips: the database bisync runs beside (the forward source, the desktop) goes first where the
 * other one needs its answers (an incremental forward step's window), so the other database — the
 * cloud, across the internet — is asked once: BEGIN, every probe statement, COMMIT, in one batch.
 * The run rows of the skipped steps then travel in one batch per database.
 */
export interface ProbeOutcome {
  /** Steps with nothing to do: their result (status succeeded, `notRun`). */
  skipped: Map<PlanStep, Skip>;
  /** What the probe cost on the wire (BEGIN … COMMIT on each database). */
  wire: WireCounts | null;
  /** What the skipped steps' run rows cost (one batch per database). */
  recordWire: WireCounts | null;
  /** Steps probed. */
  probed: number;
  /** Set when the probe itself failed: every step runs as planned. */
  error?: string;
}

/** Why a step is not run, and what it would have reported (a checksum step: its rows, unchanged or protected). */
export interface Skip {
  /** What the probe found, e.g. "the probe found the checksums of its 894 rows summed alike on desktop and cloud". */
  reason: string;
  unchanged: number;
  protected: number;
}

/** A skipped step's own share of the wire, as apply --json reports it (the probe's cost is the run's). */
export const NOTHING: WireCounts = { roundTrips: 0, roundTripsByDatabase: {}, connectionsOpened: 0, bytesSent: 0, bytesReceived: 0 };

interface Part {
  step: PlanStep;
  database: string;
  /** The step's probe statements on this database, as planned (without the run row). */
  planned: PlanStatement[];
  /**
   * The statements to send next, with the runtime values they need (resolved when the batch is built);
   * adds them to `sent`. `through`: only up to the first planned statement of that kind (the rest of
   * the part goes in a later batch of the same transaction).
   */
  statements: (through?: string) => Sendable[];
  /** The results, in the order of `sent`, once answered. */
  results?: pg.QueryResult[];
  /** The statements sent: the planned ones but those another statement of the probe answers (see `answers`). */
  sent?: PlanStatement[];
}

/** Where the answer to a planned probe statement is found: the part that sent it, or the part that sent the same statement. */
type Answers = Map<PlanStatement, { part: Part; statement: PlanStatement }>;

/** The probe statements of a step on one side, in plan order, without the run row. */
function sideOf(step: PlanStep, side: 'source' | 'target'): PlanStatement[] {
  return (step.probe ?? []).filter((s) => s.side === side && s.kind !== 'record-run');
}

/** The first row answering the part's planned statement of `kind` (undefined: not planned, not sent, or no row). */
function rowOf(part: Part, kind: string, answers: Answers): Record<string, unknown> | undefined {
  const planned = part.planned.find((s) => s.kind === kind);
  const answer = planned === undefined ? undefined : (answers.get(planned) ?? { part, statement: planned });
  const i = answer?.part.sent?.indexOf(answer.statement) ?? -1;
  return i < 0 ? undefined : (answer?.part.results?.[i]?.rows[0] as Record<string, unknown> | undefined);
}

/**
 * The probe checksums that another statement of this probe answers: a statement whose condition-free
 * form (`probeKey`) is planned, unconditionally, on the same database by another step. An edits: both
 * table's reverse step sums each database's settled keys exactly as its forward step does (both
 * directions read the same rows, base and conflicts the same way): asked in one run, each database
 * computes that sum once, not twice.
 *
 * Where no such statement is always sent (both directions read incrementally: each step's sums wait on
 * its own window), the reverse step takes its forward step's statement, conditional or withheld as it
 * is: a reverse step is skipped only when its forward step, probed in the same run, is skipped too
 * (decide), and a skipped forward step had both its sums computed. When the forward step runs, the
 * reverse step finds an answer missing and runs, as it would anyway.
 */
function sharedAnswers(parts: readonly Part[], withheld: (part: Part) => boolean): Answers {
  const plain = new Map<string, { part: Part; statement: PlanStatement }>();
  const forward = new Map<string, { part: Part; statement: PlanStatement }>();
  for (const part of parts) {
    for (const statement of part.planned) {
      if (statement.probeKey === undefined) continue;
      const key = `${part.database}\n${statement.probeKey}`;
      if (!withheld(part) && !plain.has(key) && statement.probeKey === probeKeyOf(part.database, statement)) plain.set(key, { part, statement });
      if (part.step.edits === 'both' && part.step.direction === 'forward') forward.set(`${part.step.table}\n${key}`, { part, statement });
    }
  }
  const answers: Answers = new Map();
  for (const part of parts) {
    for (const statement of part.planned) {
      if (statement.probeKey === undefined) continue;
      const key = `${part.database}\n${statement.probeKey}`;
      const other = plain.get(key) ?? (part.step.edits === 'both' && part.step.direction === 'reverse' ? forward.get(`${part.step.table}\n${key}`) : undefined);
      if (other !== undefined && other.statement !== statement) answers.set(statement, other);
    }
  }
  return answers;
}

/**
 * Run every step's probe. `near` is the database bisync runs beside (asked first, and twice when
 * needed); each other database is asked once. Any error of the probe: nothing is skipped (every step
 * runs as planned), and the error is returned for the log.
 */
export async function probeSteps(
  plan: Plan,
  dbs: Databases,
  near: string,
  run: Pick<StepOptions, 'runId'> & { planHash: string },
): Promise<ProbeOutcome> {
  const steps = plan.steps.filter((s) => s.probe !== undefined && s.probe.length > 0);
  if (steps.length === 0) return { skipped: new Map(), wire: null, recordWire: null, probed: 0 };
  const started = new Date();
  const { result: decided, wire } = await dbs.counting(async () => await decide(steps, plan.steps, dbs, near));
  if (decided.error !== undefined || decided.skipped.size === 0) return { ...decided, wire, recordWire: null, probed: steps.length };
  try {
    const { wire: recordWire } = await dbs.counting(async () => await recordRuns(decided.skipped, dbs, run, started));
    return { ...decided, wire, recordWire, probed: steps.length };
  } catch (error) {
    // Without its run row a skip would not show in status: run every step as planned instead.
    return { skipped: new Map<PlanStep, Skip>(), wire, recordWire: null, probed: steps.length, error: error instanceof Error ? error.message : String(error) };
  }
}

async function decide(steps: readonly PlanStep[], planned: readonly PlanStep[], dbs: Databases, near: string): Promise<{ skipped: Map<PlanStep, Skip>; error?: string }> {
  // Per step: its source part and its target part. A window's target part needs the source's answer.
  const parts = new Map<PlanStep, { source: Part; target: Part }>();
  // Filled below, before anything is sent: statements answered by another part's.
  let answers: Answers = new Map();
  const unanswered = (list: readonly PlanStatement[]): PlanStatement[] => list.filter((s) => !answers.has(s));
  for (const step of steps) {
    let next = 0;
    const source: Part = {
      step,
      database: step.source,
      planned: sideOf(step, 'source'),
      statements: (through) => {
        const end = through === undefined ? source.planned.length : source.planned.findIndex((s, i) => i >= next && s.kind === through) + 1;
        const batch = unanswered(source.planned.slice(next, Math.max(end, next)));
        next = Math.max(end, next);
        source.sent = [...(source.sent ?? []), ...batch];
        return batch;
      },
    };
    const target: Part = {
      step,
      database: step.target,
      planned: sideOf(step, 'target'),
      statements: () => {
        const window = rowOf(source, 'probe-window', answers);
        // edits: both, incremental: a read past the watermark means the step runs: its digest on the
        // target is not worth computing (nor is the source's: see probe-checksums' condition).
        const needed = step.probeKind === 'checksum' && window !== undefined && window.not_newer !== true ? target.planned.filter((s) => s.kind !== 'probe-checksums') : target.planned;
        target.sent = unanswered(needed);
        return target.sent.map((s) => (s.kind === 'probe-rows' ? { statement: s, runtime: { 'window rows': String(window?.pairs ?? '[]') } } : s));
      },
    };
    parts.set(step, { source, target });
  }
  const all = [...parts.values()].flatMap((p) => [p.source, p.target]);
  // A window's target part, and an edits: both incremental step's, need the source's answer first.
  const dependsOnOther = (p: Part): boolean => parts.get(p.step)?.target === p && (parts.get(p.step)?.source.planned ?? []).some((s) => s.kind === 'probe-window');
  // Only a statement always sent answers for others: not a target's digest that its window may withhold.
  answers = sharedAnswers(all, (p) => dependsOnOther(p) && p.step.probeKind === 'checksum');
  const databases = [...new Set(all.map((p) => p.database))].sort((a, b) => (a === near ? -1 : b === near ? 1 : a < b ? -1 : a > b ? 1 : 0));
  const clients = new Map<string, pg.Client>();
  try {
    for (const database of databases) clients.set(database, await dbs.client(database));
    const send = async (database: string, batch: Part[], open: boolean, close: boolean, through?: string): Promise<void> => {
      const client = clients.get(database);
      if (client === undefined) return;
      const sendables = batch.map((p) => p.statements(through));
      const list: Sendable[] = [...(open ? ['BEGIN'] : []), ...sendables.flat(), ...(close ? ['COMMIT'] : [])];
      if (list.length === 0) return;
      const results = await runTogether(client, list);
      let at = open ? 1 : 0;
      for (const [i, part] of batch.entries()) {
        const n = sendables[i]?.length ?? 0;
        part.results = [...(part.results ?? []), ...results.slice(at, at + n)];
        at += n;
      }
    };
    // The near database first, but only for what another database needs from it (the windows read
    // there whose target is elsewhere, each part up to its window); the rest of its probe (those
    // parts' own sums included) runs while the other databases work, so the two servers compute their
    // checksums at the same time, not one after the other.
    const others = databases.filter((d) => d !== near);
    const needed = new Set(all.filter((p) => p.database !== near && dependsOnOther(p)).map((p) => parts.get(p.step)?.source));
    const nearFirst = all.filter((p) => p.database === near && needed.has(p));
    const nearMiddle = all.filter((p) => p.database === near && !dependsOnOther(p) && !needed.has(p));
    const nearLast = all.filter((p) => p.database === near && dependsOnOther(p));
    const far = async (): Promise<void> => {
      // Each other database once: its independent parts, its windows, and the targets of windows read on `near`.
      await Promise.all(others.map(async (d) => await send(d, all.filter((p) => p.database === d), true, true)));
    };
    if (databases.includes(near)) {
      if (nearFirst.length > 0) {
        await send(near, nearFirst, true, false, 'probe-window');
        await Promise.all([send(near, [...nearFirst, ...nearMiddle], false, false), far()]);
      } else {
        await Promise.all([send(near, nearMiddle, true, false), far()]);
      }
      await send(near, nearLast, false, true);
    } else {
      await far();
    }
  } catch (error) {
    for (const client of clients.values()) await client.query('ROLLBACK').catch(() => undefined);
    return { skipped: new Map(), error: error instanceof Error ? error.message : String(error) };
  } finally {
    for (const client of clients.values()) await dbs.release(client);
  }

  const skipped = new Map<PlanStep, Skip>();
  const answeredBy = (part: Part, kind: string): pg.QueryResult[] => (part.results ?? []).filter((_r, i) => part.sent?.[i]?.kind === kind);
  for (const [step, { source, target }] of parts) {
    const free = [...answeredBy(target, 'probe-lock'), ...answeredBy(source, 'probe-lock')].every((r) => r.rows[0]?.free === true);
    if (!free) continue;
    if (step.probeKind === 'checksum') {
      const mine = rowOf(source, 'probe-checksums', answers);
      const theirs = rowOf(target, 'probe-checksums', answers);
      if (mine === undefined || theirs === undefined) continue;
      // edits: both, incremental: also no row read past the watermark (the step would move it).
      const window = rowOf(source, 'probe-window', answers);
      if (window !== undefined && window.not_newer !== true) continue;
      if (String(mine.rows) === String(theirs.rows) && mine.digest === theirs.digest) {
        // A checksum-first step would have counted its equal buckets' rows (unread) as unchanged or protected.
        const counted = step.compare === 'checksum';
        const others = counted ? Number(theirs.others ?? 0) : 0;
        const rows = Number(mine.rows);
        skipped.set(step, {
          reason: `the probe found the checksums of its ${groupDigits(rows)} row${rows === 1 ? '' : 's'} summed alike on ${step.source} and ${step.target}${window === undefined ? '' : ', and no row past the watermark'}`,
          unchanged: counted ? rows - others : 0,
          protected: others,
        });
      }
    } else if (step.probeKind === 'window') {
      const window = rowOf(source, 'probe-window', answers);
      const rows = rowOf(target, 'probe-rows', answers);
      if (window === undefined || rows === undefined) continue;
      const read = Number(window.rows);
      if (read <= PROBE_MAX_ROWS && window.not_newer === true && Number(rows.differing) === 0) {
        skipped.set(step, {
          reason: `the probe found the ${read} row${read === 1 ? '' : 's'} this step would read already on ${step.target} as they are${step.watermark === null ? '' : ', which leaves its watermark as it is'}`,
          unchanged: 0,
          protected: 0,
        });
      }
    }
  }
  // edits: both: the forward step writes both copies of the base; when it runs, so does reverse,
  // which then sees what forward wrote (as it would without the probe). A reverse step's sums may be
  // its forward step's answers (sharedAnswers): this is also what makes taking them safe.
  for (const step of [...skipped.keys()]) {
    if (step.edits === 'both' && step.direction === 'reverse' && planned.some((s) => s.table === step.table && s.direction === 'forward' && !skipped.has(s))) {
      skipped.delete(step);
    }
  }
  return { skipped };
}

/** One run row per skipped step, on its target: each database's in one batch (one round trip). */
async function recordRuns(skipped: Map<PlanStep, Skip>, dbs: Databases, run: Pick<StepOptions, 'runId'> & { planHash: string }, started: Date): Promise<void> {
  const byTarget = new Map<string, PlanStep[]>();
  for (const step of skipped.keys()) byTarget.set(step.target, [...(byTarget.get(step.target) ?? []), step]);
  await Promise.all(
    [...byTarget].map(async ([database, list]) => {
      const client = await dbs.client(database);
      try {
        await runTogether(client, [
          'BEGIN',
          ...list.map((step) => {
            const statement = (step.probe ?? []).find((s) => s.kind === 'record-run');
            if (statement === undefined) throw new Error(`the probe of ${step.table} ${step.direction} has no record-run statement`);
            return { statement, runtime: runRow({ runId: run.runId, attempt: 1, dryRun: false, allowDeletes: false }, run.planHash, 'succeeded', started, ZERO, step.watermark, null, NOTHING) };
          }),
          'COMMIT',
        ]);
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        await dbs.release(client);
      }
    }),
  );
}
