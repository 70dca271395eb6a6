import { Transform } from 'node:stream';
import type { Duplex, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { PlanStatement, PlanStep } from '../compiler/plan-types.js';
import { checkState, complete } from './bootstrap.js';
import { abandon } from './databases.js';
import { beforeRawCopy, decodeStaging } from './decode-staging.js';
import { classifyError, concurrentBaseWrite } from './error-class.js';
import { GuardRefusal, guardBaseline, guardOtherSideRows } from './guard.js';
import type { GuardStats } from './guard.js';
import type { Databases, WireCounts } from './databases.js';
import { PAIR_HELD, PAIR_LOCKED, pairLockHeld } from './pair-lock.js';
import { run, runTogether, statement } from './statements.js';
import type { Sendable } from './statements.js';
import { describeStepError, tagSide } from './step-error.js';
import { compareChecksums, setBuckets, sourceChecksum, targetChecksum } from './checksum-first.js';
import { SOURCE_BASE_CAP } from '../compiler/compile-plan.js';
import { wireSql } from '../compiler/wire-sql.js';

export type StepStatus = 'succeeded' | 'failed' | 'locked' | 'refused' | 'replan' | 'skipped' | 'interrupted';

export interface StepCounts {
  read: number;
  retried: number;
  inserted: number;
  updated: number;
  unchanged: number;
  protected: number;
  rejected: number;
  conflicts: number;
  /** Of `conflicts`, those parked in the conflicts table (the others are insert-only conflicts in rejects). */
  parked: number;
  deleted: number;
  /** Unmarked rows on T (origin column NULL) whose key F does not have: never deleted, reported. */
  unmarked: number;
}

export interface StepResult extends StepCounts {
  table: string;
  direction: string;
  status: StepStatus;
  mode: string;
  reason: string;
  planHash: string;
  watermarkBefore: string | null;
  watermarkAfter: string | null;
  durationMs: number;
  /** Target columns a sequence fills on insert (a dry run draws values PostgreSQL does not give back). */
  sequenceDefaults?: readonly string[];
  /** What went wrong, for failed and refused steps (never holds a password). */
  error?: string;
  errorCode?: string;
  /** For `replan`: the watermark found under the lock, which differs from the planned one. */
  currentWatermark?: string | null;
  /**
   * On the wire (set by apply around the step; SPEC §8): round trips (waits on the two databases
   * that overlap in time count once), the same per database, connections opened, bytes each way.
   */
  roundTrips?: number;
  roundTripsByDatabase?: Record<string, number>;
  connectionsOpened?: number;
  bytesSent?: number;
  bytesReceived?: number;
  /** checksum-first steps: key buckets holding rows on either side, and how many differed (only their rows were read). */
  checksum?: { buckets: number; differing: number };
  /** Set when the key sequence on T could not be advanced after inserts (the data still committed). */
  sequenceWarning?: string;
  /** `both` for an edits: both step: its conflicts are parked in the conflicts table, not rejects. */
  edits?: 'both';
  /** The run-level probe found nothing for this step to do: none of its statements ran (apply.ts, probe.ts). */
  notRun?: 'nothing to do';
  /** How many times the step was run again after a transient failure. */
  retries?: number;
  /** Rows this run recorded in rejects for the first time (the target refused them). */
  newRejects?: NewReject[];
  /**
   * deletes: mirror rows kept because rows this direction does not own still reference them
   * (deleting would cascade into, change or be refused by them): how many, and the first keys.
   */
  kept?: Kept;
  /** deletes: mirror: the first 20 keys of the rows it deleted (a dry run: would delete), as JSON objects. */
  deletedKeys?: string[];
}

/**
 * edits: both: the base versions the merge recorded in T's copy, for F's copy once T has committed
 * (record-source-base). `complete` turns false when a merge recorded more than it sends back.
 */
interface RecordedVersions {
  rows: unknown[];
  complete: boolean;
}

/** Rows a delete kept because rows this direction does not own still reference them: how many, and the first keys. */
export interface Kept {
  count: number;
  keys: string[];
}

/** A row the target refused for the first time: its key and why. */
export interface NewReject {
  key: Record<string, string>;
  errorCode: string;
  error: string;
}

export interface StepOptions {
  runId: string;
  /** 1 for the first run of this step in this run, 2… for retries after transient failures. */
  attempt?: number;
  dryRun: boolean;
  allowDeletes: boolean;
  /** Called with the number of rows streamed so far (for a progress display). */
  onProgress?: (rows: number) => void;
  /** Dry run: create missing state inside the step's transaction, so the rollback removes it too. */
  bootstrapInTransaction?: boolean;
  /**
   * Dry run over one transaction per database (dry-run.ts): the step commits its savepoint, so
   * the next steps see what it wrote; the whole run is rolled back at its end.
   */
  sharedTransaction?: boolean;
  /**
   * When this step last committed (its state row's updated_at) as read with the plan, before the
   * step's read opened. The read opens while the lock is requested; if the row changed since (another
   * run committed this step), that read may be older than the other run's, and is opened again.
   */
  stateVersion?: string | null;
  /** Test hook: called after the read on the source, before the merge (to widen race windows). */
  afterRead?: (step: PlanStep) => Promise<void>;
  /** Test hook: awaited when the first chunk of the COPY arrives, with the stream paused. */
  duringCopy?: (step: PlanStep) => Promise<void>;
  /** True once the run was interrupted (Ctrl-C): a step that then fails is recorded as interrupted. */
  interrupted?: () => boolean;
}

export const ZERO: StepCounts = { read: 0, retried: 0, inserted: 0, updated: 0, unchanged: 0, protected: 0, rejected: 0, conflicts: 0, parked: 0, deleted: 0, unmarked: 0 };


function add(a: StepCounts, b: Partial<StepCounts>): StepCounts {
  const out = { ...a };
  for (const key of Object.keys(out) as (keyof StepCounts)[]) out[key] += b[key] ?? 0;
  return out;
}

/**
 * Run one planned step (F → T) with every guarantee of SPEC §2: the lock, the staged COPY, the
 * merge with rejects, the guard, and the watermark and run row committed with the data.
 */
export async function runStep(step: PlanStep, dbs: Databases, planHash: string, options: StepOptions): Promise<StepResult> {
  const started = new Date();
  const startedMs = Date.now();
  const base = {
    table: step.table,
    direction: step.direction,
    mode: step.mode,
    reason: step.reason,
    planHash,
    watermarkBefore: step.watermark,
    ...(step.edits === undefined ? {} : { edits: step.edits }),
    sequenceDefaults: step.sequenceDefaults,
  };
  let counts: StepCounts = ZERO;
  const target = await dbs.client(step.target);
  let source: pg.Client | undefined;
  let sourceOpen = false;
  let copying = false;
  // edits: both reverse: the read transaction takes the forward step's lock and stays open until
  // the target has committed (its commit is the step's last statement). A dry run writes nothing
  // and leaves the lock out (the source may not have bisync's state yet).
  const holdsRead = step.statements.some((s) => s.kind === 'pair-lock');
  const pairLock = holdsRead && !options.dryRun ? [statement(step, 'pair-lock'), statement(step, 'read-only')] : [];
  const pairLocked = async (): Promise<StepResult> => {
    await target.query('ROLLBACK');
    return { ...base, ...counts, status: 'locked', error: PAIR_LOCKED, watermarkAfter: step.watermark, durationMs: Date.now() - startedMs };
  };
  try {
    // The opening statements need no answer from one another, so they travel together (one round
    // trip on a pipelined connection); the lock's answer is checked once they are all back. State
    // and guard reads made without the lock are discarded with the rollback.
    const opening: Sendable[] = [statement(step, 'begin-target'), statement(step, 'settings', 'target')];
    const counted = step.statements.some((s) => s.kind === 'guard-count');
    const locking: Sendable[] = [
      statement(step, 'lock'),
      statement(step, 'read-state'),
      statement(step, 'constraints-immediate'),
      statement(step, 'create-staging'),
      // edits: both with deletes: mirror measures max_delete_fraction against every row on the target before the merge.
      ...(counted ? [statement(step, 'guard-count')] : []),
    ];
    let opened: pg.QueryResult[] | 'locked';
    // The target's checksums, sent right behind the locking statements: their answer is awaited only
    // where it is used, so an edits: both forward step opens its read (once the lock is held) while
    // the target still sums its buckets, and both databases sum at the same time.
    let pendingSums: Promise<pg.QueryResult[]> | undefined;
    const sums = targetChecksum(step);
    // lock_not_available: another run holds this step's row of state.
    const unlessLocked = (error: unknown): 'locked' => {
      if ((error as { code?: unknown }).code === '55P03') return 'locked';
      throw error;
    };
    // Before the snapshot, in a short transaction of its own (its search_path pinned like every
    // other), the read horizon; then the snapshot and what it sees. No statement needs another's
    // answer, so they travel together (one round trip on a pipelined connection).
    const hasHorizon = step.statements.some((s) => s.kind === 'read-horizon');
    const hasXmin = step.statements.some((s) => s.kind === 'read-xmin');
    const horizonPart = hasHorizon ? from(step, 'begin-horizon') : [];
    const readPart = from(step, 'begin-source');
    // With the pair lock: 'locked' when the other direction holds it (the read is rolled back).
    const openRead = async (): Promise<pg.QueryResult[] | 'locked'> => {
      source ??= await dbs.client(step.source);
      const client = source;
      sourceOpen = true;
      // One round trip: the three parts are sent together; each is told apart by its answer.
      const [opened, locked, read] = await Promise.allSettled([
        runTogether(client, [
          ...(hasHorizon
            ? [statement(step, 'begin-horizon'), statement(step, 'settings', 'source', horizonPart), statement(step, 'read-horizon'), statement(step, 'commit', 'source', horizonPart)]
            : []),
          statement(step, 'begin-source'),
          statement(step, 'settings', 'source', readPart),
        ]),
        runTogether(client, pairLock),
        runTogether(client, [...(hasXmin ? [statement(step, 'read-xmin')] : []), ...sourceChecksum(step)]),
      ]);
      if (opened.status === 'rejected') throw opened.reason;
      if (locked.status === 'rejected') {
        if (!pairLockHeld(locked.reason)) throw locked.reason;
        await client.query('ROLLBACK');
        sourceOpen = false;
        return 'locked';
      }
      if (pairLock.length > 0 && locked.value[0]?.rows[0]?.locked !== true) {
        throw new Error(`the row of ${step.table} forward in ${step.stateSchema}.state is missing on ${step.source}; run apply again`);
      }
      if (read.status === 'rejected') throw read.reason;
      return [...opened.value, ...locked.value, ...read.value];
    };
    let reading: Promise<pg.QueryResult[] | 'locked'> | undefined;
    if (options.bootstrapInTransaction === true) {
      await runTogether(target, opening);
      if (!complete(await checkState(target, statement(step, 'check-state', 'target', step.bootstrap), step.target))) {
        await run(target, statement(step, 'bootstrap-lock', 'target', step.bootstrap));
        await run(target, statement(step, 'bootstrap', 'target', step.bootstrap));
      }
      await run(target, statement(step, 'claim-state-row', 'target', step.bootstrap));
      opened = await runTogether(target, [...locking, ...sums]).catch(unlessLocked);
    } else {
      // The two databases are independent: the read opens while the target locks (each in its
      // planned order). The read only reads; a step that stops at the lock rolls it back.
      // edits: both forward: the read opens once the lock is held. Reverse writes the desktop while it
      // holds this step's row of state (the pair lock), so only a read taken after that row is locked
      // is newer than every reverse step that committed there; an older one would undo its writes.
      source = await dbs.client(step.source);
      const locks = runTogether(target, [...opening, ...locking]);
      if (sums.length > 0) {
        pendingSums = runTogether(target, sums);
        pendingSums.catch(() => undefined);
      }
      if (!(step.edits === 'both' && step.direction === 'forward')) {
        reading = openRead();
        reading.catch(() => undefined);
      }
      opened = await locks.then((all) => all.slice(opening.length), unlessLocked);
    }
    // The other direction holds the pair lock (taken in the read): nothing was changed.
    if ((await reading?.catch(() => undefined)) === 'locked') return await pairLocked();
    const [locked, state] = opened === 'locked' ? [] : opened;
    if (locked !== undefined && locked.rows.length === 0) throw new Error(`the row of ${step.table} ${step.direction} in ${step.stateSchema}.state is missing on ${step.target}; run apply again`);
    // guard-count is the last of the locking statements.
    const rowsOnTarget = counted && opened !== 'locked' ? Number(opened[locking.length - 1]?.rows[0]?.rows_on_target ?? 0) : 0;
    const current = (state?.rows[0]?.watermark as string | null | undefined) ?? null;
    if (locked?.rows[0]?.locked !== true || current !== step.watermark) {
      await reading?.catch(() => undefined);
      await Promise.all([target.query('ROLLBACK'), sourceOpen ? source?.query('ROLLBACK') : undefined]);
      sourceOpen = false;
      if (locked?.rows[0]?.locked !== true) return { ...base, ...counts, status: 'locked', ...(step.edits === 'both' ? { error: PAIR_HELD } : {}), watermarkAfter: step.watermark, durationMs: Date.now() - startedMs };
      return { ...base, ...counts, status: 'replan', currentWatermark: current, watermarkAfter: current, durationMs: Date.now() - startedMs };
    }
    // The read opened alongside the lock may have taken its snapshot before another run that held
    // the lock meanwhile read and committed: merged, it would undo that run's writes (or mirror-delete
    // the rows it copied). Only a read opened after the plan's state read and with the step's row
    // unchanged since is newer than every committed run; otherwise it is opened again, under the lock.
    if (reading !== undefined && state?.rows[0]?.version !== options.stateVersion) {
      await reading.catch(() => undefined);
      if (sourceOpen) await source?.query('ROLLBACK');
      sourceOpen = false;
      reading = undefined;
    }
    const baseline = options.sharedTransaction === true ? await guardBaseline(target, step) : undefined;

    reading ??= openRead();
    reading.catch(() => undefined);
    const targetSums = pendingSums === undefined ? (opened === 'locked' ? undefined : opened.at(-1)) : (await pendingSums).at(-1);
    const readOpened = await reading;
    if (readOpened === 'locked') return await pairLocked();
    const horizonRow = hasHorizon ? readOpened[2]?.rows[0] : undefined;
    const horizon = (horizonRow?.horizon as string | undefined) ?? null;
    const hold = hasHorizon && horizonRow?.hold === true;
    const xminCursor = hasXmin ? ((readOpened.at(-1 - sourceChecksum(step).length)?.rows[0]?.xmin_cursor as string | undefined) ?? null) : null;
    if (source === undefined) throw new Error('the read did not open');
    // checksum-first (SPEC §8): only the buckets whose checksums differ are read; none, no copy.
    const checksum = step.compare === 'checksum' ? compareChecksums(readOpened.at(-1), targetSums) : null;
    let read = 0;
    if (checksum === null || checksum.differing.length > 0) {
      await runTogether(source, setBuckets(step, 'source', checksum));
      await beforeRawCopy(target, step);
      copying = true;
      read = await copyBetween(source, target, step, options.onProgress, options.duringCopy);
      copying = false;
    }
    counts = add(counts, { read, unchanged: checksum?.equalRows ?? 0, protected: checksum?.equalProtected ?? 0 });
    // The read's commit, the checks of the staged rows and the merge of rows 1..read (COPY numbers
    // them from 1) travel together: the two databases' answers are awaited at once.
    const closingRead = holdsRead ? Promise.resolve(undefined) : run(source, statement(step, 'commit', 'source', readPart));
    closingRead.catch(() => undefined);
    if (options.afterRead !== undefined) {
      await closingRead;
      await options.afterRead(step);
    }
    // A single-byte target: the staged rows are decoded first; rows it cannot hold are left out of the merge.
    const undecodable = await decodeStaging(target, step, read);
    const hasBaseKeys = step.statements.some((s) => s.kind === 'stage-base-keys');
    const bucketsSet = setBuckets(step, 'target', checksum);
    const checking = runTogether(target, [
      ...bucketsSet,
      statement(step, 'retry-rejects'),
      ...(hasBaseKeys ? [statement(step, 'stage-base-keys')] : []),
      statement(step, 'count-staged'),
      statement(step, 'analyze-staging'),
    ]);
    checking.catch(() => undefined);
    const newRejects: NewReject[] = [];
    // edits: both deletes in the merge, and keeps (reports) rows that others' rows still reference.
    const mergeKept: Kept = { count: 0, keys: [] };
    const recorded: RecordedVersions = { rows: [], complete: true };
    const merging = mergeRange(target, step, 1, read, newRejects, mergeKept, recorded);
    // The unmarked count, the guard's counters and the state; nothing commits before the guard is
    // checked. Without base keys, mirror deletes or undecodable rows to record nothing comes between
    // them and the merge in the plan: they travel with it. A merge that fails on a row fails them
    // too (the transaction is aborted until the rollback to its savepoint): then they run again
    // after the bisection.
    const hasUnmarked = step.statements.some((s) => s.kind === 'count-unmarked');
    const closingList: Sendable[] = [
      ...(hasUnmarked ? [statement(step, 'count-unmarked')] : []),
      statement(step, 'guard-stats'),
      { statement: statement(step, 'save-state'), runtime: { 'read horizon': horizon, 'xmin cursor': xminCursor, 'hold watermark': hold } },
    ];
    const folding = hasBaseKeys || undecodable.length > 0 || step.statements.some((s) => s.kind === 'mirror-deletes') ? undefined : runTogether(target, closingList);
    folding?.catch(() => undefined);
    const [checked, merged, readClosed] = await Promise.allSettled([checking, merging, closingRead]);
    if (readClosed.status === 'rejected') throw readClosed.reason;
    sourceOpen = holdsRead;
    if (checked.status === 'rejected') throw checked.reason;
    if (merged.status === 'rejected') throw merged.reason;
    counts = add(counts, { retried: checked.value[bucketsSet.length]?.rowCount ?? 0 });
    counts = add(counts, merged.value);
    // Rows the target's encoding cannot hold are recorded after the retry of earlier rejects (which
    // takes every pending reject of this step back).
    for (const u of undecodable) counts = add(counts, await recordReject(target, step, u.row, u, newRejects));
    const lastRow = Number(checked.value.at(-2)?.rows[0]?.last_row ?? 0);
    const folded = await folding?.catch((error: unknown) => {
      if ((error as { code?: unknown }).code === '25P02') return undefined;
      throw error;
    });
    // Rows numbered past the COPY's (none without base keys) are merged next, and the closing
    // statements run again after them.
    counts = add(counts, await mergeRange(target, step, read + 1, lastRow, newRejects, mergeKept, recorded));

    if (step.edits === 'both') checkThreeWayDeletes(step, counts.deleted, rowsOnTarget, options.allowDeletes);
    const mirrored = await mirrorDeletes(target, step, options);
    counts = add(counts, { deleted: mirrored.deleted });

    const closing = folded !== undefined && lastRow <= read ? folded : await runTogether(target, closingList);
    if (hasUnmarked) counts = add(counts, { unmarked: Number(closing[0]?.rows[0]?.unmarked ?? 0) });
    // setval is not undone by a rollback: a dry run leaves the sequence alone.
    const sequenceWarning = counts.inserted > 0 && !options.dryRun ? await advanceSequence(target, step) : null;
    const [stats, saved] = closing.slice(-2);
    // With edits: both the merge itself deletes rows the source deleted (and counted them above).
    await guardOtherSideRows(target, step, dbs, (stats?.rows ?? []) as GuardStats[], {
      deleted: counts.deleted,
      updated: counts.updated,
      deletedOnPurpose: step.edits === 'both' ? counts.deleted : 0,
    }, baseline);
    const watermarkAfter = (saved?.rows[0]?.watermark as string | null | undefined) ?? null;
    const status = options.dryRun ? 'dry-run' : 'succeeded';
    // The run row and the commit travel together: if the row fails, the COMMIT ends an aborted
    // transaction (a rollback) and the error below reports the step as failed. The row holds the
    // wire counts so far, this last round trip included (and the read's commit after it, if held).
    const wire = dbs.soFar([target, source]);
    const last = holdsRead ? 2 : 1;
    await runTogether(target, [
      {
        statement: statement(step, 'record-run'),
        runtime: runRow(options, planHash, status, started, counts, watermarkAfter, null, wire === undefined ? undefined : { ...wire, roundTrips: wire.roundTrips + last }),
      },
      options.dryRun && options.sharedTransaction !== true ? 'ROLLBACK' : statement(step, 'commit', 'target'),
    ]);
    // Only now that the target has committed: the read's commit, if it was held (it holds the
    // forward step's lock and wrote nothing), and the versions recorded in the target's copy of the
    // base into the source's copy, together. If they are lost with the connection, the lock is
    // released all the same, and the source's copy is brought up to date by a later step.
    const copyBack = options.dryRun || !recorded.complete || recorded.rows.length === 0 ? [] : recordSourceBase(step, recorded.rows);
    if (holdsRead || copyBack.length > 0) {
      sourceOpen = false;
      const targetCommit = step.statements.filter((s) => s.kind === 'commit' && s.side === 'target').at(-1);
      const afterCommit = step.statements.slice(targetCommit === undefined ? 0 : step.statements.indexOf(targetCommit) + 1);
      await runTogether(source, [...(holdsRead ? [statement(step, 'commit', 'source', afterCommit)] : []), ...copyBack]).catch(
        async () => await source?.query('ROLLBACK').catch(() => undefined),
      );
    }
    return {
      ...base,
      ...counts,
      status: 'succeeded',
      watermarkAfter: options.dryRun ? step.watermark : watermarkAfter,
      durationMs: Date.now() - startedMs,
      ...(newRejects.length === 0 ? {} : { newRejects }),
      ...(sequenceWarning === null ? {} : { sequenceWarning }),
      ...(mirrored.kept.count > 0 ? { kept: mirrored.kept } : mergeKept.count > 0 ? { kept: mergeKept } : {}),
      ...(checksum === null ? {} : { checksum: { buckets: checksum.buckets, differing: checksum.differing.length } }),
      ...(mirrored.deletedKeys.length > 0 ? { deletedKeys: mirrored.deletedKeys } : {}),
    };
  } catch (error) {
    await target.query('ROLLBACK').catch(() => undefined);
    // A COPY that did not finish leaves the source connection mid-protocol: a ROLLBACK would wait
    // behind it forever. Its transaction is read-only, so cutting the connection loses nothing.
    if (source !== undefined && copying) abandon(source);
    else if (source !== undefined && sourceOpen) await source.query('ROLLBACK').catch(() => undefined);
    const refused = error instanceof GuardRefusal;
    const message = describeStepError(error, step, dbs);
    const code = (error as { code?: unknown }).code;
    const status = refused ? 'refused' : options.interrupted?.() === true ? 'interrupted' : 'failed';
    if (!options.dryRun) await recordFailure(step, dbs, options, planHash, status, started, message);
    // Everything the step wrote was rolled back: its summary shows none of it (only what was read).
    return {
      ...base,
      ...ZERO,
      read: counts.read,
      status,
      watermarkAfter: step.watermark,
      durationMs: Date.now() - startedMs,
      error: message,
      ...(typeof code === 'string' ? { errorCode: code } : {}),
    };
  } finally {
    await dbs.release(target);
    if (source !== undefined) await dbs.release(source);
  }
}

/**
 * SPEC §2.1: deletes: mirror removes owned rows F no longer has, within max_delete_fraction, and
 * keeps (and reports) those still referenced by rows this direction does not own.
 */
async function mirrorDeletes(target: pg.Client, step: PlanStep, options: StepOptions): Promise<{ deleted: number; deletedKeys: string[]; kept: { count: number; keys: string[] } }> {
  if (!step.statements.some((s) => s.kind === 'mirror-deletes')) return { deleted: 0, deletedKeys: [], kept: { count: 0, keys: [] } };
  const plan = (await run<{ would_delete: string; would_delete_keys: string[]; owned: string; kept: string; kept_keys: string[] }>(target, statement(step, 'count-mirror-deletes'))).rows[0];
  const wouldDelete = Number(plan?.would_delete ?? 0);
  const owned = Number(plan?.owned ?? 0);
  const limit = step.maxDeleteFraction;
  if (wouldDelete > 0 && !options.allowDeletes && wouldDelete > owned * limit) {
    throw new GuardRefusal(
      `deletes: mirror would delete ${wouldDelete} of ${owned} rows this direction owns on ${step.target}, more than max_delete_fraction ${limit}; rerun with --allow-deletes if that is intended`,
    );
  }
  const deleted = Number((await run<{ deleted: string }>(target, statement(step, 'mirror-deletes'))).rows[0]?.deleted ?? 0);
  return { deleted, deletedKeys: deleted > 0 ? (plan?.would_delete_keys ?? []) : [], kept: { count: Number(plan?.kept ?? 0), keys: plan?.kept_keys ?? [] } };
}

/** The step's statements from the first of `kind` on. */
function from(step: PlanStep, kind: string): readonly PlanStatement[] {
  return step.statements.slice(step.statements.indexOf(statement(step, kind)));
}

/** COPY F → staging on T, streamed with backpressure: memory stays flat whatever the table size. */
async function copyBetween(
  source: pg.Client,
  target: pg.Client,
  step: PlanStep,
  onProgress?: (rows: number) => void,
  duringCopy?: (step: PlanStep) => Promise<void>,
): Promise<number> {
  const out = source.query(copyTo(wireSql(statement(step, 'copy-out').sql)));
  out.once('error', (error: unknown) => tagSide(error, 'source'));
  // If either connection drops mid-COPY the streams may never settle on their own: fail the step
  // (as a connection error, which apply retries) as soon as a client reports it is gone.
  let onGone: (() => void) | undefined;
  const lost = new Promise<never>((_, reject) => {
    onGone = () => reject(Object.assign(new Error(`a connection was lost during the COPY of ${step.table} ${step.direction}`), { code: '08006' }));
    for (const client of [source, target]) {
      client.once('end', onGone);
      client.once('error', onGone);
    }
  });
  lost.catch(() => undefined);
  const streams: (Readable | Writable | Duplex)[] = [out];
  try {
    // The target's COPY starts with the first row read: a read that finds nothing (a no-change
    // incremental step) sends the target nothing, which saves it two round trips on a slow link.
    if (!(await Promise.race([hasData(out), lost]))) return 0;
    const into = target.query(copyFrom(wireSql(statement(step, 'copy-in').sql)));
    into.once('error', (error: unknown) => tagSide(error, 'target'));
    let bytes = 0;
    let rows = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        if (bytes === 0 && duringCopy !== undefined) {
          bytes += chunk.length;
          duringCopy(step).then(() => callback(null, chunk), (error: unknown) => callback(error as Error));
          return;
        }
        bytes += chunk.length;
        if (onProgress !== undefined) {
          for (const byte of chunk) if (byte === 10) rows++;
          onProgress(rows);
        }
        callback(null, chunk);
      },
    });
    streams.push(counter, into);
    const piped = pipeline(out, counter, into);
    piped.catch(() => undefined);
    await Promise.race([piped, lost]);
    return Number(into.rowCount ?? 0) || (bytes === 0 ? 0 : rows);
  } catch (error) {
    for (const stream of streams) stream.destroy();
    throw error;
  } finally {
    for (const client of [source, target]) {
      if (onGone !== undefined) {
        client.removeListener('end', onGone);
        client.removeListener('error', onGone);
      }
    }
  }
}

