/**
 * `bisync plan` through the built CLI, as a user runs it: it writes nothing to either database, not
 * even the state schema (SPEC §3), prints the SQL with `$n` placeholders and the parameters, and
 * maps mistakes in --mode and --table to exit 2 with a useful message.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { planSql } from '../../src/cli/plan-output.js';
import { planCommand } from '../../src/commands/plan.js';
import { EXAMPLE_CONFIG, apply, envFor, loadSample, runCli, testConfig } from '../harness/bisync.js';
import type { CliResult } from '../harness/bisync.js';
import { useFreshDatabases, withClient } from '../harness/fresh-databases.js';

/**
 * Everything a write would change, per database: schemas, relations, and for every user table a
 * digest of its rows' physical identity (ctid, xmin), which any INSERT, UPDATE (even to the same
 * values) or DELETE changes. Statistics counters are not used: they are flushed asynchronously.
 */
async function fingerprint(url: string): Promise<Record<string, unknown>> {
  return await withClient(url, async (c) => {
    const schemas = (await c.query<{ nspname: string }>("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1")).rows.map((r) => r.nspname);
    const relations = (
      await c.query<{ schema: string; name: string; kind: string }>(
        `SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
          ORDER BY 1, 2`,
      )
    ).rows;
    const rows: Record<string, string> = {};
    for (const r of relations.filter((x) => x.kind === 'r')) {
      const relation = `${c.escapeIdentifier(r.schema)}.${c.escapeIdentifier(r.name)}`;
      const digest = await c.query<{ n: string; digest: string | null }>(
        `SELECT count(*)::text AS n, md5(string_agg(ctid::text || ':' || xmin::text, ',' ORDER BY ctid)) AS digest FROM ${relation}`,
      );
      rows[`${r.schema}.${r.name}`] = `${digest.rows[0]?.n ?? '?'} ${digest.rows[0]?.digest ?? ''}`;
    }
    return { schemas, relations, rows };
  });
}

