import { sha256 } from '../sha256.js';
import type { Direction, ResolvedConfig, ResolvedTable } from '../config/types.js';
import { didYouMean } from '../config/suggest.js';
import { BisyncError, ExitCode } from '../errors.js';
import type { Catalog, CatalogReference, CatalogTable } from './catalog.js';
import { checkSafety, rowSecurityFinding } from './check-safety.js';
import { chooseChecksum, threeWayChecksum } from './checksum-step.js';
import { SYNC_BUCKET_BITS, syncChecksumColumns } from './bucket-checksum.js';
import type { StepChecksum } from './checksum-step.js';
import type { ChecksumColumn } from './bucket-checksum.js';
import { checkCatalogs } from './check-catalog.js';
import { adoptionMode, collisionSafety } from './collision-safety.js';
import { sessionWarnings } from './session-warnings.js';
import type { LiveProblem } from './check-catalog.js';
import { syncedColumns } from './columns.js';
import type { ColumnMapping, Plan, PlanStatement, PlanStep, Side, StepMode, UnplannedStep } from './plan-types.js';
import { displayName, quoteQualified } from './quote-ident.js';
import { renderSql } from './render-sql.js';
import type { TemplateReference } from './render-sql.js';
import type { QualifiedName } from '../config/types.js';

export type DirectionOption = Direction | 'both';
export type ModeOption = 'auto' | 'full' | 'incremental';

export interface CompileOptions {
  direction: DirectionOption;
  /** Config table names to run; empty or absent means all. */
  tables?: readonly string[];
  mode: ModeOption;
  /** Rows in rejects per step (`stepKey`), read with the state: a step with any reads in full. */
  pendingRejects?: Readonly<Record<string, number>>;
  /** Steps (`stepKey`) whose state row predates the base they keep for collision safety (SPEC §7). */
  untrackedBase?: readonly string[];
}

/** Watermarks read from each target's state table, keyed by `stepKey(table, direction)`. */
export type StateSnapshot = Readonly<Record<string, string | null>>;

/** What an xmin step saved on its last run (SPEC §8): the read snapshot's xmin, the table's file, the server. */
export interface XminCursor {
  /** 64-bit transaction id, as text. */
  readonly xmin: string;
  readonly relfilenode: string | null;
  readonly system: string | null;
}

/** Saved xmin cursors, keyed by `stepKey(table, direction)`. */
export type XminState = Readonly<Record<string, XminCursor>>;

/** Past this many transactions since the last read, 32-bit xids may have wrapped: read in full. */
const XID_WRAP_DISTANCE = 2n ** 31n;

export const STAGE_TABLE = 'bisync_stage';

/**
 * edits: both: the most base versions a merge sends back for the source's copy of the base
 * (record-source-base). They are held in memory until the target commits; a step that records
 * more leaves the source's copy to the next step into the source (bounded memory, SPEC §2.4).
 */
export const SOURCE_BASE_CAP = 10_000;

export function stepKey(table: string, direction: Direction): string {
  return `${table}/${direction}`;
}

/** The plan could not be compiled: the config does not fit the databases, or the options are wrong. */
export class CompileError extends BisyncError {
  readonly problems: readonly LiveProblem[];

  constructor(message: string, problems: readonly LiveProblem[] = [], hint?: string) {
    super('PLAN_INVALID', message, { exitCode: ExitCode.usage, ...(hint === undefined ? {} : { hint }) });
    this.problems = problems;
  }
}

/**
 * `(config, catalogs, state, options) → Plan`. Pure and deterministic: the same input gives a
 * byte-identical plan, and `apply` runs exactly these statements.
 */
export function compilePlan(
  config: ResolvedConfig,
  catalogs: Readonly<Record<string, Catalog>>,
  state: StateSnapshot,
  options: CompileOptions,
  xminState: XminState = {},
): Plan {
  const selected = selectTables(config, options.tables ?? []);
  const problems = checkCatalogs({ ...config, tables: selected }, catalogs);
  const broken = new Map<string, LiveProblem[]>();
  for (const p of problems) broken.set(p.table, [...(broken.get(p.table) ?? []), p]);
  // One table that does not fit the databases must not stop the others; only when none fits is
  // there nothing to run.
  if (problems.length > 0 && selected.every((t) => broken.has(t.name))) {
    throw new CompileError(
      `the config does not match the databases:\n${problems.map((p) => `  ${problemLine(config, p)}`).join('\n')}`,
      problems,
      'run `bisync validate --live` for details and hints',
    );
  }
  const safety = checkSafety({ ...config, tables: selected }, catalogs).warnings;
  const phases: Direction[] = options.direction === 'both' ? ['forward', 'reverse'] : [options.direction];
  const steps: PlanStep[] = [];
  const unplanned: UnplannedStep[] = [];
  for (const direction of phases) {
    const cannot = new Set<string>();
    for (const table of selected) {
      if (!table.directions.includes(direction)) continue;
      const tableProblems = broken.get(table.name);
      const blockedBy = table.after.filter((a) => cannot.has(a));
      if (tableProblems !== undefined) {
        cannot.add(table.name);
        unplanned.push(unplannedStep(config, state, table, direction, 'failed', tableProblems.map((p) => problemLine(config, p)).join('; ')));
      } else if (blockedBy.length > 0) {
        cannot.add(table.name);
        unplanned.push(unplannedStep(config, state, table, direction, 'skipped', `runs after ${blockedBy.join(', ')}, which cannot run in this direction`));
      } else {
        steps.push(compileStep(config, catalogs, state, xminState, options, table, direction, safety));
      }
    }
  }
  return {
    version: 1,
    config: config.file,
    stateSchema: config.stateSchema,
    steps,
    ...(unplanned.length === 0 ? {} : { unplanned }),
    warnings: sessionWarnings({ ...config, tables: selected }, catalogs),
    hash: sha256(steps.map((s) => s.hash).join('\n')),
  };
}

function problemLine(config: ResolvedConfig, p: LiveProblem): string {
  return `${config.file}:${p.location.line}:${p.location.column}: table "${p.table}" on ${p.database} (${p.relation}): ${p.message}`;
}

