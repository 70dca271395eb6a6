import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ResolvedConfig } from '../../src/config/types.js';
import { SPEC_EXAMPLE, resolve, withTables, yaml } from './helpers.js';

const names = (c: ResolvedConfig): string[] => c.tables.map((t) => t.name);

describe('execution order', () => {
  it('without `after`, tables run in file order', () => {
    const c = resolve(
      withTables(yaml`
        - { name: zeta, primary_key: [id] }
        - { name: alpha, primary_key: [id] }
        - { name: mu, primary_key: [id] }
      `),
    );
    expect(names(c)).toEqual(['zeta', 'alpha', 'mu']);
  });

  it('a dependency written later in the file runs first', () => {
    const c = resolve(
      withTables(yaml`
        - { name: jobshead, primary_key: [id], after: [climaster] }
        - { name: climaster, primary_key: [id] }
      `),
    );
    expect(names(c)).toEqual(['climaster', 'jobshead']);
  });

  it('ties are broken by file order: a table runs as soon as its dependencies have, earliest in the file first', () => {
    const c = resolve(
      withTables(yaml`
        - { name: c, primary_key: [id], after: [a] }
        - { name: b, primary_key: [id] }
        - { name: a, primary_key: [id] }
        - { name: d, primary_key: [id], after: [b, a] }
        - { name: e, primary_key: [id] }
      `),
    );
    expect(names(c)).toEqual(['b', 'a', 'c', 'd', 'e']);
  });

  it('a diamond runs its top first, both sides in file order, then the bottom', () => {
    const c = resolve(
      withTables(yaml`
        - { name: bottom, primary_key: [id], after: [right, left] }
        - { name: right, primary_key: [id], after: [top] }
        - { name: left, primary_key: [id], after: [top] }
        - { name: top, primary_key: [id] }
      `),
    );
    expect(names(c)).toEqual(['top', 'right', 'left', 'bottom']);
  });

  it('the same input twice resolves to deep-equal configs', () => {
    const env = { DESKTOP_DATABASE_URL: 'postgres://u:p@localhost/a', CLOUD_DATABASE_URL: 'postgres://u:p@db.example.com/b' };
    const first = resolve(SPEC_EXAMPLE, env);
    const second = resolve(SPEC_EXAMPLE, { ...env });
    expect(second).toEqual(first);
    expect(JSON.stringify(second)).toBe(JSON.stringify(first));
    expect(second).not.toBe(first);
  });

  it('for any acyclic `after` graph the order respects every dependency and breaks ties by file order', () => {
    // Table i may depend on any table of lower rank; ranks are a permutation of file positions, so
    // the graph is acyclic while dependencies point both up and down the file.
    const graph = fc
      .integer({ min: 1, max: 9 })
      .chain((n) =>
        fc.tuple(
          fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
          fc.array(fc.array(fc.nat(n - 1), { maxLength: 3 }), { minLength: n, maxLength: n }),
        ),
      )
      .map(([rank, picks]) => ({ rank, picks, n: rank.length }))
      .map(({ rank, picks, n }) =>
        rank.map((r, i) => {
          const deps = [...new Set(picks[i] ?? [])].filter((j) => (rank[j] ?? n) < r);
          return { name: `t${i}`, after: deps.map((j) => `t${j}`) };
        }),
      );
    fc.assert(
      fc.property(graph, (tables) => {
        const text = withTables(
          tables.map((t) => `- { name: ${t.name}, primary_key: [id], after: [${t.after.join(', ')}] }`).join('\n') + '\n',
        );
        const order = names(resolve(text));
        // Reference model: repeatedly take the first table in file order whose dependencies ran.
        const expected: string[] = [];
        const left = [...tables];
        while (left.length > 0) {
          const i = left.findIndex((t) => t.after.every((d) => expected.includes(d)));
          expect(i).toBeGreaterThanOrEqual(0);
          expected.push(...left.splice(i, 1).map((t) => t.name));
        }
        expect(order).toEqual(expected);
        for (const t of tables) for (const d of t.after) expect(order.indexOf(d)).toBeLessThan(order.indexOf(t.name));
        expect(resolve(text)).toEqual(resolve(text));
      }),
      { numRuns: 150 },
    );
  });
});