describe('bisync plan (CLI) writes nothing and prints what apply would run', () => {
  const dbs = useFreshDatabases('plancli');
  const plan = async (...args: string[]): Promise<CliResult> => await runCli(['plan', '--config', EXAMPLE_CONFIG, ...args], envFor(dbs));
  let before: { desktop: Record<string, unknown>; cloud: Record<string, unknown> };
  /** Every CLI run on the fresh databases, started together (each is a separate process). */
  let runs: Record<'sql' | 'json' | 'forward' | 'reverseFull' | 'incremental' | 'unknownTable', CliResult>;

  beforeAll(async () => {
    await loadSample(dbs, 0.01);
    before = { desktop: await fingerprint(dbs.desktopUrl), cloud: await fingerprint(dbs.cloudUrl) };
    const [sql, json, forward, reverseFull, incremental, unknownTable] = await Promise.all([
      plan('--format', 'sql'),
      plan('--format', 'json'),
      plan('--direction', 'forward', '--format', 'json'),
      plan('--direction', 'reverse', '--mode', 'full'),
      plan('--mode', 'incremental', '--table', 'orgmaster'),
      plan('--table', 'climastr'),
    ]);
    runs = { sql, json, forward, reverseFull, incremental, unknownTable };
  });

  it('on fresh databases: no bisync schema is created and no table changes, on either side', async () => {
    for (const r of [runs.sql, runs.json, runs.forward, runs.reverseFull]) expect(r.code, r.stderr).toBe(0);
    const after = { desktop: await fingerprint(dbs.desktopUrl), cloud: await fingerprint(dbs.cloudUrl) };
    expect(after).toEqual(before);
    expect(before.desktop.schemas).not.toContain('bisync');
    expect(before.cloud.schemas).not.toContain('bisync');
  });

  it('prints the SQL with $n placeholders and a comment naming each parameter, exactly the compiled plan', async () => {
    const result = runs.sql;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^-- bisync plan [0-9a-f]{64}$/m);
    expect(result.stdout).toContain("--   $1 = 'orgmaster'  (table)");
    expect(result.stdout).toContain('--   $1 = <first staged row, supplied while running>');
    expect(result.stdout).toContain('WHERE t."org_id" = s."org_id"::integer');
    expect(result.stdout).toMatch(/WHERE st\.table_name = \$1\n {3}AND st\.direction = \$2\n {3}FOR UPDATE NOWAIT/);
    // Exactly the plan compiled in-process (which golden.test.ts pins to golden/example-plan.sql).
    const config = await testConfig(EXAMPLE_CONFIG, dbs);
    const expected = planSql(await planCommand(config, { direction: 'both', tables: [], mode: 'auto' }));
    expect(result.stdout.length, 'the CLI printed a different amount of text (truncated output?)').toBe(expected.length);
    expect(result.stdout === expected, 'the CLI printed something other than the compiled plan').toBe(true);
  });

  it('--format json is one JSON document with steps[].statements[].sql/params and the same hash', () => {
    expect(runs.json.code, runs.json.stderr).toBe(0);
    const parsed = JSON.parse(runs.json.stdout) as {
      version: number;
      hash: string;
      steps: { table: string; direction: string; mode: string; reason: string; statements: { kind: string; sql: string; params: { name: string; value: string | null; runtime: boolean }[] }[] }[];
    };
    expect(parsed.version).toBe(1);
    expect(parsed.steps).toHaveLength(23);
    for (const step of parsed.steps) {
      expect(step.statements.length).toBeGreaterThan(0);
      for (const s of step.statements) {
        expect(typeof s.sql).toBe('string');
        expect(Array.isArray(s.params)).toBe(true);
        // Placeholders and parameters agree: $1..$n, each used.
        const used = new Set([...s.sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
        expect([...used].sort((a, b) => a - b)).toEqual(s.params.map((_, i) => i + 1));
      }
    }
    expect(`-- bisync plan ${parsed.hash}`).toBe(runs.sql.stdout.split('\n')[0]);
  });

  it('--mode incremental on a table without cursor columns exits 2 and names the table', () => {
    const result = runs.incremental;
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('--mode incremental: table "orgmaster" has no cursor columns on desktop');
    expect(result.stderr).toContain('hint: add timestamps: { desktop: [updated_at] }');
  });

  it('--table with an unknown name exits 2 with a did-you-mean', () => {
    const result = runs.unknownTable;
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('--table names "climastr"');
    expect(result.stderr).toContain('did you mean "climaster"?');
  });

  it('--direction forward prints only forward steps; both prints forward steps then reverse steps', () => {
    const directions = (r: CliResult): string[] => (JSON.parse(r.stdout) as { steps: { direction: string }[] }).steps.map((s) => s.direction);
    expect(new Set(directions(runs.forward))).toEqual(new Set(['forward']));
    const all = directions(runs.json);
    expect(all.indexOf('reverse')).toBe(directions(runs.forward).length);
    expect(all.slice(all.indexOf('reverse')).every((d) => d === 'reverse')).toBe(true);
  });

  it('after a sync, planning again (incremental, reading the state) still writes nothing', async () => {
    const config = await testConfig(EXAMPLE_CONFIG, dbs);
    expect((await apply(config)).exitCode).toBe(0);
    // A leave request filed on the phone gives the reverse step a watermark.
    await withClient(dbs.cloudUrl, async (c) => {
      await c.query(
        "INSERT INTO learequest (lea_id, staff_id, leave_type, from_date, to_date, status, source) VALUES (9001, 1, 'sick', '2026-01-05', '2026-01-06', 'pending', 'M')",
      );
    });
    expect((await apply(config)).exitCode).toBe(0);
    const synced = { desktop: await fingerprint(dbs.desktopUrl), cloud: await fingerprint(dbs.cloudUrl) };
    expect(synced.desktop.schemas).toContain('bisync');
    const result = await plan('--format', 'json');
    expect(result.code, result.stderr).toBe(0);
    const steps = (JSON.parse(result.stdout) as { steps: { table: string; direction: string; mode: string; watermark: string | null }[] }).steps;
    const leave = steps.find((s) => s.table === 'learequest' && s.direction === 'reverse');
    expect(leave?.mode).toBe('incremental');
    expect(leave?.watermark).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect({ desktop: await fingerprint(dbs.desktopUrl), cloud: await fingerprint(dbs.cloudUrl) }).toEqual(synced);
  });
});