function unplannedStep(
  config: ResolvedConfig,
  state: StateSnapshot,
  table: ResolvedTable,
  direction: Direction,
  status: 'failed' | 'skipped',
  reason: string,
): UnplannedStep {
  const { from: source, to: target } = direction === 'forward' ? config.forward : config.reverse;
  const { sql, params } = renderSql('record-run', {
    schema: config.stateSchema,
    table: table.name,
    direction,
    mode: 'none',
    reason: status === 'failed' ? 'could not be planned' : 'skipped',
    watermarkBefore: state[stepKey(table.name, direction)] ?? null,
  });
  return { table: table.name, direction, source, target, status, reason, recordRun: { kind: 'record-run', side: 'target', purpose: `record that this step ${status === 'failed' ? 'could not be planned' : 'was skipped'}`, sql, params } };
}

/** The configured tables `--table` names (all when none), or a CompileError naming the unknown ones. */
export function selectTables(config: ResolvedConfig, names: readonly string[]): ResolvedTable[] {
  if (names.length === 0) return [...config.tables];
  const known = config.tables.map((t) => t.name);
  const unknown = names.filter((n) => !known.includes(n));
  if (unknown.length > 0) {
    throw new CompileError(
      `--table names ${unknown.map((n) => `"${n}"`).join(', ')}, not in ${config.file}`,
      [],
      unknown.map((n) => didYouMean(n, known)).filter((h) => h !== '').join(' ') || `tables: ${known.join(', ')}`,
    );
  }
  return config.tables.filter((t) => names.includes(t.name));
}

function chooseMode(
  cursors: readonly string[],
  watermark: string | null,
  option: ModeOption,
  sourceName: string,
  table: string,
  sourceClock?: string,
): { mode: StepMode; reason: string } {
  if (option === 'full') return { mode: 'full', reason: '--mode full' };
  if (cursors.length === 0) {
    if (option === 'incremental') {
      throw new CompileError(
        `--mode incremental: table "${table}" has no cursor columns on ${sourceName}`,
        [],
        `add timestamps: { ${sourceName}: [updated_at] } to the table, or use --mode auto`,
      );
    }
    return { mode: 'full', reason: `no cursor columns on ${sourceName}: every row is read and compared; only changed rows are written` };
  }
  if (watermark === null) {
    return { mode: 'full', reason: 'no watermark yet (first run, or nothing read so far): every row is read' };
  }
  if (watermarkAhead(watermark, sourceClock)) {
    return {
      mode: 'full',
      reason: `watermark ${watermark} is ahead of ${sourceName}'s clock (${sourceClock ?? ''}); bisync never saves one past the source's clock, so it is not trusted: every row is read`,
    };
  }
  return { mode: 'incremental', reason: `watermark ${watermark} on ${cursors.join(', ')}, minus the lookback` };
}

// Server encodings of one byte per character: PostgreSQL accepts any byte into them, so UTF-8 bytes
// can be staged unconverted and decoded row by row.
const SINGLE_BYTE = /^(LATIN([1-9]|10)|WIN(125[0-8]|866|874)|KOI8[RU]|ISO_8859_[5-8])$/;

/**
 * How the target stages text (SPEC §2.6): a single-byte target that may not hold every character
 * the source sends stages the raw UTF-8 bytes and decodes per row (`raw`), so one such character
 * rejects one row; other non-UTF8 targets convert during the COPY, which fails the table (warned).
 */
export function stagingEncoding(source: string | undefined, target: string | undefined): { raw: boolean; warning: string | null } {
  if (target === undefined || target === 'UTF8' || target === 'SQL_ASCII' || target === source) return { raw: false, warning: null };
  if (SINGLE_BYTE.test(target)) return { raw: true, warning: null };
  return {
    raw: false,
    warning: `server encoding ${target}: a character it cannot hold fails the COPY of the whole table, not one row (only single-byte encodings are decoded row by row); a UTF8 database holds every character`,
  };
}

/** How far a watermark may be ahead of the source's clock (clock adjustments) before it is not trusted. */
export const WATERMARK_CLOCK_TOLERANCE_MS = 5 * 60 * 1000;

/**
 * Whether a watermark lies past the source's clock by more than the tolerance. bisync keeps every
 * watermark below the source's clock when it saves it, so such a watermark was written by someone
 * else (or the clock went back): reading from it would skip every row written until then.
 */
export function watermarkAhead(watermark: string | null, sourceClock: string | undefined): boolean {
  if (watermark === null || sourceClock === undefined) return false;
  const mark = Date.parse(watermark);
  const clock = Date.parse(sourceClock);
  if (Number.isNaN(clock)) return false;
  // Past year 9999 the text no longer parses: far ahead by any measure.
  return Number.isNaN(mark) || mark - clock > WATERMARK_CLOCK_TOLERANCE_MS;
}

/** Why a saved read snapshot cannot tell which rows were written since (null: it can). */
function xminUnusable(saved: XminCursor | undefined, source: Catalog | undefined, table: CatalogTable): string | null {
  if (saved === undefined) return 'no read snapshot saved yet (first run)';
  const server = source?.server;
  if (server === undefined) return "the server's transaction ids are unknown";
  if (saved.system !== null && server.systemId !== null && saved.system !== server.systemId) {
    return `a different server than the last read (system identifier ${saved.system} → ${server.systemId})`;
  }
  if (saved.relfilenode !== (table.relfilenode ?? null)) {
    return `the table was rewritten since the last read (relfilenode ${saved.relfilenode} → ${table.relfilenode ?? 'none'}; VACUUM FULL, CLUSTER, emptying the table or a rewriting ALTER)`;
  }
  const since = BigInt(saved.xmin);
  const next = BigInt(server.nextXid);
  if (since > next) return `the saved transaction id ${saved.xmin} is ahead of the server's ${server.nextXid} (restored or reset server)`;
  if (next - since >= XID_WRAP_DISTANCE) return `${next - since} transactions since the last read, past the 2^31 a 32-bit xmin can tell apart (wraparound)`;
  return null;
}

