/**
 * The compiler is a pure function (STYLE: "same input, byte-identical plan"), and the plan hash is
 * what ties `apply` to `plan` (SPEC §2.9): the same input must always give the same hash, and any
 * input that changes what runs must change it. Property tests with fast-check.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePlan, stepKey } from '../../src/compiler/compile-plan.js';
import type { CompileOptions, StateSnapshot } from '../../src/compiler/compile-plan.js';
import type { Catalog } from '../../src/compiler/catalog.js';
import { quoteIdent, quoteQualified } from '../../src/compiler/quote-ident.js';
import { configFrom, nodesOf, parseStatements, relationsOf, smallCatalogs, smallDocument, stringsOf } from './helpers.js';

const config = configFrom(smallDocument());
const STEP_KEYS = config.tables.flatMap((t) => t.directions.map((d) => stepKey(t.name, d)));
const TABLES = config.tables.map((t) => t.name);

/** A cursor value as the state table prints it: UTC, microseconds, `Z`. */
const watermark = fc
  .record({ ms: fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2099, 11, 31) }), micro: fc.integer({ min: 0, max: 999 }) })
  .map(({ ms, micro }) => `${new Date(ms).toISOString().slice(0, -1)}${String(micro).padStart(3, '0')}Z`);

const state: fc.Arbitrary<StateSnapshot> = fc.dictionary(fc.constantFrom(...STEP_KEYS), fc.option(watermark, { nil: null }));

const options: fc.Arbitrary<CompileOptions> = fc.record({
  direction: fc.constantFrom('forward', 'reverse', 'both'),
  tables: fc.subarray(TABLES),
  mode: fc.constantFrom('auto', 'full'),
});

function shuffled<T>(record: Readonly<Record<string, T>>, order: readonly number[]): Record<string, T> {
  const entries = Object.entries(record);
  return Object.fromEntries(entries.map((e, i) => ({ e, k: order[i % Math.max(order.length, 1)] ?? i })).sort((a, b) => a.k - b.k).map((x) => x.e));
}

describe('determinism: same input, byte-identical plan and hash', () => {
  it('compiling the same input twice gives byte-identical plans with the same hash', () => {
    fc.assert(
      fc.property(state, options, (s, o) => {
        const first = compilePlan(config, smallCatalogs(), s, o);
        const second = compilePlan(configFrom(smallDocument()), smallCatalogs(), { ...s }, { ...o });
        expect(JSON.stringify(second)).toBe(JSON.stringify(first));
        expect(second.hash).toBe(first.hash);
      }),
      { numRuns: 60 },
    );
  });

  it('the plan does not depend on the key order of the state or the catalogs', () => {
    fc.assert(
      fc.property(state, options, fc.array(fc.integer(), { minLength: 1, maxLength: 8 }), (s, o, order) => {
        const catalogs = smallCatalogs();
        const reordered: Record<string, Catalog> = shuffled(
          Object.fromEntries(Object.entries(catalogs).map(([db, c]) => [db, { ...c, tables: shuffled(c.tables, order) }])),
          order,
        );
        expect(JSON.stringify(compilePlan(config, reordered, shuffled(s, order), o))).toBe(JSON.stringify(compilePlan(config, catalogs, s, o)));
      }),
      { numRuns: 40 },
    );
  });

  it('changing a watermark changes the step hash and the plan hash (microseconds included)', () => {
    const key = stepKey('clients', 'reverse');
    fc.assert(
      fc.property(watermark, watermark, (a, b) => {
        fc.pre(a !== b);
        const planA = compilePlan(config, smallCatalogs(), { [key]: a }, { direction: 'reverse', mode: 'auto' });
        const planB = compilePlan(config, smallCatalogs(), { [key]: b }, { direction: 'reverse', mode: 'auto' });
        const stepA = planA.steps.find((s) => s.table === 'clients');
        const stepB = planB.steps.find((s) => s.table === 'clients');
        expect(stepA?.hash).not.toBe(stepB?.hash);
        expect(planA.hash).not.toBe(planB.hash);
        // Steps the watermark does not concern keep their hash.
        expect(planA.steps.filter((s) => s.table !== 'clients').map((s) => s.hash)).toEqual(planB.steps.filter((s) => s.table !== 'clients').map((s) => s.hash));
      }),
      { numRuns: 60 },
    );
    // One microsecond apart is a different plan.
    const at = (w: string): string => compilePlan(config, smallCatalogs(), { [key]: w }, { direction: 'reverse', mode: 'auto' }).hash;
    expect(at('2026-01-02T03:04:05.123456Z')).not.toBe(at('2026-01-02T03:04:05.123457Z'));
  });

  it('the hash is over exactly what runs: each step hashes its statements, the plan hashes the steps', () => {
    const plan = compilePlan(config, smallCatalogs(), { [stepKey('clients', 'reverse')]: '2026-01-02T03:04:05.123456Z' }, { direction: 'both', mode: 'auto' });
    const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
    for (const step of plan.steps) {
      const { table, direction, mode, statements, bootstrap, probe } = step;
      // The probe (run before the steps; when it finds nothing to do, the statements do not run) is hashed too.
      expect(step.hash).toBe(sha(JSON.stringify({ table, direction, mode, statements, bootstrap, ...(probe === undefined ? {} : { probe }) })));
    }
    expect(plan.hash).toBe(sha(plan.steps.map((s) => s.hash).join('\n')));
  });

  it('a compiled plan is not affected by later mutation of its inputs (no shared references)', () => {
    const s: Record<string, string | null> = { [stepKey('clients', 'reverse')]: '2026-01-02T03:04:05.123456Z' };
    const catalogs = smallCatalogs();
    const plan = compilePlan(config, catalogs, s, { direction: 'both', mode: 'auto' });
    const before = JSON.stringify(plan);
    s[stepKey('clients', 'reverse')] = '2030-01-01T00:00:00.000000Z';
    const columns = catalogs.cloud?.tables.clients?.columns as unknown as { name: string }[];
    columns.forEach((c) => {
      c.name = 'changed';
    });
    expect(JSON.stringify(plan)).toBe(before);
  });
});

describe('quoteIdent: any name round-trips through the PostgreSQL parser', () => {
  // Names PostgreSQL keeps whole: non-empty, no NUL, at most 63 bytes (longer ones are truncated).
  const name = fc
    .oneof(fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 30 }), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }), fc.constantFrom('"', '""', '";--', 'a"b', '$1', '\n', ' '))
    .filter((s) => !s.includes('\0') && Buffer.byteLength(s) <= 63);

  it('a quoted name is one identifier, exactly the name', () => {
    fc.assert(
      fc.property(name, name, name, (schema, table, col) => {
        const sql = `SELECT f.${quoteIdent(col)} FROM ${quoteQualified({ schema, name: table })} AS f`;
        const statements = parseStatements(sql);
        expect(statements).toHaveLength(1);
        expect(relationsOf(statements)).toEqual([{ schemaname: schema, relname: table }]);
        expect(nodesOf(statements, 'ColumnRef').map((c) => stringsOf(c.fields))).toEqual([['f', col]]);
      }),
      { numRuns: 300 },
    );
  });
});
