import type pg from 'pg';
import type { Logger } from 'pino';
import { compileVerify } from '../compiler/compile-verify.js';
import { triggerWarnings } from '../compiler/live-warnings.js';
import type { VerifyPlan, VerifyTable } from '../compiler/compile-verify.js';
import type { Direction, ResolvedConfig } from '../config/types.js';
import { ExitCode } from '../errors.js';
import { redact } from '../executor/connect.js';
import { Databases } from '../executor/databases.js';
import { VerifyReader } from '../executor/verify-reader.js';
import { compareBuckets } from '../executor/bucket-sums.js';
import type { BucketSum } from '../executor/bucket-sums.js';
import { DriftTally, classify, mergeByKey } from './verify-drift.js';
import type { Finding } from './verify-drift.js';
import { readCatalogs } from './validate.js';

export interface VerifyOptions {
  /** Config table names; empty means all. */
  tables?: readonly string[];
  logger?: Logger;
}

export interface TableVerifyResult {
  table: string;
  /** `in-step`, `drift`, or `failed` (the comparison itself could not run; see `error`). */
  status: 'in-step' | 'drift' | 'failed';
  directions: readonly Direction[];
  deletes: 'keep' | 'mirror';
  origin: { column: string; forward: string; reverse: string } | null;
  /** The table on each database (config database name → schema.table). */
  relations: Record<string, string>;
  /** Row count on each database. */
  rows: Record<string, number>;
  /** Key buckets holding rows on either side, and how many of them differ. */
  buckets: { compared: number; differing: number };
  inStep: number;
  /** Rows counted as drift (the findings with `drift: true`). */
  drifted: number;
  findings: Finding[];
  /**
   * Synced columns a BEFORE trigger sets on a written database: drift in them is that trigger's
   * doing (bisync does not control those values), with what to do.
   */
  notes: string[];
  error?: string;
}

export interface VerifyReport {
  /** True when every table is in step. */
  ok: boolean;
  config: string;
  /** The forward source and target databases. */
  from: string;
  to: string;
  /** What verify expects of each row, in words (also printed as the header). */
  rules: string[];
  tables: TableVerifyResult[];
  exitCode: number;
}

/**
 * `bisync verify`: per table, compare both databases by checksums over key buckets computed on each
 * server, then diff only the rows of differing buckets. Read-only on both sides.
 */
export async function verifyCommand(config: ResolvedConfig, options: VerifyOptions = {}): Promise<VerifyReport> {
  const { catalogs, state } = await readCatalogs(config);
  const plan = compileVerify(config, catalogs, options.tables ?? [], state);
  const triggerNotes = triggerWarnings(config, catalogs);
  const dbs = new Databases(config);
  const tables: TableVerifyResult[] = [];
  try {
    const from = await dbs.client(plan.from);
    const to = await dbs.client(plan.to);
    for (const table of plan.tables) {
      const result = await verifyTable(table, from, to, config);
      result.notes = triggerNotes.filter((w) => w.table === table.table).map((w) => `on ${w.database}, ${w.message}; ${w.hint}`);
      options.logger?.info({ table: table.table, status: result.status, drifted: result.drifted, buckets: result.buckets }, 'table verified');
      tables.push(result);
    }
  } finally {
    await dbs.close();
  }
  const ok = tables.every((t) => t.status === 'in-step');
  return { ok, config: config.file, from: plan.from, to: plan.to, rules: verifyRules(plan), tables, exitCode: ok ? ExitCode.ok : ExitCode.stepFailed };
}

async function verifyTable(table: VerifyTable, fromClient: pg.Client, toClient: pg.Client, config: ResolvedConfig): Promise<TableVerifyResult> {
  const tally = new DriftTally(table);
  const { from: fromSide, to: toSide } = table;
  const result: TableVerifyResult = {
    table: table.table,
    status: 'in-step',
    directions: table.directions,
    deletes: table.deletes,
    origin: table.origin === null ? null : { ...table.origin },
    relations: { [fromSide.database]: fromSide.relation, [toSide.database]: toSide.relation },
    rows: { [fromSide.database]: 0, [toSide.database]: 0 },
    buckets: { compared: 0, differing: 0 },
    inStep: 0,
    drifted: 0,
    findings: tally.findings,
    notes: [],
  };
  const from = new VerifyReader(fromClient, fromSide);
  const to = new VerifyReader(toClient, toSide);
  try {
    await from.begin();
    await to.begin();
    const fromBuckets = await from.buckets();
    const toBuckets = await to.buckets();
    result.rows = { [fromSide.database]: sum(fromBuckets), [toSide.database]: sum(toBuckets) };
    const { differing, inStep, compared } = compareBuckets(fromBuckets, toBuckets);
    result.buckets = { compared, differing: differing.length };
    tally.inStep += inStep;
    if (differing.length > 0) {
      await mergeByKey(from.rows(differing), to.rows(differing), (f, t) => {
        const row = f ?? t;
        if (row !== undefined) tally.add(classify(table, f, t), row);
      });
    }
    await from.end();
    await to.end();
  } catch (error) {
    await from.abort();
    await to.abort();
    const message = error instanceof Error ? error.message : String(error);
    const urls = Object.values(config.databases).map((d) => d.url);
    result.status = 'failed';
    result.error = urls.reduce((text, url) => redact(text, url), message);
    return result;
  }
  result.inStep = tally.inStep;
  result.drifted = tally.drifted;
  result.status = result.drifted > 0 ? 'drift' : 'in-step';
  return result;
}

function sum(buckets: readonly BucketSum[]): number {
  return buckets.reduce((n, b) => n + b.rows, 0);
}

/** Buckets whose row count or checksum differ (or that one side lacks), and the rows of the equal ones. */
/** The rules verify applies, in words, for the output header and the JSON document. */
export function verifyRules(plan: Pick<VerifyPlan, 'from' | 'to'>): string[] {
  const { from, to } = plan;
  return [
    `Compared per table: rows and a checksum per bucket of keys, computed on each server; then keys and row checksums of the differing buckets only. Rows are compared on the synced columns (mapped names matched); a column whose type differs between the sides is compared after passing through both types, so rounding, padding or widening on the way across is not drift.`,
    `Tables synced forward: every ${from} row must be on ${to} with the same content.`,
    `Tables synced reverse: every ${to} row owned by ${to} (origin column = the reverse value; every row when the table has no origin rule) must be on ${from}.`,
    `Extra on ${to}: a row owned by ${from} (origin = the forward value) that ${from} lacks. It is drift even with deletes: keep, which only means forward never removes it.`,
    `Unmarked on ${to}: a row whose origin column is NULL that ${from} lacks. No side claims it: forward never deletes it and reverse never sends it. It is drift until someone sets its marker.`,
    `Drift the cursor missed: a row that differs whose cursor value on its owner's side is older than that direction's watermark less lookback: incremental runs never read it again (it was edited without updating its cursor column). A full run of that direction sends it.`,
    `Owned by the other side, differs: a ${to} row owned by ${to} whose content differs from the ${from} row with its key. Forward never overwrites it (it counts as protected), so it is listed but not drift.`,
    `Not synced: rows no step of the table moves (e.g. ${to}-owned rows of a table synced forward only); counted, not drift.`,
    'Exit 1 when any table drifts (or cannot be compared), 0 when every table is in step.',
  ];
}