/**
 * Mode of a step whose source is read by row xmin: incremental from the saved snapshot xmin, unless
 * something makes that unsafe — then in full, saying why (SPEC §8: it errs only towards reading more).
 */
function chooseXminMode(
  saved: XminCursor | undefined,
  source: Catalog | undefined,
  table: CatalogTable,
  option: ModeOption,
  sourceName: string,
): { mode: StepMode; reason: string; since: string | null } {
  const full = (reason: string): { mode: StepMode; reason: string; since: null } => ({ mode: 'full', reason, since: null });
  if (option === 'full') return full('--mode full');
  const why = xminUnusable(saved, source, table);
  if (why !== null || saved === undefined) return full(`xmin on ${sourceName}: ${why ?? ''}: every row is read`);
  return { mode: 'incremental', reason: `xmin on ${sourceName}: rows written by transactions from ${saved.xmin} on (the oldest one still running at the last read)`, since: saved.xmin };
}

function compileStep(
  config: ResolvedConfig,
  catalogs: Readonly<Record<string, Catalog>>,
  state: StateSnapshot,
  xminState: XminState,
  options: CompileOptions,
  table: ResolvedTable,
  direction: Direction,
  safety: readonly LiveProblem[],
): PlanStep {
  const { from: sourceName, to: targetName } = direction === 'forward' ? config.forward : config.reverse;
  const warnings = safety
    .filter((w) => w.table === table.name && (w.database === sourceName || w.database === targetName))
    .map((w) => `${w.database} ${w.relation}: ${w.message}${w.hint === undefined ? '' : ` (${w.hint})`}`);
  const sourceCat = catalogTable(catalogs, sourceName, table.name);
  const targetCat = catalogTable(catalogs, targetName, table.name);
  const { columns: pairs } = syncedColumns(config, table, {
    [config.forward.from]: direction === 'forward' ? sourceCat : targetCat,
    [config.forward.to]: direction === 'forward' ? targetCat : sourceCat,
  });
  const mapping = (pair: Readonly<Record<string, string>>): ColumnMapping => {
    const source = pair[sourceName] ?? '';
    const target = pair[targetName] ?? '';
    const type = targetCat.columns.find((c) => c.name === target)?.type ?? 'text';
    return { source, target, type, sourceType: sourceCat.columns.find((c) => c.name === source)?.type ?? type };
  };
  const columns = pairs.map(mapping);
  const keys = table.primaryKey.map(mapping);
  // Keys are equal by the match; setting them again would fail on identity columns.
  const updatable = columns.filter((c) => !keys.some((k) => k.target === c.target));
  const overriding = columns.some((c) => targetCat.columns.find((t) => t.name === c.target)?.identity === 'a');
  const cursors = table.timestamps[sourceName] ?? [];
  const watermark = state[stepKey(table.name, direction)] ?? null;
  const byXmin = table.xmin.includes(sourceName);
  if (byXmin && sourceCat.kind !== 'r') {
    throw new CompileError(
      `table "${table.name}": timestamps: { ${sourceName}: xmin } needs a plain table on ${sourceName}, and ${displayName(sourceCat)} is not one`,
      [],
      'list cursor columns instead, or remove the xmin entry to read this side in full',
    );
  }
  const xminChoice = byXmin ? chooseXminMode(xminState[stepKey(table.name, direction)], catalogs[sourceName], sourceCat, options.mode, sourceName) : null;
  const pendingRejects = options.pendingRejects?.[stepKey(table.name, direction)] ?? 0;
  const { collisionSafe, adopting } = collisionSafety(table, direction, updatable.length > 0, options.untrackedBase?.includes(stepKey(table.name, direction)) ?? false);
  const chosen = adopting && options.mode !== 'full' ? adoptionMode(targetName) : (xminChoice ?? chooseMode(cursors, watermark, options.mode, sourceName, table.name, catalogs[sourceName]?.server?.clock));
  // A rejects row is a key to read again from the source, never data to write: while any are
  // pending, the step reads in full, so each is read again (or found gone).
  const retryInFull = chosen.mode === 'incremental' && pendingRejects > 0;
  const { mode, reason: modeReason } = retryInFull
    ? { mode: 'full' as const, reason: `${pendingRejects} rejected row${pendingRejects === 1 ? '' : 's'} pending: every row is read, so each is read again from ${sourceName}` }
    : chosen;
  const sinceXmin = retryInFull || chosen.mode === 'full' ? null : (xminChoice?.since ?? null);
  // Late commits (SPEC §8): where this role cannot see other sessions' transaction starts (no
  // pg_read_all_stats), the horizon clamp cannot hold the watermark for a transaction that began
  // before the read and writes after it. Then a timestamp-cursor step on a plain table saves its read
  // snapshot's xmin too, and the next incremental read also takes every row written by a transaction
  // from that xmin on, whatever its cursor value. That condition cannot use the cursor's index (a
  // scan of the table per run), so a role that sees transaction starts keeps the index-only read.
  const seesStarts = catalogs[sourceName]?.seesOtherSessions === true;
  const cursorXmin = !byXmin && cursors.length > 0 && sourceCat.kind === 'r' && !seesStarts;
  const savedXmin = xminState[stepKey(table.name, direction)];
  const lateXmin = cursorXmin && mode === 'incremental' ? xminUnusable(savedXmin, catalogs[sourceName], sourceCat) : null;
  const cursorSinceXmin = cursorXmin && mode === 'incremental' && lateXmin === null ? (savedXmin?.xmin ?? null) : null;
  const lateXminWhy = (): string =>
    !cursorXmin ? `${displayName(sourceCat)} is not a plain table` : savedXmin === undefined ? 'the last run saved no read snapshot' : (lateXmin ?? '');
  const reason =
    mode !== 'incremental' || byXmin || cursors.length === 0 || seesStarts
      ? modeReason
      : cursorSinceXmin !== null
        ? `${modeReason}, and rows written by transactions from ${cursorSinceXmin} on (running at the last read), whatever their cursor value`
        : `${modeReason}; a transaction running at the last read that committed older cursor values is read only within the lookback: ${lateXminWhy()}`;

  // Forward writes the origin column on its target and owns rows carrying its marker; it may update
  // an unmarked row (NULL) whose key it holds, stamping it, but never deletes one. Reverse reads only
  // the rows the reverse marker claims.
  const stampOrigin = direction === 'forward' && table.origin !== null;
  const origin = stampOrigin && table.origin !== null ? { column: table.origin.column, mine: table.origin.forward } : null;
  // With edits: both either side may change any row (SPEC §7): reverse reads every row, and the
  // base, not the origin column, decides what a step writes.
  const threeWay = table.edits === 'both';
  const originFilter = direction === 'reverse' && table.origin !== null && !threeWay ? table.origin.column : null;
  // Only forward can prove ownership (the origin column lives on its target), so only forward mirrors;
  // with edits: both the base proves what was deleted, and deletes travel both ways.
  const mirror = table.deletes === 'mirror' && (direction === 'forward' || threeWay);
  if (mirror && origin === null && !threeWay) {
    throw new CompileError(
      `table "${table.name}": deletes: mirror on ${direction} needs an origin column on ${targetName}`,
      [],
      'bisync only deletes rows it can prove this direction owns; use deletes: keep for this table',
    );
  }

  // A single integer key column may take its default from a sequence on T (SPEC §7, Keys).
  const [onlyKey] = keys;
  const sequenceKey = keys.length === 1 && onlyKey !== undefined && /^(integer|bigint|smallint)$/.test(onlyKey.type) ? onlyKey : null;
  // A mirror delete must not reach rows this direction does not own through foreign keys: the
  // delete skips parents they still reference, and the guard watches every table it could reach.
  // With edits: both the merge deletes too, and the same rule holds: a row referencing the parent
  // that does not carry the marker of this direction's source keeps it (no marker known: every row does).
  const deleteMarker = threeWay ? ((direction === 'forward' ? table.origin?.forward : table.origin?.reverse) ?? null) : (origin?.mine ?? null);
  const references = mirror ? templateReferences(targetCat.referencedBy ?? [], deleteMarker === null ? null : (table.origin?.column ?? null)) : [];
  const mirrorKeys = keys.map((k) => {
    const s = sourceCat.columns.find((c) => c.name === k.source);
    const t = targetCat.columns.find((c) => c.name === k.target);
    const compareAs = s === undefined || t === undefined || s.type === t.type ? 'type' : s.category === 'N' && t.category === 'N' ? 'numeric' : 'text';
    return { ...k, compareAs };
  });

  const encoding = stagingEncoding(catalogs[sourceName]?.serverEncoding, catalogs[targetName]?.serverEncoding);
  if (encoding.warning !== null) warnings.push(`${targetName}: ${encoding.warning}`);
  const { checksum, note: checksumNote } = chooseChecksum({
    table,
    mode,
    modeOption: options.mode,
    hasRunBefore: stepKey(table.name, direction) in state,
    pendingRejects,
    threeWay,
    originFilter,
    origin,
    columns,
    keys,
  });

  const sourceRel = { schema: sourceCat.schema, name: sourceCat.name };
  const targetRel = { schema: targetCat.schema, name: targetCat.name };
  const zone = (database: string): { timeZone: string; zoneNote: string } => ({
    timeZone: catalogs[database]?.timeZone ?? 'UTC',
    zoneNote: `${database}'s own (what its sessions get by default)`,
  });
  const common = {
    ...zone(targetName),
    schema: config.stateSchema,
    table: table.name,
    direction,
    stage: STAGE_TABLE,
    columns,
    keys,
    cursors,
    cursorMany: cursors.length > 1,
    source: sourceRel,
    target: targetRel,
    sourceName,
    targetName,
    origin,
    originFilter,
    incremental: mode === 'incremental' && !byXmin,
    insertOnly: table.write[direction] === 'insert-only',
    updatable,
    canUpdate: table.write[direction] !== 'insert-only' && (updatable.length > 0 || origin !== null),
    collisionSafe,
    adopting,
    overriding,
    conflictMessage: `a row with this key already exists on ${targetName} with different content (write: insert-only)`,
    mode,
    reason,
    watermarkBefore: watermark,
    read: null,
    timeouts: { lock: `${Math.round(table.lockTimeoutSeconds * 1000)}ms`, statement: `${Math.round(table.statementTimeoutSeconds * 1000)}ms` },
    xmin: byXmin || cursorXmin,
    sinceXmin,
    cursorSinceXmin: cursorSinceXmin !== null,
    xminWidened: (sinceXmin ?? cursorSinceXmin) !== null,
    sourceRegclass: quoteQualified({ schema: sourceCat.schema, name: sourceCat.name }),
    threeWay,
    mirror,
    ...threeWayContext(config, table, direction, sourceName, targetName),
    references,
    deleteMarker,
    mirrorKeys,
    guarded: guardedRelations(targetRel, origin?.column ?? null, mode === 'full' ? references : [], threeWay),
    export: false,
    rawStaging: encoding.raw,
    encoding: catalogs[targetName]?.serverEncoding ?? 'UTF8',
    checksum,
    checksumZone: checksum === null ? null : (catalogs[targetName]?.timeZone ?? 'UTC'),
  };
  const read = {
    since: mode === 'incremental' ? watermark : null,
    lookback: mode === 'incremental' ? `${table.lookbackSeconds} seconds` : null,
    origin: originFilter === null ? null : (table.origin?.reverse ?? null),
    sinceXmin: sinceXmin ?? cursorSinceXmin,
    baseTable: threeWay ? table.name : null,
  };
  const stmt = (kind: string, side: Side, purpose: string, extra: Record<string, unknown> = {}, template = kind): PlanStatement => {
    const { sql, params } = renderSql(template, { ...common, ...extra });
    return { kind, side, purpose, sql, params };
  };
  const threeWayTemplate = (kind: string): string => (threeWay ? `${kind}-three-way` : kind);

  // edits: both: forward and reverse of the table run one at a time, not only each direction on its
  // own. Reverse locks, in its read transaction on its source, the state row forward locks there
  // (NOWAIT: exit 3, never a wait), and keeps that transaction open until it has committed on its
  // target: no connection of its own for the lock.
  const pairLock = threeWay && direction === 'reverse';
  const statements: PlanStatement[] = [
    stmt('begin-target', 'target', `open the write transaction on ${targetName}`),
    stmt('settings', 'target', 'transaction-local text formats'),
    stmt('lock', 'target', 'one run per (table, direction) at a time'),
    stmt('read-state', 'target', 'the watermark this step starts from (must equal the planned one)'),
    stmt('constraints-immediate', 'target', 'deferred constraints fail per merged batch, not at COMMIT'),
    // Only where the merge may delete (deletes: mirror): with keep it never does, and counting every row of T is then wasted.
    ...(threeWay && mirror ? [stmt('guard-count', 'target', 'rows on the target before the merge, the measure of max_delete_fraction with edits: both')] : []),
    stmt('create-staging', 'target', 'staging table, dropped at commit'),
    ...(checksum === null ? [] : [checksumStatement(stmt, 'target', targetName, targetRel, checksum, false)]),
    ...(cursors.length > 0
      ? [
          stmt('begin-horizon', 'source', `a short read-only transaction on ${sourceName}, before the read snapshot`),
          stmt('settings', 'source', 'transaction-local settings (search_path pinned)', { ...zone(sourceName) }),
          stmt('read-horizon', 'source', `oldest open transaction on ${sourceName}, read before the snapshot`),
          stmt('commit', 'source', 'end the short transaction'),
        ]
      : []),
    stmt('begin-source', 'source', pairLock ? `open the read snapshot on ${sourceName}, held until this step has committed on ${targetName}` : `open the read snapshot on ${sourceName}`, { pairLock }),
    stmt('settings', 'source', 'transaction-local text formats and the read window', { read, ...zone(sourceName) }),
    ...(pairLock
      ? [
          stmt('pair-lock', 'source', `forward and reverse of an edits: both table run one at a time: the forward step's row of state on ${sourceName}`),
          stmt('read-only', 'source', 'the rest of the read only reads'),
        ]
      : []),
    ...(byXmin || cursorXmin
      ? [stmt('read-xmin', 'source', byXmin ? `the read snapshot's xmin, the table's file and the server, saved for the next xmin read` : `the read snapshot's xmin, the table's file and the server: the next run also reads rows written from it on (late commits)`)]
      : []),
    ...(checksum === null
      ? []
      : [
          checksumStatement(stmt, 'source', sourceName, sourceRel, checksum, false),
          stmt('set-buckets', 'source', `the buckets whose checksums differ (compared in bisync); when none does, the copy below does not run`),
        ]),
    stmt('copy-out', 'source', threeWay ? `stream the rows out of ${sourceName}, with ${sourceName}'s copy of the base` : `stream the rows out of ${sourceName}`, {}, threeWayTemplate('copy-out')),
    ...(encoding.raw ? [stmt('client-encoding-raw', 'target', `take the COPY's bytes unconverted (${common.encoding} cannot hold every character UTF-8 can)`)] : []),
    stmt('copy-in', 'target', `stream them into staging on ${targetName}`),
    ...(pairLock ? [] : [stmt('commit', 'source', 'end the read snapshot')]),
    ...(encoding.raw
      ? [
          stmt('client-encoding', 'target', 'UTF-8 again for everything after the COPY'),
          stmt('decode-staging', 'target', `decode the staged rows into ${common.encoding}; a failing range is halved in savepoints until the row stands alone`),
          stmt('undecodable-row', 'target', 'only for a row that cannot be decoded: its key decoded, the row marked; it is recorded by reject-row after the retry of earlier rejects'),
          stmt('undecodable-key', 'target', 'only when the key itself cannot be decoded either: the row marked, its non-ASCII values as octal bytes'),
        ]
      : []),
    ...(checksum === null ? [] : [
          stmt(
            'set-buckets',
            'target',
            threeWay
              ? `the same buckets on the target: keys of ${targetName}'s base staged as deleted on ${sourceName}, and unmarked rows, are looked for only inside them`
              : 'the same buckets on the target: deletes and unmarked rows are looked for only inside them',
          ),
        ]),
    stmt('retry-rejects', 'target', 'retry rows rejected by earlier runs'),
    ...(threeWay && mode === 'full' ? [stmt('stage-base-keys', 'target', `keys ${targetName}'s base holds that ${sourceName} no longer has: deleted there`)] : []),
    stmt('count-staged', 'target', 'how many rows are staged'),
    stmt('analyze-staging', 'target', 'planner statistics for the staged rows'),
    threeWay
      ? stmt('merge', 'target', 'three-way merge: each row of the decision table (SPEC §7), conflicts, and the new base', {}, 'merge-three-way')
      : stmt('merge', 'target', 'insert new rows, update owned rows that differ'),
    stmt('reject-row', 'target', 'only when the merge fails on a row: the merge is retried on halves of the row range in savepoints, and a single failing row is recorded here'),
    ...(mirror && mode === 'full' && !threeWay
      ? [
          stmt('count-mirror-deletes', 'target', `rows deletes: mirror would remove, against max_delete_fraction ${table.maxDeleteFraction}`),
          stmt('mirror-deletes', 'target', 'remove owned rows the source no longer has'),
        ]
      : []),
    ...(origin !== null && mode === 'full'
      ? [stmt('count-unmarked', 'target', `unmarked rows (${origin.column} NULL) on ${targetName} whose key ${sourceName} does not have: reported, never deleted`)]
      : []),
    stmt('guard-stats', 'target', 'rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped'),
    stmt('save-state', 'target', 'the new watermark, in the same transaction as the data'),
    // After the state (it changes no row the counts, the guard or the state look at), so that these
    // follow the merge with nothing in between on a step without deletes: they travel together.
    ...(sequenceKey !== null
      ? [stmt('advance-sequence', 'target', `only when the merge inserted rows: advance the sequence behind ${sequenceKey.target}, if any, to the largest key`, { sequenceKey })]
      : []),
    stmt('guard-rows', 'target', 'only when the counts differ: rows the other side owns, with this step\'s changes, in an exported snapshot', { export: true }),
    stmt('guard-begin', 'target', `guard: a second connection to ${targetName}`),
    stmt('guard-import', 'target', 'guard: the snapshot the step exported'),
    stmt('settings', 'target', 'guard: the same text formats, so fingerprints compare'),
    stmt('guard-rows', 'target', 'guard: the same rows without this step\'s changes; any row removed or changed rolls the step back (exit 4)'),
    stmt('commit', 'target', 'guard: end the second connection\'s read'),
    stmt('record-run', 'target', 'one row in runs for this step'),
    stmt('commit', 'target', 'commit data, watermark and run together'),
    ...(pairLock ? [stmt('commit', 'source', `end the read snapshot and release the forward step's lock on ${sourceName}, after the commit on ${targetName}`)] : []),
    // edits: both: the versions the merge recorded in the target's copy of the base, into the
    // source's copy, only once the target has committed (never a version the target does not hold).
    ...(threeWay
      ? [
          stmt('begin-source-base', 'source', `only when the merge recorded base versions, after the commit on ${targetName}: a short write transaction on ${sourceName}`),
          stmt('settings', 'source', 'transaction-local settings (search_path pinned)', { ...zone(sourceName) }),
          stmt('record-source-base', 'source', `the same versions into ${sourceName}'s copy of the base, where it is older (by generation)`),
          stmt('commit', 'source', `commit ${sourceName}'s copy of the base`),
        ]
      : []),
  ];
  const bootstrap: PlanStatement[] = [
    stmt('begin-target', 'target', `bootstrap bisync's state on ${targetName}, only if it is missing`),
    stmt('settings', 'target', 'transaction-local settings (search_path pinned)'),
    stmt('check-state', 'target', `refuse a state schema another role made or changed; stop here (rollback) when all its tables exist`),
    stmt('bootstrap-lock', 'target', 'serialise concurrent bootstraps', { lockKey: `bisync bootstrap ${config.stateSchema}` }),
    stmt('bootstrap', 'target', `create schema ${config.stateSchema} and its tables`),
    stmt('check-state', 'target', 'check again: CREATE … IF NOT EXISTS would accept a schema created meanwhile by another role'),
    stmt('claim-state-row', 'target', "this step's row of state, for its lock (apply claims every step's row before the steps run)"),
    ...(pairLock ? [stmt('claim-state-row', 'source', `on ${sourceName}: the forward step's row of state, which this step locks too`, { direction: 'forward' })] : []),
    stmt('commit', 'target', 'commit the bootstrap'),
  ];
  const probe = probeStatements({
    stmt,
    statements,
    common,
    // Not probed (always run): an adopting read (it records the base), pending rejects (each is read
    // again), and a full read that saves its read snapshot's xmin (so the next read can be incremental).
    eligible: !adopting && pendingRejects === 0 && !(mode === 'full' && (byXmin || cursorXmin)),
    checksum,
    mode,
    threeWay,
    pairLock,
    columns,
    keys,
    read,
    sourceName,
    targetName,
    sourceRel,
    targetRel,
    zone,
  });
  const hashed = { table: table.name, direction, mode, statements, bootstrap, ...(probe === null ? {} : { probe: probe.statements }) };
  const stepReason = checksumNote === null ? reason : `${reason}; ${checksumNote}`;
  return {
    table: table.name,
    direction,
    source: sourceName,
    target: targetName,
    sourceRelation: displayName(sourceRel),
    targetRelation: displayName(targetRel),
    stateSchema: config.stateSchema,
    after: [...table.after],
    mode,
    reason: mirror && mode !== 'full' ? `${stepReason}; deletes: ${threeWay ? `on ${sourceName} are found` : 'mirror waits for'} a full read` : stepReason,
    ...(checksum === null ? {} : { compare: 'checksum' as const }),
    watermark,
    columns,
    write: table.write[direction],
    deletes: table.deletes,
    maxDeleteFraction: table.maxDeleteFraction,
    ...(threeWay ? { edits: 'both' as const } : {}),
    sequenceDefaults: targetCat.columns
      .filter((c) => c.sequence === true && !columns.some((m) => m.target === c.name))
      .map((c) => c.name),
    guardedRelations: common.guarded.map((g) => displayName(g.rel)),
    targetRowSecurity: rowSecurityFinding(targetCat.rowSecurity).applies,
    warnings,
    bootstrap,
    statements,
    ...(probe === null ? {} : { probe: probe.statements, probeKind: probe.kind }),
    hash: sha256(JSON.stringify(hashed)),
  };
}

