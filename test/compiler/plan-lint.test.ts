/**
 * Lint over every statement of every plan, for configs that exercise each template path
 * (forward-only without an origin rule, both ways, insert-only, deletes: mirror, no cursor columns,
 * incremental), compiled against the sample schema introspected from real databases. Each rule is
 * checked on the parse tree PostgreSQL itself produces, not with regular expressions over the text.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { readCatalogs } from '../../src/commands/validate.js';
import { compilePlan, stepKey } from '../../src/compiler/compile-plan.js';
import type { CompileOptions, StateSnapshot } from '../../src/compiler/compile-plan.js';
import type { Plan, PlanStatement } from '../../src/compiler/plan-types.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { EXAMPLE_CONFIG, envFor, loadSample, testConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import {
  DATABASES,
  columnRefsOf,
  configFrom,
  functionNamesOf,
  nodesOf,
  paramName,
  parseStatements,
  planStatements,
  relationsOf,
  stringConstantsOf,
  stringsOf,
  walk,
} from './helpers.js';
import type { PlannedStatement, Tree } from './helpers.js';

const WATERMARK = '2026-01-02T03:04:05.123456Z';
const ORIGIN = { column: 'source', forward: 'D', reverse: 'M' };
const CURSORS = { cloud: ['updated_at', 'created_at'] };
const BASE = { version: 1, databases: DATABASES, forward: { from: 'desktop', to: 'cloud' } };

/** Values that can only have come from the config, so they are easy to find if they leak into SQL. */
const MARKED = {
  forward: 'DESK-MARK-7',
  reverse: 'MOBILE-MARK-9',
  tables: ['Clients (logical name)', 'Reminders (logical name)'],
  lookback: '17s',
  lookbackParam: '17 seconds',
  stateSchema: 'bisync_lint',
};

interface Variant {
  label: string;
  config: (env: NodeJS.ProcessEnv) => Promise<ResolvedConfig> | ResolvedConfig;
  options: CompileOptions;
  /** Watermarks for steps, by `stepKey`; `'all'` gives every step with cursors one. */
  state?: 'all';
}

