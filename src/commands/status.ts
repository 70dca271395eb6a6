import type pg from 'pg';
import { watermarkAhead } from '../compiler/compile-plan.js';
import { compileStatus } from '../compiler/compile-status.js';
import type { SessionWarning } from '../compiler/session-warnings.js';
import type { ResolvedConfig } from '../config/types.js';
import { ExitCode } from '../errors.js';
import { checkState, stateCheckStatement } from '../executor/bootstrap.js';
import { Databases } from '../executor/databases.js';
import { readOnly as pinnedReadOnly } from '../executor/read-only.js';
import { run } from '../executor/statements.js';
import { readCatalogs } from './validate.js';

export interface StepStatus {
  table: string;
  direction: string;
  source: string;
  target: string;
  watermark: string | null;
  lastRun: {
    status: string;
    mode: string;
    finishedAt: string;
    read: number;
    inserted: number;
    updated: number;
    unchanged: number;
    protected: number;
    rejected: number;
    deleted: number;
    error: string | null;
    /** On the wire (SPEC §8), counted when the run row was written; null for a run that did not get that far or predates the columns. */
    roundTrips: number | null;
    bytesSent: number | null;
    bytesReceived: number | null;
  } | null;
  /** Rows in rejects for this step (reason error), retried by every run until they apply. */
  pendingRejects: number;
  /** insert-only conflicts recorded in rejects (reason conflict), and edits: both conflicts parked on this step's target. */
  pendingConflicts: number;
  /** Of `pendingConflicts`, those parked in the conflicts table (edits: both, or edits: owner collisions): `bisync conflicts` lists them. */
  parkedConflicts: number;
  /** `both` for an edits: both table. */
  edits?: 'owner' | 'both';
  /** Rows on the source newer than the watermark; null when the source has no cursor columns. */
  waiting: number | null;
  /** Set when the watermark is ahead of the source's clock: not trusted, the next run reads in full. */
  watermarkAhead?: true;
  /** Forward steps with an origin rule: rows on the target whose origin column is NULL; else null. */
  unmarked: number | null;
}

interface LastRunRow {
  table_name: string;
  direction: string;
  watermark: string | null;
  status: string | null;
  mode: string | null;
  finished_at: string | null;
  read_rows: string | null;
  inserted: string | null;
  updated: string | null;
  unchanged: string | null;
  protected: string | null;
  rejected: string | null;
  deleted: string | null;
  error: string | null;
  round_trips: string | null;
  bytes_sent: string | null;
  bytes_received: string | null;
  pending_rejects: string;
  pending_conflicts: string;
  parked_conflicts: string;
}

export interface StatusReport {
  /** False when a step needs its owner: its last run did not succeed, or rejects or conflicts are pending. */
  ok: boolean;
  steps: StepStatus[];
  /** One sentence per thing that needs the owner (empty when ok). */
  attention: string[];
  /** What works less safely than it could (e.g. the late-commit clamp without pg_read_all_stats); not a failure. */
  warnings: SessionWarning[];
  /** 1 when not ok (SPEC §3: status exits 1 when a step's last run failed or rows are pending), else 0. */
  exitCode: number;
}

/** Last-run results that need the owner. */
const UNSUCCESSFUL = new Set(['failed', 'refused', 'interrupted', 'skipped']);

/** What needs the owner in these steps, one sentence each. */
export function attentionOf(steps: readonly StepStatus[]): string[] {
  const out: string[] = [];
  for (const s of steps) {
    const name = `${s.table} ${s.direction}`;
    if (s.lastRun !== null && UNSUCCESSFUL.has(s.lastRun.status)) {
      out.push(`${name}: last run ${s.lastRun.status} at ${s.lastRun.finishedAt}${s.lastRun.error === null ? '' : `: ${s.lastRun.error}`}`);
    }
    if (s.watermarkAhead === true) {
      out.push(`${name}: watermark ${s.watermark ?? ''} is ahead of ${s.source}'s clock; bisync never saves one past the source's clock, so someone else wrote it: the next run reads in full and replaces it`);
    }
    if (s.pendingRejects > 0) out.push(`${name}: ${s.pendingRejects} rejected row${s.pendingRejects === 1 ? '' : 's'} pending (bisync rejects --table ${s.table})`);
    if (s.unmarked !== null && s.unmarked > 0) {
      out.push(
        `${name}: ${s.unmarked} unmarked row${s.unmarked === 1 ? '' : 's'} on ${s.target} (origin column NULL): forward stamps those ${s.source} holds; the others are never deleted and never sent until someone sets their marker (bisync verify --table ${s.table} names them)`,
      );
    }
    const insertOnly = s.pendingConflicts - s.parkedConflicts;
    if (insertOnly > 0) out.push(`${name}: ${insertOnly} conflict${insertOnly === 1 ? '' : 's'} pending (bisync rejects --table ${s.table})`);
    if (s.parkedConflicts > 0) out.push(`${name}: ${s.parkedConflicts} conflict${s.parkedConflicts === 1 ? '' : 's'} pending (bisync conflicts --table ${s.table})`);
  }
  return out;
}