/** Waits for the first chunk of a COPY TO and puts it back; false when the COPY ended without one. */
async function hasData(out: Readable): Promise<boolean> {
  return await new Promise<boolean>((resolve, reject) => {
    const settle = (): void => {
      out.removeListener('readable', readable);
      out.removeListener('end', ended);
      out.removeListener('error', failed);
    };
    const failed = (error: unknown): void => {
      settle();
      reject(error);
    };
    const ended = (): void => {
      settle();
      resolve(false);
    };
    const readable = (): void => {
      const chunk = out.read() as Buffer | null;
      if (chunk === null) return;
      // Stop listening before the chunk goes back, or putting it back would announce it again.
      settle();
      out.unshift(chunk);
      resolve(true);
    };
    out.on('readable', readable);
    out.once('end', ended);
    out.once('error', failed);
  });
}

/**
 * The planned merge over staged rows lo..hi. A row-level error rolls back to a savepoint and the
 * range is halved until the failing rows stand alone; those go to rejects with their reason.
 */
async function mergeRange(
  target: pg.Client,
  step: PlanStep,
  lo: number,
  hi: number,
  newRejects: NewReject[],
  kept: Kept,
  recorded: RecordedVersions,
): Promise<Partial<StepCounts>> {
  if (lo > hi) return {};
  try {
    // Savepoint, merge and release travel together; a failing merge fails the release too, and the
    // merge's own error is the one handled below.
    const [, result] = await runTogether(target, [
      'SAVEPOINT bisync_merge',
      { statement: statement(step, 'merge'), runtime: { 'first staged row': lo, 'last staged row': hi } },
      'RELEASE SAVEPOINT bisync_merge',
    ]);
    const row = (result?.rows[0] ?? {}) as Record<string, string>;
    const keptKeys = (result?.rows[0]?.kept_keys ?? []) as string[];
    kept.count += Number(row.kept ?? 0);
    kept.keys.push(...keptKeys.slice(0, Math.max(0, 20 - kept.keys.length)));
    if (step.edits === 'both') keepVersions(recorded, result?.rows[0]?.versions as unknown[] | null | undefined, Number(row.base_written ?? 0));
    return {
      inserted: Number(row.inserted ?? 0),
      updated: Number(row.updated ?? 0),
      unchanged: Number(row.unchanged ?? 0),
      protected: Number(row.protected ?? 0),
      deleted: Number(row.deleted ?? 0),
      ...mergeConflicts(step, row),
    };
  } catch (error) {
    // Two staged rows that are one key on the target make one merge record that key twice: the rows'
    // doing, bisected below like any row error. A single row cannot: then another run wrote the key.
    const concurrent = lo === hi ? concurrentBaseWrite(error, step) : null;
    if (concurrent !== null) {
      tagSide(concurrent, 'target');
      throw concurrent;
    }
    if (classifyError(error, step) !== 'row') throw error;
    const failure = error as { code: string; message: string };
    await target.query('ROLLBACK TO SAVEPOINT bisync_merge');
    await target.query('RELEASE SAVEPOINT bisync_merge');
    if (lo === hi) return await recordReject(target, step, lo, failure, newRejects);
    const mid = Math.floor((lo + hi) / 2);
    const left = await mergeRange(target, step, lo, mid, newRejects, kept, recorded);
    const right = await mergeRange(target, step, mid + 1, hi, newRejects, kept, recorded);
    return add(add(ZERO, left), right);
  }
}