const VARIANTS: Variant[] = [
  { label: 'example, both directions', config: async () => await testConfigFromEnv(), options: { direction: 'both', mode: 'auto' } },
  { label: 'example, incremental', config: async () => await testConfigFromEnv(), options: { direction: 'both', mode: 'auto' }, state: 'all' },
  { label: 'example, --mode full with watermarks', config: async () => await testConfigFromEnv(), options: { direction: 'both', mode: 'full' }, state: 'all' },
  {
    label: 'forward-only, no origin rule',
    config: (env) =>
      configFrom(
        {
          ...BASE,
          defaults: { origin: false },
          tables: [
            { name: 'orgmaster', primary_key: ['org_id'], direction: 'forward' },
            { name: 'climaster', primary_key: ['client_id'], direction: 'forward' },
          ],
        },
        env,
      ),
    options: { direction: 'forward', mode: 'auto' },
  },
  {
    label: 'insert-only both ways',
    config: (env) =>
      configFrom(
        {
          ...BASE,
          defaults: { origin: ORIGIN, timestamps: CURSORS, forward: { write: 'insert-only' }, reverse: { write: 'insert-only' } },
          tables: [
            { name: 'climaster', primary_key: ['client_id'], direction: 'both' },
            { name: 'jobshead', primary_key: ['job_id'], direction: 'both' },
          ],
        },
        env,
      ),
    options: { direction: 'both', mode: 'auto' },
    state: 'all',
  },
  {
    label: 'deletes: mirror',
    config: (env) =>
      configFrom(
        {
          ...BASE,
          defaults: { origin: ORIGIN, deletes: 'mirror' },
          tables: [
            { name: 'orgmaster', primary_key: ['org_id'], direction: 'forward' },
            { name: 'climaster', primary_key: ['client_id'], direction: 'forward', max_delete_fraction: 0.5 },
          ],
        },
        env,
      ),
    options: { direction: 'forward', mode: 'auto' },
  },
  {
    label: 'no cursor columns',
    config: (env) =>
      configFrom(
        {
          ...BASE,
          defaults: { origin: ORIGIN },
          tables: [
            { name: 'climaster', primary_key: ['client_id'], direction: 'both' },
            { name: 'jobshead', primary_key: ['job_id'], direction: 'both', reverse: { write: 'insert-only' } },
          ],
        },
        env,
      ),
    options: { direction: 'both', mode: 'auto' },
    state: 'all',
  },
  {
    label: 'edits: both, deletes both ways (SPEC §7)',
    config: (env) =>
      configFrom(
        {
          ...BASE,
          defaults: { origin: ORIGIN, timestamps: CURSORS, edits: 'both', deletes: 'mirror' },
          tables: [
            { name: 'climaster', primary_key: ['client_id'], direction: 'both', conflicts: 'cloud' },
            { name: 'jobshead', primary_key: ['job_id'], direction: 'both', timestamps: { desktop: [], cloud: ['updated_at'] } },
          ],
        },
        env,
      ),
    options: { direction: 'both', mode: 'auto' },
  },
  {
    label: 'edits: both, incremental',
    config: (env) =>
      configFrom(
        { ...BASE, defaults: { origin: ORIGIN, timestamps: CURSORS, edits: 'both' }, tables: [{ name: 'climaster', primary_key: ['client_id'], direction: 'both' }] },
        env,
      ),
    options: { direction: 'both', mode: 'auto' },
    state: 'all',
  },
  {
    label: 'marked config values, incremental',
    config: (env) =>
      configFrom(
        {
          ...BASE,
          state: { schema: MARKED.stateSchema },
          defaults: { origin: { column: 'source', forward: MARKED.forward, reverse: MARKED.reverse }, timestamps: CURSORS, lookback: MARKED.lookback },
          tables: [
            { name: MARKED.tables[0], desktop: { table: 'public.climaster' }, cloud: { table: 'climaster' }, primary_key: ['client_id'], direction: 'both' },
            {
              name: MARKED.tables[1],
              desktop: { table: 'mbreminder' },
              cloud: { table: 'public.reminder' },
              primary_key: ['rem_id'],
              direction: 'both',
              columns: ['rem_id', 'staff_id', 'client_id', { desktop: 'remdate', cloud: 'reminder_date' }, 'title', 'is_done'],
              reverse: { write: 'insert-only' },
            },
          ],
        },
        env,
      ),
    options: { direction: 'both', mode: 'auto' },
    state: 'all',
  },
];

let testConfigFromEnv: () => Promise<ResolvedConfig>;

/** Functions and SQL value functions that read the clock. */
const CLOCK_FUNCTIONS = new Set(['now', 'clock_timestamp', 'statement_timestamp', 'transaction_timestamp', 'timeofday']);
const CLOCK_VALUES = /^SVFOP_(CURRENT_TIMESTAMP|CURRENT_TIME|CURRENT_DATE|LOCALTIMESTAMP|LOCALTIME)/;

function clockCount(tree: Tree): number {
  let count = 0;
  walk(tree, (node) => {
    const call = node.FuncCall as { funcname?: unknown } | undefined;
    if (call !== undefined && CLOCK_FUNCTIONS.has(stringsOf(call.funcname).at(-1) ?? '')) count++;
    const value = node.SQLValueFunction as { op?: string } | undefined;
    if (value !== undefined && CLOCK_VALUES.test(value.op ?? '')) count++;
  });
  return count;
}

const isWatermark = (column: unknown): boolean => /watermark/i.test(String(column));

interface ResTarget {
  ResTarget: { name?: string; val?: unknown };
}

/**
 * The clock readings a statement may make: into non-watermark columns (inserted, SET or DEFAULT),
 * and inside LEAST(...) next to a value that is not the clock (the read horizon, which can only
 * lower the watermark). Returns how many such readings the tree has.
 */