/** `bisync status`: per step, watermark, last run whatever its result, pending rejects and rows waiting. Read-only. */
export async function statusCommand(config: ResolvedConfig, tables: readonly string[]): Promise<StatusReport> {
  const { catalogs } = await readCatalogs(config);
  const plan = compileStatus(config, catalogs, tables);
  const dbs = new Databases(config);
  const rows = new Map<string, LastRunRow>();
  try {
    for (const { database, statement } of plan.lastRuns) {
      await readOnly(dbs, database, async (client) => {
        const present = await checkState(client, stateCheckStatement(config.stateSchema), database);
        if (!present.state || !present.runs || !present.rejects) return;
        for (const row of (await run<LastRunRow>(client, statement)).rows) rows.set(`${row.table_name}/${row.direction}`, row);
      });
    }
    const result: StepStatus[] = [];
    for (const step of plan.steps) {
      const row = rows.get(`${step.table}/${step.direction}`);
      const watermark = row?.watermark ?? null;
      const waitingQuery = step.waiting(watermark);
      let waiting: number | null = null;
      if (waitingQuery !== null) {
        await readOnly(dbs, step.source, async (client) => {
          await run(client, step.settings);
          waiting = Number((await run<{ waiting: string }>(client, waitingQuery)).rows[0]?.waiting ?? 0);
        });
      }
      let unmarked: number | null = null;
      const unmarkedQuery = step.unmarked;
      if (unmarkedQuery !== null) {
        await readOnly(dbs, step.target, async (client) => {
          unmarked = Number((await run<{ unmarked: string }>(client, unmarkedQuery)).rows[0]?.unmarked ?? 0);
        });
      }
      result.push({
        table: step.table,
        direction: step.direction,
        source: step.source,
        target: step.target,
        watermark,
        lastRun:
          row?.status === null || row?.status === undefined
            ? null
            : {
                status: row.status,
                mode: row.mode ?? '',
                finishedAt: row.finished_at ?? '',
                read: Number(row.read_rows ?? 0),
                inserted: Number(row.inserted ?? 0),
                updated: Number(row.updated ?? 0),
                unchanged: Number(row.unchanged ?? 0),
                protected: Number(row.protected ?? 0),
                rejected: Number(row.rejected ?? 0),
                deleted: Number(row.deleted ?? 0),
                error: row.error,
                roundTrips: nullableNumber(row.round_trips),
                bytesSent: nullableNumber(row.bytes_sent),
                bytesReceived: nullableNumber(row.bytes_received),
              },
        pendingRejects: Number(row?.pending_rejects ?? 0),
        pendingConflicts: Number(row?.pending_conflicts ?? 0),
        parkedConflicts: Number(row?.parked_conflicts ?? 0),
        edits: config.tables.find((t) => t.name === step.table)?.edits ?? 'owner',
        waiting,
        unmarked,
        ...(step.cursors.length > 0 && watermarkAhead(watermark, step.sourceClock) ? { watermarkAhead: true as const } : {}),
      });
    }
    const attention = attentionOf(result);
    return { ok: attention.length === 0, steps: result, attention, warnings: plan.warnings, exitCode: attention.length === 0 ? ExitCode.ok : ExitCode.stepFailed };
  } finally {
    await dbs.close();
  }
}

function nullableNumber(value: string | null): number | null {
  return value === null ? null : Number(value);
}

async function readOnly(dbs: Databases, database: string, fn: (client: pg.Client) => Promise<void>): Promise<void> {
  const client = await dbs.client(database);
  try {
    await pinnedReadOnly(client, async () => await fn(client));
  } finally {
    await dbs.release(client);
  }
}
