import type pg from 'pg';
import { expect } from 'vitest';
import { resolveConflicts } from '../../src/commands/conflicts.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import type { StepResult } from '../../src/executor/run-step.js';
import { apply } from '../harness/bisync.js';
import type { Command, Resolve, Run } from './three-way-commands.js';
import { performWrite } from './three-way-commands.js';
import type { Holdings, Side, TableName } from './three-way-history.js';
import { History, SIDES, TABLES, differences, readHoldings, readParked, sameRow } from './three-way-history.js';

/** BISYNC_PROPERTY_PROBE=0: every run passes a hook into its steps, so no run is probed (as before the probe). */
const PROBE = process.env.BISYNC_PROPERTY_PROBE !== '0';
/** BISYNC_PROPERTY_PROBE=every: a probed run (nothing inside it) before each run that is not probed. */
const PROBE_EVERY = process.env.BISYNC_PROPERTY_PROBE === 'every';

const QUIESCENT_FULL: Run = { kind: 'run', direction: 'both', tables: 'all', mode: 'full', during: null, killAt: null, dryRun: false, concurrency: 1 };

const other = (side: Side): Side => (side === 'desktop' ? 'cloud' : 'desktop');

/**
 * Plays one scenario of the edits: both model test against the two databases and checks the
 * invariants of issue 10 after every command (README, "What is tested").
 */
export class ThreeWayRunner {
  readonly trace: string[] = [];
  readonly history = new History();

  constructor(
    private readonly clients: Record<Side, pg.Client>,
    private readonly config: ResolvedConfig,
    private readonly deletes: 'mirror' | 'keep',
    /** checksum: full reads of a table without cursor columns compare bucket checksums first (SPEC §8). */
    private readonly compare: 'checksum' | 'full' = 'full',
  ) {}

  async execute(command: Command): Promise<void> {
    if (command.kind === 'write') {
      const held = await readHoldings(this.clients);
      this.trace.push(await performWrite(this.clients, held[command.side][command.table], this.history, command));
      this.history.checkNothingLost(await readHoldings(this.clients));
    } else if (command.kind === 'run') {
      // BISYNC_PROPERTY_PROBE=every: before each run that cannot be probed (writes inside it, a kill, a
      // full read), one that is: the same steps, mode auto, nothing inside.
      const probed = !command.dryRun && command.mode === 'auto' && command.during === null && command.killAt === null;
      if (PROBE_EVERY && !command.dryRun && !probed) await this.sync({ ...command, mode: 'auto', during: null, killAt: null });
      await this.sync(command);
    }
    else if (command.kind === 'resolve') await this.resolve(command);
    else await this.settle(false);
  }

  /**
   * A quiescent `apply --mode full`; with no conflict pending, both sides then hold identical rows
   * (with deletes: keep, except keys one side deleted and the other kept), and a second full run
   * writes nothing, the base included. At the end of a scenario the conflicts are resolved first.
   */
  async settle(final: boolean): Promise<void> {
    await this.sync(QUIESCENT_FULL);
    if (final) {
      for (const table of TABLES) await this.resolve({ kind: 'resolve', table, keep: table === 'note' ? 'desktop' : 'cloud' });
      await this.sync(QUIESCENT_FULL);
    }
    const parked = await readParked(this.clients);
    if (final) expect([...parked.note, ...parked.job], 'no conflict is left after resolving them all and a quiescent full run').toEqual([]);
    if (parked.note.size + parked.job.size > 0) return;
    this.checkConverged(await readHoldings(this.clients));
    const bases = await this.bases();
    const again = await this.sync(QUIESCENT_FULL);
    expect(
      again.map((s) => `${s.table}/${s.direction} +${s.inserted} ~${s.updated} -${s.deleted}`),
      'a no-change full rerun writes nothing',
    ).toEqual(again.map((s) => `${s.table}/${s.direction} +0 ~0 -0`));
    expect(await this.bases(), 'a no-change full rerun leaves the base alone on both sides').toEqual(bases);
    const agreed = async (side: Side): Promise<string[]> =>
      (await this.clients[side].query<{ r: string }>(`SELECT concat_ws(' ', table_name, key::text, coalesce(fingerprint, 'deleted')) AS r FROM bisync.base ORDER BY 1`)).rows.map((r) => r.r);
    expect(await agreed('cloud'), "after a quiescent full run, both copies of the base hold the same version of every key").toEqual(await agreed('desktop'));
    if (this.compare === 'checksum' && this.deletes === 'mirror') {
      // Both sides hold the same rows and both copies of the base agree on each: a checksum-first run
      // of `note` (no cursor columns) finds every bucket equal and reads nothing. (With deletes: keep a
      // key one side deleted keeps its bucket differing.)
      const quick = await this.sync({ ...QUIESCENT_FULL, mode: 'auto', tables: 'note' });
      expect(
        quick.map((s) => `${s.table}/${s.direction} read ${s.read} +${s.inserted} ~${s.updated} -${s.deleted}`),
        'once both copies of the base agree, a no-change checksum-first run reads no row',
      ).toEqual(['note/forward read 0 +0 ~0 -0', 'note/reverse read 0 +0 ~0 -0']);
    }
  }