/**
 * The key of a probe statement on one database: equal keys, equal answers within one probe (the same
 * SQL and parameters in one transaction). A conditional statement carries its unconditional form's key.
 */
export function probeKeyOf(database: string, statement: Pick<PlanStatement, 'sql' | 'params'>): string {
  return sha256(JSON.stringify([database, statement.sql, statement.params]));
}

/** Most rows an incremental step's probe takes from its read window; a window with more and the step runs. */
export const PROBE_MAX_ROWS = 1_000;
/**
 * `apply --probe auto` (the default) probes only over a slow link: when a round trip to either
 * database took at least this long (ms) while the catalog was read. There a round trip costs more
 * than the probe's checksums; on a fast link the probe's second pass over a step's rows costs more
 * than the round trips it saves, so every step runs as planned.
 */
export const PROBE_SLOW_LINK_MS = 10;

type StmtFn = (kind: string, side: Side, purpose: string, extra?: Record<string, unknown>, template?: string) => PlanStatement;

/**
 * The run-level probe of one step (apply runs every step's probe before the steps, in one transaction
 * per database): statements that tell whether the step would find nothing to do. When they do, the
 * step's statements do not run, and its run row says so. A skip changes no state (watermark, saved
 * xmin, base): it is exactly "the step ran at the probe's instant and found nothing", and anything
 * committed after the probe is read by the next run, as a change committed after a step's read is.
 * null: the step always runs (a first run, pending rejects, an adopting read, a read the probe cannot
 * reproduce on both sides).
 *  - checksum: the step's own bucket checksums, summed over the whole table on each database (no key
 *    hashed into a bucket, nothing sorted); an edits: both table's two directions share each sum;
 *    equal digests mean every bucket is equal, so the step would read, delete and write nothing.
 *  - window: the step's own read (copy-out's query) on F, counted, its newest cursor value against
 *    the watermark, and (up to PROBE_MAX_ROWS rows) key and row hash; T computes the same hash for those
 *    keys. Only where every column has the same type on both sides, so equal text is equal values.
 * Both check, with SKIP LOCKED, that no other run holds the step's lock (or an edits: both pair lock):
 * a held lock and the step runs, and reports it (exit 3).
 */