/**
 * Keep the base versions one merge recorded (none sent back when it recorded more than
 * SOURCE_BASE_CAP); past the cap over the whole step, none is kept: memory stays bounded, and the
 * source's copy is left to the next step into the source.
 */
function keepVersions(recorded: RecordedVersions, versions: unknown[] | null | undefined, written: number): void {
  if (written === 0 || !recorded.complete) return;
  if (versions === null || versions === undefined || recorded.rows.length + versions.length > SOURCE_BASE_CAP) {
    recorded.complete = false;
    recorded.rows = [];
    return;
  }
  recorded.rows.push(...versions);
}

/** The statements that record `versions` in the source's copy of the base, in a short transaction of their own. */
function recordSourceBase(step: PlanStep, versions: readonly unknown[]): Sendable[] {
  const part = from(step, 'begin-source-base');
  return [
    statement(step, 'begin-source-base'),
    statement(step, 'settings', 'source', part),
    { statement: statement(step, 'record-source-base'), runtime: { 'versions recorded on the target': JSON.stringify(versions) } },
    statement(step, 'commit', 'source', part),
  ];
}

/** One staged row the target refused, kept in rejects with PostgreSQL's reason (SPEC §2.6). */
async function recordReject(
  target: pg.Client,
  step: PlanStep,
  stagedRow: number,
  failure: { code: string; message: string },
  newRejects: NewReject[],
): Promise<Partial<StepCounts>> {
  const recorded = await run<{ key: Record<string, string>; attempts: number }>(target, statement(step, 'reject-row'), {
    'staged row': stagedRow,
    SQLSTATE: failure.code,
    'error message': failure.message,
  });
  const row = recorded.rows[0];
  if (row !== undefined && row.attempts <= 1) newRejects.push({ key: row.key, errorCode: failure.code, error: failure.message });
  return { rejected: 1 };
}