function allowedClockCount(tree: Tree): number {
  let allowed = 0;
  for (const insert of nodesOf(tree, 'InsertStmt')) {
    const cols = (insert.cols ?? []) as ResTarget[];
    const select = (insert.selectStmt as { SelectStmt?: { targetList?: ResTarget[]; valuesLists?: { List: { items: unknown[] } }[] } } | undefined)?.SelectStmt;
    cols.forEach((c, i) => {
      if (isWatermark(c.ResTarget.name)) return;
      allowed += clockCount(select?.targetList?.[i]?.ResTarget.val) + clockCount(select?.valuesLists?.[0]?.List.items[i]);
    });
    const onConflict = insert.onConflictClause as { targetList?: ResTarget[] } | undefined;
    for (const t of onConflict?.targetList ?? []) if (!isWatermark(t.ResTarget.name)) allowed += clockCount(t.ResTarget.val);
  }
  for (const update of nodesOf(tree, 'UpdateStmt')) {
    for (const t of (update.targetList ?? []) as ResTarget[]) if (!isWatermark(t.ResTarget.name)) allowed += clockCount(t.ResTarget.val);
  }
  for (const def of nodesOf(tree, 'ColumnDef')) if (!isWatermark(def.colname)) allowed += clockCount(def.constraints);
  for (const least of nodesOf(tree, 'MinMaxExpr')) {
    const args = (least.args ?? []) as unknown[];
    if (least.op === 'IS_LEAST' && args.some((a) => clockCount(a) === 0)) allowed += clockCount(args);
  }
  return allowed;
}

