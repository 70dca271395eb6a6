/**
 * SPEC §8 with SPEC §7: the run-level probe sums an edits: both table on each database without pairing
 * rows with the base (templates/probe-sums-three-way.sql.hbs), and the step itself sums per bucket of
 * keys (templates/bucket-checksums-three-way.sql.hbs). Both must find a database settled exactly when
 * every key is: its row and the database's copy of the base hold the same fingerprint, or it has no row
 * and the copy no live version, and no conflict is parked for it. A probe that finds settled what is
 * not skips a step with rows to carry. Checked on seeded random states of one database's rows, copy of
 * the base and conflicts, half of them one to three changes away from settled.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { planCommand } from '../../src/commands/plan.js';
import type { PlanStatement } from '../../src/compiler/plan-types.js';
import { run } from '../../src/executor/statements.js';
import { ThreeWayPair } from '../three-way/three-way-fixture.js';

const pairs: ThreeWayPair[] = [];
afterAll(async () => {
  for (const pair of pairs) await pair.drop();
});

// The merge's fingerprint of a row of job (integer and text columns: each value's own text).
const FP = `md5(convert_to(row(t.job_id, t.title, t.status)::text, 'UTF8'))`;
const PREFIX_SUM = `sum(('x' || left(${FP}, 16))::bit(64)::bigint)`;

/** Every key settled on this database, by the rule itself: one key at a time. */
const EVERY_KEY_SETTLED = `
  SELECT coalesce(bool_and(CASE WHEN c.key IS NOT NULL THEN false
                                WHEN r.key IS NOT NULL THEN b.fingerprint = r.fp IS TRUE
                                ELSE b.fingerprint IS NULL END), true) AS settled
    FROM (SELECT t.job_id::text AS key, ${FP} AS fp FROM job AS t) AS r
    FULL JOIN (SELECT key, fingerprint FROM bisync.base WHERE table_name = 'job') AS b ON b.key = r.key
    FULL JOIN (SELECT key ->> 0 AS key FROM bisync.conflicts WHERE table_name = 'job') AS c ON c.key = coalesce(r.key, b.key)`;

/**
 * A change to the desktop's rows, copy of the base or conflicts: $1 a key (1..40; 30 exist at first),
 * $2 a title or another key, as the statement's type for it says.
 */
const CHANGES: readonly string[] = [
  `UPDATE job SET title = $2::text WHERE job_id = $1`,
  `UPDATE job SET title = 'job ' || job_id, status = 'Open' WHERE job_id = $1`,
  `UPDATE job SET status = NULL WHERE job_id = $1`,
  // Two keys' titles swapped one way: the same values under another key.
  `UPDATE job AS a SET title = b.title FROM job AS b WHERE a.job_id = $1 AND b.job_id = $2::int`,
  `DELETE FROM job WHERE job_id = $1`,
  `INSERT INTO job VALUES ($1::int, 'job ' || $1::int, 'Open') ON CONFLICT DO NOTHING`,
  `DELETE FROM bisync.base WHERE table_name = 'job' AND key = $1::int::text`,
  `UPDATE bisync.base SET fingerprint = NULL WHERE table_name = 'job' AND key = $1::int::text`,
  // The copy records the row as it is now (a merge that agreed on it).
  `INSERT INTO bisync.base (table_name, key, fingerprint, generation)
   SELECT 'job', t.job_id::text, ${FP}, 1 FROM job AS t WHERE t.job_id = $1
   ON CONFLICT (table_name, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint`,
  // The copy records the key's first version, whether or not it has a row now.
  `INSERT INTO bisync.base (table_name, key, fingerprint, generation)
   SELECT 'job', $1::int::text, md5(convert_to(row($1::int, 'job ' || $1::int, 'Open'::text)::text, 'UTF8')), 1
   ON CONFLICT (table_name, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint`,
  `INSERT INTO bisync.conflicts (table_name, key, kind, versions) VALUES ('job', jsonb_build_array($1::int::text), 'update-update', '{}') ON CONFLICT DO NOTHING`,
  `DELETE FROM bisync.conflicts WHERE table_name = 'job' AND key = jsonb_build_array($1::int::text)`,
];

