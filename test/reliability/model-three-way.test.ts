import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, it } from 'vitest';
import type { ResolvedConfig } from '../../src/config/types.js';
import { configHead, testConfig, writeConfig } from '../harness/bisync.js';
import { setDatabaseDefaults, useFreshDatabases, withClient } from '../harness/fresh-databases.js';
import { TOUCH_FUNCTION } from '../three-way/three-way-fixture.js';
import type { Command } from './three-way-commands.js';
import { commandsArb } from './three-way-commands.js';
import type { Side } from './three-way-history.js';
import { ThreeWayRunner } from './three-way-runner.js';

/**
 * Issue 10: the model-based property test for `edits: both` (SPEC §7) against real PostgreSQL.
 * Random inserts, updates and deletes on both sides (the same key on both, often), runs in random
 * directions, tables and modes, with writes landing between a step's read and its merge, steps
 * killed after their read (so one database committed and the other did not), dry runs, and
 * `bisync resolve`. Checked after every command:
 * - no write is lost and no delete undone: each side holds its own last write to a key, or a later
 *   write from the other side (a conflict parks with each side keeping its own);
 * - a parked key is left alone by runs, and its conflict holds both sides' versions;
 * - after a quiescent `apply --mode full` with no conflict pending both sides hold the same rows
 *   (deletes: keep: but for keys one side deleted), and another full run writes nothing, base included;
 * - a dry run changes nothing.
 * Table `note` has no cursor columns (always read in full), `job` has updated_at on both sides.
 * The servers run in different time zones with DateStyle 'SQL, DMY': fingerprints must not care.
 *
 * Each scenario draws whether full reads of `note` (no cursor columns) compare by checksum first
 * (SPEC §8) or read every row (`compare: full`); on the checksum path a quiescent settle is followed by
 * a no-change run that must read no row of `note` (deletes: mirror: both copies of the base agree).
 *
 * Knobs: BISYNC_PROPERTY_SEED, BISYNC_THREE_WAY_RUNS (in total, shared by the variants),
 * BISYNC_PROPERTY_COMMANDS (mean commands per scenario), BISYNC_PROPERTY_PATH to replay a failure,
 * BISYNC_PROPERTY_COMPARE=checksum|full to force one compare path, BISYNC_PROPERTY_SHRINK=0 to stop at
 * the first failure. A run with nothing landing inside it and no kill runs with the run-level probe
 * (SPEC §8): a step it skips must write nothing when run at that instant (a dry run just before says
 * so). BISYNC_PROPERTY_PROBE=0 probes no run; BISYNC_PROPERTY_PROBE=every adds such a probed run
 * before every run that is not probed.
 */

