import type { Catalog } from '../compiler/catalog.js';
import { checkCatalogs, checkGrants, checkOriginMarking } from '../compiler/check-catalog.js';
import { checkSafety } from '../compiler/check-safety.js';
import type { LiveProblem } from '../compiler/check-catalog.js';
import type { StateSnapshot, XminState } from '../compiler/compile-plan.js';
import { cursorWarnings } from '../compiler/cursor-warnings.js';
import { liveWarnings } from '../compiler/live-warnings.js';
import { sessionWarnings } from '../compiler/session-warnings.js';
import type { SessionWarning } from '../compiler/session-warnings.js';
import type { Direction, ResolvedConfig } from '../config/types.js';
import { connect } from '../executor/connect.js';
import type { Databases } from '../executor/databases.js';
import { introspect } from '../executor/introspect.js';
import { openReadOnly } from '../executor/read-only.js';
import { readPendingRejects, readUntrackedBase, readWatermarks, readXminCursors } from '../executor/read-state.js';
import { together } from '../executor/statements.js';
import { checkState, complete, stateCheckStatement } from '../executor/bootstrap.js';
import type { StatePresence } from '../executor/bootstrap.js';

export interface LiveReport {
  databases: { name: string; serverVersion: number; timeZone: string }[];
  problems: LiveProblem[];
  /** The config runs, but not as it should (triggers that rewrite synced columns, missing `after`), and safety findings: row-level security, what a mirror delete would set off. */
  warnings: LiveProblem[];
  /** What bisync's role cannot see, so the sync is less safe (e.g. the late-commit clamp without pg_read_all_stats). */
  roleWarnings: SessionWarning[];
}

/**
 * Read both catalogs and the watermarks each database holds for the steps that write to it, in
 * READ ONLY transactions pinned as `readOnly` pins them: nothing is written, not even the state schema.
 */
export async function readCatalogs(
  config: ResolvedConfig,
  dbs?: Databases,
): Promise<{
  catalogs: Record<string, Catalog>;
  state: StateSnapshot;
  /** When each step last committed (its state row's updated_at), keyed by stepKey. */
  stateVersions: Record<string, string | null>;
  xmin: XminState;
  pendingRejects: Record<string, number>;
  untrackedBase: string[];
  /** Databases whose state schema holds every table and column this bisync uses (checked as bootstrap checks it). */
  stateReady: Record<string, boolean>;
}> {
  const catalogs: Record<string, Catalog> = {};
  let state: StateSnapshot = {};
  const stateVersions: Record<string, string | null> = {};
  let pendingRejects: Record<string, number> = {};
  const untrackedBase: string[] = [];
  let xmin: XminState = {};
  // Both databases at once, and on each the reads sent together (a pipelined connection carries
  // each group in one round trip; databases.ts): over a WAN every round trip counts (SPEC §8). Two
  // round trips a database: the transaction's opening, the catalog and the state check; then the
  // state the check found this role's own, with the COMMIT.
  const settled = await Promise.allSettled(
    Object.values(config.databases).map(async (db) => {
      const client = dbs === undefined ? await connect(db) : await dbs.client(db.name);
      try {
        const writtenBy: Direction = db.name === config.forward.to ? 'forward' : 'reverse';
        const versions: Record<string, string | null> = {};
        // xmin steps, and timestamp-cursor steps (their late-commit check), saved a read snapshot.
        const cursors = config.tables.some((t) => t.xmin.length > 0 || Object.keys(t.timestamps).length > 0);
        try {
          const [, , , , catalog, presence] = await together<[unknown, unknown, void, unknown, Catalog, StatePresence]>(client, [
            ...openReadOnly(client),
            // Reading the catalog can wait behind another session's lock on a synced table: not forever.
            async () => await client.query("SELECT pg_catalog.set_config('lock_timeout', $1, true)", [catalogLockTimeout(config)]),
            async () => await introspect(client, config, db.name),
            async () => await checkState(client, stateCheckStatement(config.stateSchema), db.name),
          ]);
          const [marks, rejects, untracked, saved] = await together<[StateSnapshot, Record<string, number>, string[], XminState, unknown]>(client, [
            async () => await readWatermarks(client, config.stateSchema, writtenBy, presence, versions),
            async () => await readPendingRejects(client, config.stateSchema, writtenBy, presence),
            async () => await readUntrackedBase(client, config.stateSchema, writtenBy, presence),
            async () => (cursors ? await readXminCursors(client, config.stateSchema, writtenBy, presence) : {}),
            async () => await client.query('COMMIT'),
          ]);
          return { name: db.name, catalog, marks, versions, rejects, untracked, saved, ready: complete(presence) };
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
      } finally {
        if (dbs === undefined) await client.end();
        else await dbs.release(client);
      }
    }),
  );
  // An error of the first database in the config first, as when they were read one after the other.
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  const read = settled.map((r) => (r as PromiseFulfilledResult<Exclude<(typeof settled)[number], PromiseRejectedResult>['value']>).value);
  for (const r of read) {
    catalogs[r.name] = r.catalog;
    state = { ...state, ...r.marks };
    Object.assign(stateVersions, r.versions);
    pendingRejects = { ...pendingRejects, ...r.rejects };
    untrackedBase.push(...r.untracked);
    xmin = { ...xmin, ...r.saved };
  }
  return { catalogs, state, stateVersions, xmin, pendingRejects, untrackedBase, stateReady: Object.fromEntries(read.map((r) => [r.name, r.ready])) };
}

/** The longest lock_timeout any table sets (0, waiting forever, when one does), for the catalog read. */
function catalogLockTimeout(config: ResolvedConfig): string {
  const seconds = config.tables.map((t) => t.lockTimeoutSeconds);
  return seconds.includes(0) ? '0' : `${Math.round(Math.max(30, ...seconds) * 1000)}ms`;
}

/** `bisync validate --live`: every mismatch between the config and both databases. */
export async function validateLive(config: ResolvedConfig): Promise<LiveReport> {
  const { catalogs } = await readCatalogs(config);
  return {
    databases: Object.values(catalogs).map((c) => ({ name: c.database, serverVersion: c.serverVersion, timeZone: c.timeZone })),
    problems: [...checkCatalogs(config, catalogs), ...checkGrants(config, catalogs)],
    warnings: [...liveWarnings(config, catalogs), ...checkOriginMarking(config, catalogs), ...checkSafety(config, catalogs).warnings, ...cursorWarnings(config, catalogs)],
    roleWarnings: sessionWarnings(config, catalogs),
  };
}
