import { apply, configHead, query, testConfig, writeConfig } from '../harness/bisync.js';
import { createDatabases, withClient } from '../harness/fresh-databases.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import type { ApplyReport } from '../../src/commands/apply.js';

export interface PairOptions {
  /** Cursor columns (updated_at) on both sides, so steps after the first read incrementally. */
  cursors?: boolean;
  deletes?: 'keep' | 'mirror';
  conflicts?: string;
  maxDeleteFraction?: number;
  /** With `cursors`: the desktop is read by row xmin (`timestamps: { desktop: xmin }`), the cloud by updated_at. */
  desktopXmin?: boolean;
  /** The cloud's type of `title` (text, as on the desktop, unless given). */
  cloudTitleType?: string;
}

export type Job = { job_id: number; title: string; status: string | null };

/**
 * `touch()`: stamps an edit with the clock unless the writer sets updated_at itself (as bisync does,
 * carrying the other side's). Tables take it with `CREATE TRIGGER touch BEFORE UPDATE … EXECUTE FUNCTION touch()`.
 */
export const TOUCH_FUNCTION = `CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN NEW.updated_at := clock_timestamp(); END IF; RETURN NEW; END $$;`;

/**
 * The config of one table `job` synced both ways with edits: both, as most three-way tests sync it.
 * `extra` is appended to the table's entry (e.g. a timestamps line).
 */
export function jobBothWaysYaml(
  options: { primaryKey?: string; deletes?: string; conflicts?: string; maxDeleteFraction?: number; extra?: string } = {},
): string {
  const fraction = options.maxDeleteFraction === undefined ? '' : `\n    max_delete_fraction: ${options.maxDeleteFraction}`;
  return `
${configHead()}tables:
  - name: job
    primary_key: [${options.primaryKey ?? 'job_id'}]
    direction: both
    origin: { column: source, forward: D, reverse: M }
    edits: both
    deletes: ${options.deletes ?? 'mirror'}
    conflicts: ${options.conflicts ?? 'park'}${fraction}${options.extra ?? ''}
`;
}

/**
 * A pair of fresh databases with one table `job` synced both ways with edits: both. The cloud has
 * the origin column `source`; with `cursors`, both sides have `updated_at` kept by a trigger.
 */
export class ThreeWayPair {
  private constructor(
    readonly dbs: TestDatabases & { drop(): Promise<void> },
    readonly config: ResolvedConfig,
    readonly options: PairOptions,
  ) {}

  static async create(label: string, options: PairOptions = {}): Promise<ThreeWayPair> {
    const dbs = await createDatabases(label);
    const cursor = options.cursors === true ? ', updated_at timestamptz NOT NULL DEFAULT clock_timestamp()' : '';
    const trigger =
      options.cursors === true
        ? `${TOUCH_FUNCTION}
           CREATE TRIGGER touch BEFORE UPDATE ON job FOR EACH ROW EXECUTE FUNCTION touch();`
        : '';
    await withClient(dbs.desktopUrl, async (c) => {
      await c.query(`CREATE TABLE job (job_id integer PRIMARY KEY, title text NOT NULL, status text${cursor}); ${trigger}`);
    });
    await withClient(dbs.cloudUrl, async (c) => {
      await c.query(`CREATE TABLE job (job_id integer PRIMARY KEY, title ${options.cloudTitleType ?? 'text'} NOT NULL, status text, source char(1)${cursor}); ${trigger}`);
    });
    const desktopCursor = options.desktopXmin === true ? 'xmin' : '[updated_at]';
    const timestamps = options.cursors === true ? `\n    timestamps: { desktop: ${desktopCursor}, cloud: [updated_at] }` : '';
    const file = writeConfig(
      jobBothWaysYaml({
        deletes: options.deletes ?? 'mirror',
        conflicts: options.conflicts ?? 'park',
        maxDeleteFraction: options.maxDeleteFraction ?? 1,
        extra: timestamps,
      }),
    );
    return new ThreeWayPair(dbs, await testConfig(file, dbs), options);
  }

  url(side: 'desktop' | 'cloud'): string {
    return side === 'desktop' ? this.dbs.desktopUrl : this.dbs.cloudUrl;
  }

  async sql(side: 'desktop' | 'cloud', text: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
    return await query(this.url(side), text, params);
  }

  async job(side: 'desktop' | 'cloud', id: number): Promise<Job | undefined> {
    return (await query<Job>(this.url(side), 'SELECT job_id, title, status FROM job WHERE job_id = $1', [id]))[0];
  }

  async jobs(side: 'desktop' | 'cloud'): Promise<Job[]> {
    return await query<Job>(this.url(side), 'SELECT job_id, title, status FROM job ORDER BY job_id');
  }

  async conflicts(side: 'desktop' | 'cloud'): Promise<{ key: unknown; kind: string; versions: Record<string, unknown> }[]> {
    return await query(this.url(side), 'SELECT key, kind, versions FROM bisync.conflicts ORDER BY key');
  }

  /** The conflict parked for job `id` on one side's conflicts table, if any. */
  async conflict(side: 'desktop' | 'cloud', id: number): Promise<{ kind: string; versions: Record<string, unknown> } | undefined> {
    return (await query<{ kind: string; versions: Record<string, unknown> }>(
      this.url(side),
      "SELECT kind, versions FROM bisync.conflicts WHERE table_name = 'job' AND key = jsonb_build_array($1::text)",
      [id],
    ))[0];
  }

  async apply(direction: 'forward' | 'reverse' | 'both' = 'both', extra: { mode?: 'auto' | 'full'; allowDeletes?: boolean; probe?: boolean } = {}): Promise<ApplyReport> {
    const report = await apply(this.config, { direction, mode: extra.mode ?? 'auto', allowDeletes: extra.allowDeletes ?? false, ...(extra.probe === undefined ? {} : { probe: extra.probe }) });
    const failed = report.steps.filter((s) => s.status !== 'succeeded');
    if (failed.length > 0) {
      // Surface SQL errors in the test output rather than as a bare exit code.
      for (const f of failed) if (f.status === 'failed') throw new Error(`${f.table} ${f.direction}: ${f.error ?? f.status}`);
    }
    return report;
  }

  /** Both sides hold the same rows, and have agreed on them: one run each way from a common state. */
  async agreed(rows: readonly [number, string, string | null][]): Promise<void> {
    for (const [id, title, status] of rows) await this.sql('desktop', 'INSERT INTO job (job_id, title, status) VALUES ($1, $2, $3)', [id, title, status]);
    await this.apply('both');
  }

  async drop(): Promise<void> {
    await this.dbs.drop();
  }
}