const envInt = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${raw}`);
  return value;
};

const SEED = envInt('BISYNC_PROPERTY_SEED', 102026);
const RUNS = envInt('BISYNC_THREE_WAY_RUNS', 12);
const COMMANDS = Math.max(2, envInt('BISYNC_PROPERTY_COMMANDS', 12));
const PATH = process.env.BISYNC_PROPERTY_PATH ?? '';
const VARIANTS = ['mirror', 'keep'] as const;
const COMPARE = process.env.BISYNC_PROPERTY_COMPARE;
if (COMPARE !== undefined && COMPARE !== '' && COMPARE !== 'checksum' && COMPARE !== 'full') throw new Error(`BISYNC_PROPERTY_COMPARE must be checksum or full, got ${COMPARE}`);
const COMPARES = ['checksum', 'full'] as const;
type Compare = (typeof COMPARES)[number];
const compareArb: fc.Arbitrary<Compare> = COMPARE === 'checksum' || COMPARE === 'full' ? fc.constant(COMPARE) : fc.constantFrom(...COMPARES);
const RUNS_PER_VARIANT = Math.max(1, Math.ceil(RUNS / VARIANTS.length));

const SCHEMA = (cloud: boolean): string => `
  CREATE TABLE note (note_id integer PRIMARY KEY, body text NOT NULL, tag text${cloud ? ', source char(1)' : ''});
  CREATE TABLE job (job_id integer PRIMARY KEY, title text NOT NULL, status text${cloud ? ', source char(1)' : ''},
                    updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
  ${TOUCH_FUNCTION}
  CREATE TRIGGER touch BEFORE UPDATE ON job FOR EACH ROW EXECUTE FUNCTION touch();`;

const configYaml = (deletes: string, compare: Compare): string => `
${configHead()}defaults:
  compare: ${compare}
  direction: both
  origin: { column: source, forward: D, reverse: M }
  edits: both
  conflicts: park
  deletes: ${deletes}
  max_delete_fraction: 1
  lookback: 0s
tables:
  - name: note
    primary_key: [note_id]
  - name: job
    primary_key: [job_id]
    timestamps: { desktop: [updated_at], cloud: [updated_at] }
`;

describe('model-based: random edits on both sides, runs, kills and resolves never lose a write (edits: both)', () => {
  const dbs = useFreshDatabases('model3');
  const clients: Partial<Record<Side, pg.Client>> = {};
  const configs = new Map<string, ResolvedConfig>();

  beforeAll(async () => {
    await setDatabaseDefaults(dbs.desktopUrl, { TimeZone: 'Asia/Kolkata', DateStyle: 'SQL, DMY' });
    await setDatabaseDefaults(dbs.cloudUrl, { TimeZone: 'America/New_York', DateStyle: 'SQL, DMY' });
    await withClient(dbs.desktopUrl, async (c) => await c.query(SCHEMA(false)));
    await withClient(dbs.cloudUrl, async (c) => await c.query(SCHEMA(true)));
    for (const deletes of VARIANTS) {
      for (const compare of COMPARES) configs.set(`${deletes}/${compare}`, await testConfig(writeConfig(configYaml(deletes, compare)), dbs));
    }
    clients.desktop = new pg.Client({ connectionString: dbs.desktopUrl });
    clients.cloud = new pg.Client({ connectionString: dbs.cloudUrl });
    await clients.desktop.connect();
    await clients.cloud.connect();
  });

  afterAll(async () => {
    await clients.desktop?.end();
    await clients.cloud?.end();
  });

  const runScenario = async (deletes: (typeof VARIANTS)[number], commands: Command[], compare: Compare): Promise<void> => {
    const { desktop, cloud } = clients;
    const config = configs.get(`${deletes}/${compare}`);
    if (desktop === undefined || cloud === undefined || config === undefined) throw new Error('not set up');
    for (const client of [desktop, cloud]) {
      await client.query('DELETE FROM note; DELETE FROM job');
      const state = await client.query<{ ok: boolean }>(`SELECT to_regclass('bisync.base') IS NOT NULL AS ok`);
      if (state.rows[0]?.ok === true) {
        await client.query('DELETE FROM bisync.state; DELETE FROM bisync.runs; DELETE FROM bisync.rejects; DELETE FROM bisync.base; DELETE FROM bisync.conflicts');
      }
    }
    const runner = new ThreeWayRunner({ desktop, cloud }, config, deletes, compare);
    try {
      for (const command of commands) await runner.execute(command);
      await runner.settle(true);
    } catch (error) {
      if (error instanceof Error) error.message += `\n\ndeletes: ${deletes}; compare: ${compare}; what ran:\n${runner.trace.join('\n')}`;
      throw error;
    }
  };

  for (const [index, deletes] of VARIANTS.entries()) {
    const name = `deletes: ${deletes}, conflicts: park`;
    it(
      name,
      async () => {
        const details = await fc.check(
          fc.asyncProperty(commandsArb(COMMANDS), compareArb, async (commands, compare) => await runScenario(deletes, commands, compare)),
          { seed: SEED + index, numRuns: RUNS_PER_VARIANT, endOnFailure: process.env.BISYNC_PROPERTY_SHRINK === '0', ...(PATH === '' ? {} : { path: PATH, endOnFailure: true }) },
        );
        if (details.failed) {
          const replay =
            `replay: BISYNC_PROPERTY_SEED=${SEED} BISYNC_PROPERTY_PATH=${details.counterexamplePath ?? ''} ` +
            `npx vitest run test/reliability/model-three-way.test.ts -t '${name}'`;
          throw new Error(`${fc.defaultReportMessage(details) ?? 'property failed'}\n\n${replay}`, { cause: details.errorInstance });
        }
      },
      30 * 60_000,
    );
  }
});