function probeStatements(input: {
  stmt: StmtFn;
  statements: readonly PlanStatement[];
  common: Record<string, unknown>;
  eligible: boolean;
  checksum: StepChecksum | null;
  mode: StepMode;
  threeWay: boolean;
  pairLock: boolean;
  columns: readonly ColumnMapping[];
  keys: readonly ColumnMapping[];
  read: Record<string, unknown>;
  sourceName: string;
  targetName: string;
  sourceRel: QualifiedName;
  targetRel: QualifiedName;
  zone: (database: string) => Record<string, unknown>;
}): { kind: 'checksum' | 'window'; statements: PlanStatement[] } | null {
  const { stmt, statements, common } = input;
  if (!input.eligible) return null;
  // edits: both, incremental: the bucket checksums of a checksum-first step (every key settled alike on
  // both databases → the merge writes nothing, whatever the read takes), and the read's newest cursor.
  const settled = input.checksum === null && input.mode === 'incremental' && input.threeWay ? threeWayChecksum(input.columns, input.keys).checksum : null;
  const checksum = input.checksum ?? settled;
  const kind = checksum !== null ? 'checksum' : input.mode === 'incremental' && !input.threeWay ? 'window' : null;
  if (kind === null) return null;
  const copyOut = statements.find((s) => s.kind === 'copy-out');
  const match = copyOut === undefined ? null : /^([\s\S]*?)\nCOPY \(\n([\s\S]*)\n\) TO STDOUT$/.exec(copyOut.sql);
  if (copyOut === undefined || match === null) throw new Error('a step without its COPY … TO STDOUT read');
  const wrap = (template: string, wrapped: PlanStatement, purpose: string, extra: Record<string, unknown>): PlanStatement => {
    const { sql, params } = renderSql(template, { ...common, ...extra }, wrapped.params);
    return { kind: template, side: wrapped.side, purpose, sql, params };
  };
  const locks = [
    stmt('settings', 'target', 'transaction-local settings (search_path pinned)'),
    stmt('probe-lock', 'target', "no other run holds this step's lock (else the step runs, and reports it)", { lockDirection: common.direction, pairLock: false }),
  ];
  const pair = input.pairLock
    ? [stmt('probe-lock', 'source', `no other run holds the forward step's row of state on ${input.sourceName} (edits: both)`, { lockDirection: 'forward', pairLock: true })]
    : [];
  const recordRun = stmt('record-run', 'target', 'only when the probe finds nothing to do: one row in runs for this step, which did not run', {
    reason: `${kind === 'checksum' ? `probe: the checksums of every row summed alike on both databases${settled === null ? '' : ', none of the rows read past the watermark'}` : 'probe: every row the read would take is already on the target as it is'}: nothing to do, not run`,
  });
  // edits: both, incremental: the flag the window sets and the source's digest reads, named for this step (a probe
  // sends every step's window before any digest: one shared name would hand a digest another step's answer).
  const quietFlagName = `bisync.probe_quiet_${sha256(`${String(common.table)}\u0000${String(common.direction)}`).slice(0, 16)}`;
  if (kind === 'checksum' && checksum !== null) {
    const sums = checksum;
    const digest = (side: Side, database: string, relation: QualifiedName, whenQuiet = false): PlanStatement => {
      const inner = checksumStatement(stmt, side, database, relation, sums, true);
      const render = (quiet: boolean): PlanStatement =>
        wrap('probe-checksums', inner, `this step's checksums on ${database}, summed over the table${quiet ? ', only when the read takes no row past the watermark' : ''}`, {
          inner: inner.sql,
          database,
          others: side === 'target' && sums.owned !== null,
          // The name of the flag this step's window sets, where the digest waits for it.
          quietFlag: quiet ? quietFlagName : null,
        });
      const statement = render(whenQuiet);
      // The same statement without its condition, on the same database: one probe computes it once (probe.ts).
      const plain = whenQuiet ? render(false) : statement;
      return { ...statement, probeKey: probeKeyOf(database, plain) };
    };
    return {
      kind,
      statements: [
        ...locks,
        digest('target', input.targetName, input.targetRel),
        stmt('settings', 'source', 'transaction-local text formats and settings', { read: input.read, ...input.zone(input.sourceName) }),
        ...pair,
        // edits: both, incremental: the read's newest cursor first; the digests are computed only when
        // it is the watermark (else the step runs anyway; the target's is then not sent either).
        ...(settled === null
          ? []
          : [wrap('probe-window', copyOut, `how many rows this step would read on ${input.sourceName}, and whether any is past the watermark`, { window: match[2], maxRows: PROBE_MAX_ROWS, hashRows: false, quietFlag: quietFlagName })]),
        digest('source', input.sourceName, input.sourceRel, settled !== null),
        recordRun,
      ],
    };
  }
  // The window: only where each column has one type on both sides (the same text is the same value).
  if ([...input.keys, ...input.columns].some((c) => c.type !== c.sourceType)) return null;
  const hashed = syncChecksumColumns(input.columns);
  if ('unsupported' in hashed) return null;
  return {
    kind,
    statements: [
      stmt('settings', 'source', "transaction-local text formats and this step's read window", { read: input.read, ...input.zone(input.sourceName) }),
      ...pair,
      wrap('probe-window', copyOut, `the rows this step would read on ${input.sourceName}: how many, and key and row hash of each`, {
        window: match[2],
        maxRows: PROBE_MAX_ROWS,
        hashRows: true,
        quietFlag: null,
        sourceHash: hashed.source,
      }),
      ...locks,
      stmt('probe-rows', 'target', `of those rows, how many ${input.targetName} does not hold as they are`, { targetHash: hashed.target }),
      recordRun,
    ],
  };
}

