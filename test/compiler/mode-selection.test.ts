/**
 * Incremental where it can be, honest where it can't (SPEC §2.2, seed 003): which mode each step
 * uses and the reason the plan gives, and how --direction, --table and --mode select steps (§3).
 */
import { describe, expect, it } from 'vitest';
import { CompileError, compilePlan, stepKey } from '../../src/compiler/compile-plan.js';
import type { CompileOptions, StateSnapshot } from '../../src/compiler/compile-plan.js';
import type { Plan, PlanStep } from '../../src/compiler/plan-types.js';
import { ExitCode } from '../../src/errors.js';
import { configFrom, smallCatalogs, smallDocument } from './helpers.js';

const config = configFrom(smallDocument());
const WATERMARK = '2026-01-02T03:04:05.123456Z';

function compile(options: Partial<CompileOptions> = {}, state: StateSnapshot = {}): Plan {
  return compilePlan(config, smallCatalogs(), state, { direction: 'both', mode: 'auto', ...options });
}

function step(plan: Plan, table: string, direction: string): PlanStep {
  const found = plan.steps.find((s) => s.table === table && s.direction === direction);
  if (found === undefined) throw new Error(`no step ${table} ${direction}`);
  return found;
}

function compileError(fn: () => unknown): CompileError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CompileError) return error;
    throw error;
  }
  throw new Error('expected a CompileError');
}

const sinceParam = (s: PlanStep): string | null | undefined =>
  s.statements.find((x) => x.kind === 'settings' && x.side === 'source' && x.params.some((p) => p.name === 'watermark'))?.params.find((p) => p.name === 'watermark')?.value;