/** Settle every key: no conflict, the copy records each row as it is and every other key as deleted. */
const SETTLE = [
  `DELETE FROM bisync.conflicts WHERE table_name = 'job'`,
  `UPDATE bisync.base AS b SET fingerprint = NULL WHERE table_name = 'job' AND NOT EXISTS (SELECT 1 FROM job AS t WHERE t.job_id::text = b.key)`,
  `INSERT INTO bisync.base (table_name, key, fingerprint, generation) SELECT 'job', t.job_id::text, ${FP}, 1 FROM job AS t
   ON CONFLICT (table_name, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint`,
];

describe('the probe\'s sum of an edits: both table', () => {
  it('the probe\'s sum and the step\'s bucket checksums find a database settled exactly when every key is settled there, and then sum alike', async () => {
    const pair = await ThreeWayPair.create('probe_sums_rule', {});
    pairs.push(pair);
    await pair.sql('desktop', `INSERT INTO job SELECT i, 'job ' || i, 'Open' FROM generate_series(1, 30) AS i`);
    await pair.apply('both');
    await pair.apply('both');
    const plan = await planCommand(pair.config, { direction: 'forward', tables: [], mode: 'auto' });
    const step = plan.steps[0];
    const find = (list: readonly PlanStatement[] | undefined, kind: string): PlanStatement => {
      const found = list?.find((s) => s.kind === kind && s.side === 'source');
      if (found === undefined) throw new Error(`no ${kind} on the desktop`);
      return found;
    };
    const probe = find(step?.probe, 'probe-checksums');
    const buckets = find(step?.statements, 'bucket-checksums');

    const client = new pg.Client({ connectionString: pair.url('desktop') });
    await client.connect();
    try {
      // FP is the merge's fingerprint: it is what both copies of the base recorded.
      const recorded = await client.query(`SELECT count(*)::int AS n FROM job AS t JOIN bisync.base AS b ON b.table_name = 'job' AND b.key = t.job_id::text AND b.fingerprint = ${FP}`);
      expect(recorded.rows[0]?.n).toBe(30);
      let seed = 20261202;
      const draw = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        // The high bits: the low bits of this generator repeat with a short period.
        return Math.floor(seed / 65536) % n;
      };
      const titles = ['a', 'job 3', 'x,y', '(z)', '"q"', ''];
      const seen = { settled: 0, unsettled: 0 };
      for (let state = 0; state < 300; state++) {
        // Half the states start from settled, zero to two changes away; the rest pile changes up.
        const settle = draw(2) === 0;
        if (settle) for (const sql of SETTLE) await client.query(sql);
        const changes: string[] = [];
        for (let n = settle ? draw(3) : 1 + draw(3); n > 0; n--) {
          const change = draw(CHANGES.length);
          const sql = CHANGES[change] ?? '';
          const args = [1 + draw(40), sql.includes('$2::int') ? 1 + draw(40) : titles[draw(titles.length)]].slice(0, sql.includes('$2') ? 2 : 1);
          await client.query(sql, args);
          changes.push(`${change}(${args.join(',')})`);
        }
        const rule = (await client.query<{ settled: boolean }>(EVERY_KEY_SETTLED)).rows[0]?.settled === true;
        const sum = (await run<{ rows: string; digest: string | null }>(client, probe)).rows[0];
        const perBucket = (await run<{ rows: string; checksum: string }>(client, buckets)).rows;
        const table = (await client.query<{ rows: string; sum: string | null }>(`SELECT count(*)::text AS rows, ${PREFIX_SUM}::text AS sum FROM job AS t`)).rows[0];
        // The buckets hold no value naming the database exactly when they add up to the rows' own fingerprints.
        const bucketRows = perBucket.reduce((total, b) => total + BigInt(b.rows), 0n);
        const bucketSum = perBucket.reduce((total, b) => total + BigInt(b.checksum), 0n);
        const bucketsSettled = String(bucketRows) === table?.rows && String(bucketSum) === (table?.sum ?? '0');
        const probeSettled = !String(sum?.digest).startsWith('not settled on ');
        const at = `state ${state}, changes ${changes.join(' ')}`;
        expect(probeSettled, `${at}: the probe's sum`).toBe(rule);
        expect(bucketsSettled, `${at}: the step's bucket checksums`).toBe(rule);
        if (rule) expect(sum?.digest ?? '0', `${at}: the probe's sum is the buckets' total`).toBe(String(bucketSum));
        seen[rule ? 'settled' : 'unsettled']++;
      }
      // Both answers drawn often enough to mean something.
      expect(seen.settled).toBeGreaterThan(30);
      expect(seen.unsettled).toBeGreaterThan(30);
    } finally {
      await client.end();
    }
  }, 120_000);
});