/**
 * A checksum-first step's checksums on one side: per bucket of keys (`bucket-checksums`, the step's
 * own), or with `total` the same sums over the whole table in one row (the run-level probe's).
 */
function checksumStatement(stmt: StmtFn, side: Side, database: string, relation: QualifiedName, checksum: StepChecksum, total: boolean): PlanStatement {
  if (checksum.threeWay) {
    // edits: both: the keys and columns are the step's own (both sides have the same types), hashed as the merge does.
    const purpose = `checksum-first: ${total ? 'over the table' : 'per bucket of keys'} on ${database}, the fingerprints of keys whose row and copy of the base agree`;
    return stmt('bucket-checksums', side, purpose, { database, relation, side, bits: checksum.bits, total }, total ? 'probe-sums-three-way' : 'bucket-checksums-three-way');
  }
  const context = {
    database,
    relation,
    keys: side === 'source' ? checksum.sourceKeys : checksum.targetKeys,
    columns: side === 'source' ? checksum.sourceColumns : checksum.targetColumns,
    owned: side === 'source' ? null : checksum.owned,
    // The source's rows stand for marked ones when the target counts unmarked rows apart.
    unmarkedField: side === 'source' && checksum.owned !== null,
    bits: checksum.bits,
    total,
    checksumNote:
      side === 'source'
        ? "Each value's own text, cast to the target's numeric type where no value can fail the cast, a timestamptz as UTC time."
        : 'A timestamptz counts as its UTC time, whatever zone the session is in.',
  };
  return stmt('bucket-checksums', side, `checksum-first: rows and a checksum ${total ? 'over the table' : 'per bucket of keys'} on ${database}`, context, 'bucket-checksums');
}