describe('mode selection and the reason the plan gives (seed 003: no silent "incremental")', () => {
  it('a source without cursor columns is read in full, and the reason says so', () => {
    const s = step(compile({}, { [stepKey('clients', 'forward')]: WATERMARK }), 'clients', 'forward');
    expect(s.mode).toBe('full');
    // It has run before (a state row): it compares bucket checksums first (SPEC §8).
    expect(s.reason).toBe(
      'no cursor columns on desktop: every row is read and compared; only changed rows are written; checksum-first: both databases sum row hashes per bucket of keys (1,024 buckets), and only the rows of buckets that differ are read',
    );
    expect(sinceParam(s)).toBeUndefined();
    expect(s.statements.map((x) => x.kind)).not.toContain('read-horizon');
  });

  it('cursor columns but no watermark yet is a full first run, and the reason says so', () => {
    const s = step(compile(), 'clients', 'reverse');
    expect(s.mode).toBe('full');
    expect(s.reason).toMatch(/no watermark yet \(first run/);
    expect(s.watermark).toBeNull();
    expect(sinceParam(s)).toBeUndefined();
    // The watermark is still taken from what is read, so the next run can be incremental.
    expect(s.statements.map((x) => x.kind)).toContain('read-horizon');
  });

  it('a watermark on a step with cursor columns makes it incremental from that watermark; a role that sees transaction starts reads by the cursor alone (the index serves it)', () => {
    const s = step(compile({}, { [stepKey('clients', 'reverse')]: WATERMARK }), 'clients', 'reverse');
    expect(s.mode).toBe('incremental');
    expect(s.reason).toBe(`watermark ${WATERMARK} on updated_at, created_at, minus the lookback`);
    expect(sinceParam(s)).toBe(WATERMARK);
    // Even with a saved read snapshot: the horizon clamp holds the watermark for transactions running at the read.
    const withSnapshot = compilePlan(config, smallCatalogs(), { [stepKey('clients', 'reverse')]: WATERMARK }, { direction: 'both', mode: 'auto' }, {
      [stepKey('clients', 'reverse')]: { xmin: '8000', relfilenode: null, system: null },
    });
    const copyOut = step(withSnapshot, 'clients', 'reverse').statements.find((x) => x.kind === 'copy-out');
    expect(copyOut?.sql).not.toContain('f.xmin');
  });

  it('without pg_read_all_stats a cursor step also reads rows written from the saved snapshot xmin on, and says when it cannot yet', () => {
    const blind = { ...smallCatalogs(), cloud: { ...smallCatalogs().cloud, seesOtherSessions: false } } as ReturnType<typeof smallCatalogs>;
    const s = step(compilePlan(config, blind, { [stepKey('clients', 'reverse')]: WATERMARK }, { direction: 'both', mode: 'auto' }), 'clients', 'reverse');
    expect(s.mode).toBe('incremental');
    // No read snapshot saved by the last run: the late-commit check by xmin waits for the next one, and the plan says so.
    expect(s.reason).toBe(
      `watermark ${WATERMARK} on updated_at, created_at, minus the lookback; a transaction running at the last read that committed older cursor values is read only within the lookback: the last run saved no read snapshot`,
    );
    expect(sinceParam(s)).toBe(WATERMARK);
  });

  it('--mode full forces a full read despite a watermark', () => {
    const s = step(compile({ mode: 'full' }, { [stepKey('clients', 'reverse')]: WATERMARK }), 'clients', 'reverse');
    expect(s.mode).toBe('full');
    expect(s.reason).toBe('--mode full');
    expect(sinceParam(s)).toBeUndefined();
    expect(s.watermark).toBe(WATERMARK);
  });

  it('--mode incremental on a table without cursor columns is an error (exit 2) that names the table and the fix', () => {
    const error = compileError(() => compile({ mode: 'incremental', tables: ['orgs'] }));
    expect(error.exitCode).toBe(ExitCode.usage);
    expect(error.message).toBe('--mode incremental: table "orgs" has no cursor columns on desktop');
    expect(error.hint).toContain('timestamps: { desktop: [updated_at] }');
  });

  it('--mode incremental with cursor columns but no watermark yet reads in full and says why', () => {
    const s = step(compile({ mode: 'incremental', direction: 'reverse', tables: ['clients'] }), 'clients', 'reverse');
    expect(s.mode).toBe('full');
    expect(s.reason).toMatch(/no watermark yet/);
  });

  it('deletes: mirror only deletes after a full read: an incremental step says it waits, and plans no delete', () => {
    const incremental = step(compile({}, { [stepKey('tags', 'forward')]: WATERMARK }), 'tags', 'forward');
    expect(incremental.mode).toBe('incremental');
    expect(incremental.reason).toMatch(/deletes: mirror waits for a full read$/);
    expect(incremental.statements.map((x) => x.kind)).not.toContain('mirror-deletes');
    const full = step(compile({ mode: 'full' }, { [stepKey('tags', 'forward')]: WATERMARK }), 'tags', 'forward');
    expect(full.statements.map((x) => x.kind)).toEqual(expect.arrayContaining(['count-mirror-deletes', 'mirror-deletes']));
  });

  it('--table with an unknown name is an error (exit 2) with a did-you-mean', () => {
    const error = compileError(() => compile({ tables: ['clints'] }));
    expect(error.exitCode).toBe(ExitCode.usage);
    expect(error.message).toContain('"clints"');
    expect(error.hint).toBe('did you mean "clients"?');
    const far = compileError(() => compile({ tables: ['zzzzzz'] }));
    expect(far.hint).toBe('tables: orgs, clients, notes, tags');
  });
});

describe('step selection: --direction and --table', () => {
  const names = (plan: Plan): string[] => plan.steps.map((s) => `${s.table} ${s.direction}`);

  it('--direction both is every forward step, in table order, then every reverse step', () => {
    expect(names(compile())).toEqual(['orgs forward', 'clients forward', 'tags forward', 'clients reverse', 'notes reverse']);
  });

  it('--direction forward plans only forward steps; reverse only reverse steps', () => {
    expect(names(compile({ direction: 'forward' }))).toEqual(['orgs forward', 'clients forward', 'tags forward']);
    expect(names(compile({ direction: 'reverse' }))).toEqual(['clients reverse', 'notes reverse']);
  });

  it('--table keeps the run order of the config (after dependencies), not the order given', () => {
    expect(names(compile({ tables: ['notes', 'clients'] }))).toEqual(['clients forward', 'clients reverse', 'notes reverse']);
  });

  it('the run order follows `after` even when the file lists a table before its dependency', () => {
    const swapped = smallDocument();
    const tables = swapped.tables as unknown[];
    swapped.tables = [tables[1], tables[0], tables[2], tables[3]];
    const plan = compilePlan(configFrom(swapped), smallCatalogs(), {}, { direction: 'forward', mode: 'auto' });
    expect(names(plan)).toEqual(['orgs forward', 'clients forward', 'tags forward']);
  });

  it('an unknown table is refused before anything is compiled, even with a valid one beside it', () => {
    expect(() => compile({ tables: ['orgs', 'nope'] })).toThrow(CompileError);
  });
});