  private checkConverged(now: Holdings): void {
    for (const table of TABLES) {
      const differ = differences(now, table).filter(({ key }) => {
        if (this.deletes === 'mirror') return true;
        // deletes: keep: a key one side deleted stays deleted there, and the other side keeps it.
        const absent = SIDES.filter((s) => !now[s][table].has(key));
        if (absent.length !== 1) return true;
        const own = [...(this.history.events[table].get(key) ?? [])].reverse().find((e) => e.side === absent[0]);
        return own?.row !== null;
      }).map((d) => d.line);
      expect(differ, `${table}: after a quiescent full run with no conflict pending, both sides hold the same rows`).toEqual([]);
    }
  }

  /** Both sides' base rows (key, fingerprint, generation, agreed_at). */
  private async bases(): Promise<string[]> {
    const out: string[] = [];
    for (const side of SIDES) {
      const rows = await this.clients[side].query<{ r: string }>(
        `SELECT concat_ws(' ', table_name, key::text, fingerprint, generation, agreed_at) AS r FROM bisync.base ORDER BY 1`,
      );
      out.push(...rows.rows.map((r) => `${side}: ${r.r}`));
    }
    return out;
  }

  /** User tables, base and conflicts of both sides, as text (a dry run must leave them as they are). */
  private async dump(): Promise<string[]> {
    const out: string[] = [];
    for (const side of SIDES) {
      for (const rel of ['note', 'job', 'bisync.base', 'bisync.conflicts']) {
        const rows = await this.clients[side].query<{ j: string | null }>(
          `SELECT CASE WHEN to_regclass($1) IS NOT NULL THEN query_to_xml('SELECT * FROM ' || $1 || ' ORDER BY 1, 2', false, false, '')::text END AS j`,
          [rel],
        );
        out.push(`${side} ${rel}: ${rows.rows[0]?.j ?? 'none'}`);
      }
    }
    return out;
  }

  private async sync(run: Run): Promise<{ table: string; direction: string; read: number; inserted: number; updated: number; deleted: number }[]> {
    const tables: TableName[] = run.tables === 'all' ? [...TABLES] : [run.tables];
    const stepCount = (run.direction === 'both' ? 2 : 1) * tables.length;
    const before = await readHoldings(this.clients);
    const parked = await readParked(this.clients);
    const counts = new Map<string, number>();
    for (const table of TABLES) for (const key of parked[table]) counts.set(`${table} ${key}`, this.history.count(table, key));
    const dumped = run.dryRun ? await this.dump() : [];
    const flags = `${run.tables === 'all' ? '' : ` --table ${run.tables}`}${run.mode === 'full' ? ' --mode full' : ''}${run.dryRun ? ' --dry-run' : ''} (concurrency ${run.concurrency})`;
    this.trace.push(`apply ${run.direction}${flags}`);
    let calls = 0;
    let killed: string | null = null;
    // A run with nothing landing inside it and no kill needs no hook inside its steps: it runs with the
    // run-level probe (SPEC §8). A dry run of the same steps just before (nothing writes in between)
    // says what each would do: a step the probe did not run must be one that writes nothing.
    const probing = PROBE && !run.dryRun && run.during === null && run.killAt === null;
    const options = { direction: run.direction, tables, mode: run.mode, retries: 0, concurrency: run.concurrency };
    const would = probing ? await apply(this.config, { ...options, dryRun: true }) : null;
    const report = await apply(this.config, {
      ...options,
      dryRun: run.dryRun,
      ...(probing ? {} : { afterRead: async (step: { table: string; direction: string }) => {
        const index = calls++;
        if (run.dryRun) return;
        if (run.during !== null && index === run.during.at % stepCount) {
          for (const write of run.during.writes) {
            const held = await readHoldings(this.clients);
            this.trace.push(`  during ${step.table}/${step.direction}: ${await performWrite(this.clients, held[write.side][write.table], this.history, write)}`);
          }
        }
        if (run.killAt !== null && index === run.killAt % stepCount) {
          killed = `${step.table}/${step.direction}`;
          this.trace.push(`  ${killed} killed before its merge`);
          throw new Error('killed by the test before the merge');
        }
      } }),
    });
    for (const s of report.steps.filter((x) => x.notRun !== undefined)) {
      const d = would?.steps.find((x) => x.table === s.table && x.direction === s.direction);
      const writes = (x: StepResult | undefined): string => `inserted ${x?.inserted} updated ${x?.updated} deleted ${x?.deleted} conflicts ${x?.conflicts} parked ${x?.parked} rejected ${x?.rejected}`;
      this.trace.push(`  ${s.table}/${s.direction}: not run (the probe found nothing to do)`);
      expect(writes(d), `${s.table}/${s.direction} was not run (the probe found nothing to do): run at that instant it writes nothing`).toBe(writes({ ...s, inserted: 0, updated: 0, deleted: 0, conflicts: 0, parked: 0, rejected: 0 }));
    }
    const statuses = report.steps.map((s) => `${s.table}/${s.direction} ${s.status} rejected ${s.rejected}`);
    const want = report.steps.map((s) => `${s.table}/${s.direction} ${`${s.table}/${s.direction}` === killed ? 'failed' : 'succeeded'} rejected 0`);
    const errors = report.steps.filter((s) => s.error !== undefined).map((s) => `${s.table}/${s.direction}: ${s.error}`);
    expect(statuses, `apply ${run.direction}${flags}: every step but a killed one succeeds, nothing rejected; errors: ${errors.join('; ')}`).toEqual(want);
    expect(report.steps.length, 'one step per table and direction').toBe(stepCount);

    if (run.dryRun) {
      expect(await this.dump(), 'a dry run changes nothing on either side').toEqual(dumped);
      return report.steps;
    }
    const now = await readHoldings(this.clients);
    this.history.checkNothingLost(now);
    for (const table of TABLES) {
      for (const key of parked[table]) {
        if (this.history.count(table, key) !== counts.get(`${table} ${key}`)) continue;
        for (const side of SIDES) {
          expect(now[side][table].get(key) ?? null, `${side}.${table} key ${key} was parked: the run leaves it alone`).toEqual(before[side][table].get(key) ?? null);
        }
      }
    }
    // Each conflict holds both versions: after a complete read of both sides with nothing written
    // meanwhile, every parked key's versions are what the two sides hold.
    if (run.direction === 'both' && run.during === null && killed === null) {
      for (const table of tables.filter((t) => run.mode === 'full' || t === 'note')) await this.checkVersions(table, now);
    }
    return report.steps;
  }