/**
 * The merge's conflicts: insert-only ones are kept in rejects; edits: both conflicts and edits:
 * owner collisions (reverse upsert meeting a row bisync did not write) are parked in the conflicts table.
 */
function mergeConflicts(step: PlanStep, row: Record<string, string>): Pick<StepCounts, 'conflicts' | 'parked' | 'rejected'> {
  const reported = Number(row.conflicts ?? 0);
  if (step.edits === 'both') return { conflicts: reported, parked: reported, rejected: 0 };
  const parked = Number(row.parked ?? 0);
  return { conflicts: reported + parked, parked, rejected: reported };
}

/**
 * After inserting explicit keys, move T's key sequence (if any) past them (SPEC §7, Keys). A role
 * that may not touch the sequence must not fail the step: the data stands, the sequence is left.
 */
async function advanceSequence(target: pg.Client, step: PlanStep): Promise<string | null> {
  if (!step.statements.some((s) => s.kind === 'advance-sequence')) return null;
  await target.query('SAVEPOINT bisync_sequence');
  try {
    await run(target, statement(step, 'advance-sequence'));
    await target.query('RELEASE SAVEPOINT bisync_sequence');
    return null;
  } catch (error) {
    await target.query('ROLLBACK TO SAVEPOINT bisync_sequence');
    await target.query('RELEASE SAVEPOINT bisync_sequence');
    const message = error instanceof Error ? error.message : String(error);
    return `the key sequence of ${step.targetRelation} on ${step.target} was not advanced past the keys this step inserted (${message}); grant bisync's role USAGE and UPDATE on it, or the application there may hand out a key it just received`;
  }
}