/** What the three-way templates need besides the common context (inert for edits: owner). */
function threeWayContext(config: ResolvedConfig, table: ResolvedTable, direction: Direction, sourceName: string, targetName: string): Record<string, unknown> {
  const policy = table.conflicts;
  const targetCursors = table.timestamps[targetName] ?? [];
  // Kinds name what each database did, forward source first: delete-update = forward's source deleted.
  const kinds = direction === 'forward' ? { deleteUpdate: 'delete-update', updateDelete: 'update-delete' } : { deleteUpdate: 'update-delete', updateDelete: 'delete-update' };
  return {
    kinds,
    conflictPolicy: policy.kind === 'database' ? `keep ${policy.database}'s version` : policy.kind === 'newest' ? 'the newer cursor value wins, a tie parks' : 'park',
    newest: policy.kind === 'newest',
    winner: policy.kind === 'database' ? (policy.database === sourceName ? 'source' : 'target') : null,
    targetCursors,
    targetCursorMany: targetCursors.length > 1,
    sourceBaseCap: SOURCE_BASE_CAP,
  };
}

/** The catalog's reference tree as the `blocked` template helper renders it. */
function templateReferences(refs: readonly CatalogReference[], originColumn: string | null): TemplateReference[] {
  return refs.map((r) => ({
    rel: { schema: r.schema, name: r.table },
    columns: [...r.columns],
    refColumns: [...r.refColumns],
    onDelete: r.onDelete,
    originColumn: originColumn !== null && r.tableColumns.includes(originColumn) ? originColumn : null,
    children: templateReferences(r.children, originColumn),
  }));
}