  private async checkVersions(table: TableName, now: Holdings): Promise<void> {
    const text = table === 'note' ? 'body' : 'title';
    const status = table === 'note' ? 'tag' : 'status';
    for (const side of SIDES) {
      const rows = await this.clients[side].query<{ key: string[]; versions: Record<Side, Record<string, string | null> | null> }>(
        'SELECT key, versions FROM bisync.conflicts WHERE table_name = $1',
        [table],
      );
      for (const r of rows.rows) {
        const key = Number(r.key[0]);
        for (const db of SIDES) {
          const version = r.versions[db];
          const row = version === null || version === undefined ? null : { text: String(version[text]), status: version[status] ?? null };
          expect(sameRow(row, now[db][table].get(key)), `${table} key ${key} parked on ${side}: its ${db} version ${JSON.stringify(row)} is what ${db} holds`).toBe(true);
        }
      }
    }
  }

  /** `bisync resolve --all`: the kept side is unchanged, the other now holds the same, no conflict is left. */
  private async resolve(command: Resolve): Promise<void> {
    const { table, keep } = command;
    const parked = (await readParked(this.clients))[table];
    const before = await readHoldings(this.clients);
    const report = await resolveConflicts(this.config, table, null, keep);
    this.trace.push(`resolve --table ${table} --all --keep ${keep}: ${report.resolved.length} resolved`);
    expect(report.resolved.length, 'resolve --all resolves every pending conflict of the table').toBe(parked.size);
    const now = await readHoldings(this.clients);
    for (let key = 1; key <= 6; key++) {
      const kept = before[keep][table].get(key) ?? null;
      expect(now[keep][table].get(key) ?? null, `${keep}.${table} key ${key}: the kept side is unchanged`).toEqual(kept);
      if (!parked.has(key)) {
        expect(now[other(keep)][table].get(key) ?? null, `${table} key ${key} had no conflict: resolve leaves it alone`).toEqual(before[other(keep)][table].get(key) ?? null);
        continue;
      }
      expect(now[other(keep)][table].get(key) ?? null, `${table} key ${key}: resolve wrote the kept version`).toEqual(kept);
      // The person chose: for the model it is a write of the kept version on the other side.
      this.history.record(table, key, other(keep), kept, kept ?? before[other(keep)][table].get(key));
    }
    expect([...(await readParked(this.clients))[table]], `${table}: no conflict left after resolve --all`).toEqual([]);
    this.history.checkNothingLost(now);
  }
}