describe('lint over every plan (parse trees from the real PostgreSQL parser)', () => {
  const dbs = useFreshDatabases('lint');
  const plans: { label: string; plan: Plan; config: ResolvedConfig }[] = [];
  const statements: (PlannedStatement & { variant: string; tree: Tree })[] = [];

  beforeAll(async () => {
    await loadSample(dbs, 0.01);
    testConfigFromEnv = async () => await testConfig(EXAMPLE_CONFIG, dbs);
    for (const variant of VARIANTS) {
      const config = await variant.config(envFor(dbs));
      const { catalogs } = await readCatalogs(config);
      const state: Record<string, string> = {};
      if (variant.state === 'all') {
        for (const t of config.tables) for (const d of t.directions) state[stepKey(t.name, d)] = WATERMARK;
      }
      const plan = compilePlan(config, catalogs, state satisfies StateSnapshot, variant.options);
      plans.push({ label: variant.label, plan, config });
      for (const s of planStatements(plan)) statements.push({ ...s, variant: variant.label, tree: parseStatements(s.statement.sql) });
    }
  });

  it('the variants cover every template path: modes, write modes, mirror deletes, origin and no origin', () => {
    const kinds = new Set(statements.map((s) => s.statement.kind));
    for (const kind of ['merge', 'mirror-deletes', 'count-mirror-deletes', 'read-horizon', 'copy-out', 'bootstrap']) expect(kinds).toContain(kind);
    const steps = plans.flatMap((p) => p.plan.steps);
    expect(new Set(steps.map((s) => s.mode))).toEqual(new Set(['full', 'incremental']));
    expect(new Set(steps.map((s) => s.write))).toEqual(new Set(['upsert', 'insert-only']));
    expect(steps.some((s) => s.direction === 'forward' && s.write === 'insert-only')).toBe(true);
    expect(plans.find((p) => p.label === 'forward-only, no origin rule')?.config.tables.every((t) => t.origin === null)).toBe(true);
  });

  it('no statement truncates any table (seed 002)', () => {
    for (const s of statements) {
      expect(nodesOf(s.tree, 'TruncateStmt'), `${s.variant}: ${s.label}`).toEqual([]);
      expect(functionNamesOf(s.tree).filter((f) => /truncate/i.test(f)), `${s.variant}: ${s.label}`).toEqual([]);
    }
  });

  it('no statement drops anything; the only ON COMMIT DROP is bisync’s temporary staging table', () => {
    for (const s of statements) {
      expect(nodesOf(s.tree, 'DropStmt'), `${s.variant}: ${s.label}`).toEqual([]);
      for (const create of nodesOf(s.tree, 'CreateStmt')) {
        const relation = create.relation as { relname: string; relpersistence: string };
        if (create.oncommit === 'ONCOMMIT_DROP') {
          expect(relation.relpersistence, s.label).toBe('t');
          expect(relation.relname, s.label).toBe('bisync_stage');
        }
      }
    }
    expect(statements.some((s) => nodesOf(s.tree, 'CreateStmt').some((c) => c.oncommit === 'ONCOMMIT_DROP'))).toBe(true);
  });

  it('every DELETE and UPDATE has a WHERE clause; on user tables it carries the ownership predicate', () => {
    let userDeletes = 0;
    for (const s of statements) {
      const stateSchema = s.step.stateSchema;
      for (const type of ['DeleteStmt', 'UpdateStmt']) {
        for (const node of nodesOf(s.tree, type)) {
          const label = `${s.variant}: ${s.label}: ${type}`;
          expect(node.whereClause, label).toBeDefined();
          const relation = node.relation as { schemaname?: string; relname: string };
          if (relation.schemaname === stateSchema) {
            expect(['rejects', 'conflicts'], label).toContain(relation.relname);
            continue;
          }
          // bisync's own temporary staging table (carrying a reject's attempts onto its re-read row).
          if (relation.schemaname === undefined && relation.relname === 'bisync_stage') continue;
          // A user table: only the step's target, and only rows this direction owns.
          expect(`${relation.schemaname ?? ''}.${relation.relname}`, label).toBe(s.step.targetRelation);
          if (s.step.edits === 'both') {
            // edits: both (SPEC §7): only in the three-way merge, only while the row still has the
            // fingerprint the decision was made on, and deletes only with deletes: mirror.
            expect(s.statement.kind, label).toBe('merge');
            expect(functionNamesOf(node.whereClause), label).toContain('md5');
            if (type === 'DeleteStmt') {
              userDeletes++;
              expect(s.step.deletes, label).toBe('mirror');
            }
            continue;
          }
          const origin = s.step.direction === 'forward' ? plans.find((p) => p.plan.steps.includes(s.step))?.config.tables.find((t) => t.name === s.step.table)?.origin : null;
          if (origin !== null && origin !== undefined) {
            expect(columnRefsOf(node.whereClause), label).toContain(origin.column);
            const refs = nodesOf(node.whereClause, 'ParamRef').map((r) => paramName(s.statement, r));
            expect(refs, label).toContain('origin value this direction writes');
          }
          if (type === 'DeleteStmt') {
            userDeletes++;
            expect(s.statement.kind, label).toBe('mirror-deletes');
            expect(s.step.deletes, label).toBe('mirror');
            expect(s.step.mode, label).toBe('full');
            expect(origin, `${label}: a mirror delete needs an ownership predicate`).toBeTruthy();
          }
        }
      }
      // Upserts (ON CONFLICT DO UPDATE) only on bisync's own tables.
      for (const insert of nodesOf(s.tree, 'InsertStmt')) {
        const conflict = insert.onConflictClause as { action?: string } | undefined;
        if (conflict?.action === 'ONCONFLICT_UPDATE') expect((insert.relation as { schemaname?: string }).schemaname, s.label).toBe(s.step.stateSchema);
      }
    }
    expect(userDeletes).toBeGreaterThan(0);
  });

  it('no statement has a LIMIT or OFFSET, and a full read has no cursor window (seed 001)', () => {
    const limited: string[] = [];
    for (const s of statements) {
      walk(s.tree, (node) => {
        if ('limitCount' in node || 'limitOffset' in node || 'FetchStmt' in node) limited.push(`${s.variant}: ${s.label}`);
      });
      if (s.statement.kind === 'copy-out' && s.step.mode === 'full') {
        const select = nodesOf(s.tree, 'SelectStmt')[0];
        const refs = columnRefsOf(select?.whereClause);
        const config = plans.find((p) => p.plan.steps.includes(s.step))?.config.tables.find((t) => t.name === s.step.table);
        const originFilter = s.step.direction === 'reverse' && config?.origin && config.edits !== 'both' ? [config.origin.column] : [];
        if (s.step.compare === 'checksum') {
          // checksum-first (SPEC §8): only the key buckets whose checksums differ, never a cursor window.
          // With edits: both a key the source deleted arrives from its copy of the base (its column `key`),
          // and a source row's key is the one built once from its key columns (`__bisync_key`).
          const keys = [...(config?.primaryKey ?? []).map((k) => k[s.step.source]), ...(config?.edits === 'both' ? ['key', '__bisync_key'] : [])];
          expect(refs.every((r) => keys.includes(r)) && refs.length > 0, `${s.variant}: ${s.label}: ${refs.join(', ')}`).toBe(true);
          expect(stringConstantsOf(select?.whereClause), s.label).toContain('bisync.buckets');
          const bucketFunctions = ['current_setting', 'md5', 'convert_to', 'left', 'timezone', ...(config?.edits === 'both' ? ['jsonb_build_array'] : [])];
          expect(functionNamesOf(select?.whereClause).filter((f) => !bucketFunctions.includes(f)), s.label).toEqual([]);
        } else {
          expect(refs, `${s.variant}: ${s.label}`).toEqual(originFilter);
          expect(functionNamesOf(select?.whereClause).filter((f) => f !== 'current_setting'), s.label).toEqual([]);
        }
      }
    }
    expect(limited).toEqual([]);
  });

  it('a read of the source parses each bisync setting once per statement (in a sub-select), never once per row it scans', () => {
    // current_setting(...)::timestamptz in a scan's condition is evaluated for every row: on 25,000
    // rows that parse cost 33 ms of the 38 ms an incremental window took (SPEC §8: the probe's time).
    const perRow: string[] = [];
    let reads = 0;
    for (const s of statements.filter((x) => x.statement.kind === 'copy-out' || x.statement.kind === 'probe-window')) {
      walk(s.tree, (node, ancestors) => {
        const call = node.FuncCall as Record<string, unknown> | undefined;
        if (call === undefined) return;
        const name = (call.funcname as { String?: { sval?: string } }[] | undefined)?.map((n) => n.String?.sval).at(-1);
        const setting = stringConstantsOf(call.args as Tree).find((c) => c.startsWith('bisync.'));
        if (name !== 'current_setting' || setting === undefined) return;
        reads++;
        if (!ancestors.some((a) => 'SubLink' in a)) perRow.push(`${s.variant}: ${s.label}: ${setting}`);
      });
    }
    expect(reads).toBeGreaterThan(0);
    expect(perRow).toEqual([]);
  });

  it('the clock never reaches a watermark: only the read-horizon clamp, which can only lower it (seed 000)', () => {
    let horizonClamps = 0;
    for (const s of statements) {
      expect(clockCount(s.tree), `${s.variant}: ${s.label}: a clock reading in a watermark expression or comparison`).toBe(allowedClockCount(s.tree));
      if (s.statement.kind === 'save-state') {
        // The watermark stored is LEAST(max(cursor read), read horizon): never above what was read.
        const refs = nodesOf(s.tree, 'ParamRef').filter((r) => paramName(s.statement, r) === 'read horizon');
        expect(refs, s.label).toHaveLength(1);
        const leasts = nodesOf(s.tree, 'MinMaxExpr').filter((m) => m.op === 'IS_LEAST');
        expect(leasts, s.label).toHaveLength(1);
        const args = (leasts[0]?.args ?? []) as Tree[];
        expect(functionNamesOf(args[0]), s.label).toEqual(['max']);
        expect(columnRefsOf(args[0]), s.label).toEqual(['__bisync_cursor']);
        expect(nodesOf(args[1], 'ParamRef').map((r) => paramName(s.statement, r)), s.label).toEqual(['read horizon']);
        horizonClamps++;
      }
      if (s.statement.kind === 'read-horizon') expect(clockCount(s.tree), s.label).toBe(1);
    }
    expect(horizonClamps).toBe(plans.reduce((n, p) => n + p.plan.steps.length, 0));
  });

  it('values from the config are parameters, never SQL text: origin markers, table names, watermark, lookback', () => {
    const marked = statements.filter((s) => s.variant === 'marked config values, incremental');
    const values = [MARKED.forward, MARKED.reverse, ...MARKED.tables, MARKED.lookbackParam, WATERMARK];
    for (const s of marked) for (const value of values) expect(s.statement.sql, `${s.label}: ${value}`).not.toContain(value);
    const params = new Set(marked.flatMap((s) => s.statement.params.map((p: PlanStatement['params'][number]) => p.value)));
    for (const value of values) expect(params, value).toContain(value);
    // And no plan carries a database URL (secrets never appear in plans).
    for (const { plan, config } of plans) {
      const text = JSON.stringify(plan);
      for (const db of Object.values(config.databases)) expect(text).not.toContain(db.url);
    }
  });

  it('every template is ASCII: a server whose encoding cannot hold a character of the query text (LATIN1 has no "—") refuses the statement', () => {
    const dir = fileURLToPath(new URL('../../templates/', import.meta.url));
    const offending = readdirSync(dir)
      .filter((f) => f.endsWith('.sql.hbs'))
      .flatMap((f) => readFileSync(`${dir}${f}`, 'utf8').split('\n').map((line, i) => ({ where: `${f}:${i + 1}`, line })))
      .filter(({ line }) => /[^\x00-\x7f]/.test(line))
      .map(({ where, line }) => `${where}: ${line}`);
    expect(offending).toEqual([]);
  });

  it('every string literal in the SQL is one written in a template (none comes from the config)', () => {
    const dir = fileURLToPath(new URL('../../templates/', import.meta.url));
    const written = new Set<string>();
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.sql.hbs'))) {
      const text = readFileSync(`${dir}${file}`, 'utf8').replace(/--[^\n]*/g, ''); // comments have apostrophes
      for (const m of text.matchAll(/'((?:[^']|'')*)'/g)) written.add((m[1] ?? '').replaceAll("''", "'"));
    }
    // The helpers write a few (time zone 'UTC', encoding 'UTF8'): literals inside their SQL fragments.
    const helpers = readFileSync(fileURLToPath(new URL('../../src/compiler/render-sql.ts', import.meta.url)), 'utf8');
    for (const m of helpers.matchAll(/\(['"]?'([A-Z0-9]+)'/g)) written.add(m[1] ?? '');
    for (const m of helpers.matchAll(/, '([A-Z0-9]+)'\)/g)) written.add(m[1] ?? '');
    const foreign: string[] = [];
    let seen = 0;
    for (const s of statements) {
      walk(s.tree, (node, ancestors) => {
        // Options of BEGIN (isolation level, read only) are keywords the parser turns into constants.
        if (ancestors.some((a) => 'DefElem' in a)) return;
        const constant = (node.A_Const as { sval?: { sval?: string } } | undefined)?.sval;
        if (constant === undefined) return;
        seen++;
        if (!written.has(constant.sval ?? '')) foreign.push(`${s.variant}: ${s.label}: '${constant.sval ?? ''}'`);
      });
    }
    expect(foreign).toEqual([]);
    expect(seen).toBeGreaterThan(0);
  });

  it('statements touch only the step’s two tables, the tables its guard watches (reached by a mirror delete through foreign keys) and the catalog it reads for them, bisync’s own tables and the staging table', () => {
    for (const s of statements) {
      const cteNames = new Set(nodesOf(s.tree, 'CommonTableExpr').map((c) => String(c.ctename)));
      const allowed = new Set([s.step.sourceRelation, s.step.targetRelation, ...s.step.guardedRelations, 'bisync_stage', 'pg_stat_activity', 'pg_locks', 'pg_database', 'pg_inherits', 'pg_namespace', 'pg_class']);
      // The ownership check of the state schema reads the system catalogs (and nothing else).
      if (s.label.includes('check-state')) for (const c of ['pg_roles', 'pg_auth_members', 'pg_namespace', 'pg_class', 'pg_attribute', 'pg_trigger', 'pg_rewrite']) allowed.add(c);
      for (const t of ['state', 'runs', 'rejects', 'base', 'conflicts']) allowed.add(`${s.step.stateSchema}.${t}`);
      for (const r of relationsOf(s.tree)) {
        if (r.schemaname === undefined && cteNames.has(r.relname)) continue;
        expect(allowed, `${s.variant}: ${s.label}`).toContain(r.schemaname === undefined ? r.relname : `${r.schemaname}.${r.relname}`);
      }
    }
  });
});