interface GuardedRelation {
  rel: QualifiedName;
  /** The names of the `$n` parameters that carry its schema and name. */
  schemaParam: string;
  nameParam: string;
  /** Rows whose origin column is not this direction's marker are the other side's; none: every row is. */
  originColumn: string | null;
  /** Unmarked rows (NULL origin) are this direction's to stamp on the target itself, not elsewhere. */
  keepsUnmarked: boolean;
  /** Compare a fingerprint of the rows, not only their number (every table but a target without origin, whose rows the step updates). */
  fingerprint: boolean;
}

/**
 * The target, and every table a mirror delete can reach through foreign keys, each once. With
 * edits: both the merge writes and deletes the other side's rows on purpose, so on the target the
 * guard only counts them (less what the step deleted on purpose).
 */
function guardedRelations(target: QualifiedName, originColumn: string | null, references: readonly TemplateReference[], threeWay: boolean): GuardedRelation[] {
  const named = (rel: QualifiedName, i: number): { rel: QualifiedName; schemaParam: string; nameParam: string } => ({
    rel,
    schemaParam: `guarded relation ${i} schema`,
    nameParam: `guarded relation ${i} name`,
  });
  const out: GuardedRelation[] = [{ ...named(target, 0), originColumn, keepsUnmarked: true, fingerprint: originColumn !== null && !threeWay }];
  const visit = (list: readonly TemplateReference[]): void => {
    for (const r of list) {
      if (!out.some((g) => displayName(g.rel) === displayName(r.rel))) out.push({ ...named(r.rel, out.length), originColumn: r.originColumn, keepsUnmarked: false, fingerprint: true });
      visit(r.children);
    }
  };
  visit(references);
  return out;
}

function catalogTable(catalogs: Readonly<Record<string, Catalog>>, database: string, table: string): CatalogTable {
  const found = catalogs[database]?.tables[table];
  if (found === null || found === undefined) throw new CompileError(`table "${table}" does not exist on ${database}`);
  return found;
}
