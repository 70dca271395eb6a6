/** SPEC §7 config rules: edits, conflicts, and deletes with edits: both. */
import { describe, expect, it } from 'vitest';
import { at, onlyProblem, resolve, withTables, yaml } from './helpers.js';

describe('edits and conflicts (SPEC §7)', () => {
  it('edits: both with conflicts, timestamps on both sides and deletes: mirror resolves; owner and park are the defaults', () => {
    const config = resolve(
      withTables(yaml`
        - name: jobshead
          primary_key: [job_id]
          edits: both
          conflicts: newest
          deletes: mirror
          timestamps: { desktop: [updated_at], cloud: [updated_at] }
        - name: climaster
          primary_key: [client_id]
          edits: both
          conflicts: desktop
        - name: orgmaster
          primary_key: [org_id]
      `),
    );
    expect(config.tables.map((t) => [t.name, t.edits, t.conflicts])).toEqual([
      ['jobshead', 'both', { kind: 'newest' }],
      ['climaster', 'both', { kind: 'database', database: 'desktop' }],
      ['orgmaster', 'owner', { kind: 'park' }],
    ]);
  });

  it('edits: both without direction: both is an error at edits', () => {
    const text = withTables(yaml`
      - name: jobshead
        primary_key: [job_id]
        direction: forward
        edits: both
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].edits');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'edits: both', 'both'));
    expect(p.message).toMatch(/edits: both needs direction: both/);
    expect(p.hint).toMatch(/direction: both/);
  });

  it('conflicts naming no database is an error at conflicts, with a did-you-mean', () => {
    const text = withTables(yaml`
      - name: jobshead
        primary_key: [job_id]
        edits: both
        conflicts: desktp
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].conflicts');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'conflicts: desktp', 'desktp'));
    expect(p.message).toMatch(/"desktp" is neither park, newest nor one of the databases \(desktop, cloud\)/);
    expect(p.hint).toBe('did you mean "desktop"?');
  });

  it('conflicts: newest without cursor columns on both databases is an error naming the side that has none', () => {
    const text = withTables(yaml`
      - name: jobshead
        primary_key: [job_id]
        edits: both
        conflicts: newest
        timestamps: { cloud: [updated_at] }
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].conflicts');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'conflicts: newest', 'newest'));
    expect(p.message).toMatch(/conflicts: newest needs cursor columns on both databases; desktop has none/);
    expect(p.hint).toMatch(/timestamps: \{ desktop: \[updated_at\] \}/);
  });

  it('a misspelt edits value is refused by the schema', () => {
    const text = withTables(yaml`
      - name: jobshead
        primary_key: [job_id]
        edits: everyone
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].edits');
    expect(p.message).toMatch(/owner, both/);
  });
});