/**
 * edits: both carries deletes in the merge: refuse (the whole step rolls back) when they exceed
 * max_delete_fraction of the rows on T, unless --allow-deletes (SPEC §2.1, §7).
 */
function checkThreeWayDeletes(step: PlanStep, deleted: number, rowsOnTarget: number, allowDeletes: boolean): void {
  const limit = step.maxDeleteFraction;
  if (deleted > 0 && !allowDeletes && deleted > rowsOnTarget * limit) {
    throw new GuardRefusal(
      `deletes made on ${step.source} would delete ${deleted} of ${rowsOnTarget} rows of ${step.targetRelation} on ${step.target}, more than max_delete_fraction ${limit}; the step was rolled back; rerun with --allow-deletes if that is intended`,
    );
  }
}

export function runRow(
  options: StepOptions,
  planHash: string,
  status: string,
  started: Date,
  counts: StepCounts,
  watermarkAfter: string | null,
  error: string | null,
  wire?: WireCounts,
): Record<string, unknown> {
  return {
    'run id': options.runId,
    attempt: options.attempt ?? 1,
    'plan hash': planHash,
    status,
    'started at': started.toISOString(),
    read: counts.read,
    inserted: counts.inserted,
    updated: counts.updated,
    unchanged: counts.unchanged,
    protected: counts.protected,
    rejected: counts.rejected,
    deleted: counts.deleted,
    'watermark after': watermarkAfter,
    error,
    'round trips': wire?.roundTrips ?? null,
    'bytes sent': wire?.bytesSent ?? null,
    'bytes received': wire?.bytesReceived ?? null,
  };
}

/** A failed or refused step still leaves one row in runs, written on a fresh connection after the rollback. */
async function recordFailure(
  step: PlanStep,
  dbs: Databases,
  options: StepOptions,
  planHash: string,
  status: string,
  started: Date,
  message: string,
): Promise<void> {
  let client: pg.Client | undefined;
  try {
    client = await dbs.client(step.target);
    // The step's own transaction statements: the search_path is pinned here too.
    await run(client, statement(step, 'begin-target'));
    await run(client, statement(step, 'settings', 'target'));
    await run(client, statement(step, 'record-run'), runRow(options, planHash, status, started, ZERO, step.watermark, message));
    await run(client, statement(step, 'commit', 'target'));
  } catch {
    // Bookkeeping only: the step's own outcome is already decided and reported.
    await client?.query('ROLLBACK').catch(() => undefined);
  } finally {
    if (client !== undefined) await dbs.release(client);
  }
}
