import { describe, expect, it } from 'vitest';
import { apply, envFor, query, runCli } from '../harness/bisync.js';
import { createDatabases } from '../harness/fresh-databases.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { createJobsSchema, jobsConfig, jobsConfigFile, seedDesktop } from './jobs-fixture.js';

/** The jobs slice with `deletes: mirror` on client, and the cloud's job → client key set to `action`. */
async function mirrorSlice(label: string, action: string): Promise<TestDatabases & { drop(): Promise<void> }> {
  const dbs = await createDatabases(label);
  await createJobsSchema(dbs);
  await query(dbs.cloudUrl, `ALTER TABLE job ALTER COLUMN client_id DROP NOT NULL, DROP CONSTRAINT job_client_id_fkey,
    ADD CONSTRAINT job_client_id_fkey FOREIGN KEY (client_id) REFERENCES client ON DELETE ${action}`);
  await seedDesktop(dbs, 10, 40);
  return dbs;
}

const MIRROR_CLIENTS = { clientExtra: '    deletes: mirror' };

const clientMirrorConfig = async (dbs: TestDatabases): Promise<ResolvedConfig> => await jobsConfig(dbs, MIRROR_CLIENTS);

/** The office deletes client `id` and its jobs on the desktop. */
async function officeDeletesClient(dbs: TestDatabases, id: number): Promise<void> {
  await query(dbs.desktopUrl, `DELETE FROM job WHERE client_id = $1`, [id]);
  await query(dbs.desktopUrl, `DELETE FROM client WHERE client_id = $1`, [id]);
}

const jobIds = async (dbs: TestDatabases, where: string): Promise<number[]> =>
  (await query<{ job_id: number }>(dbs.cloudUrl, `SELECT job_id FROM job WHERE ${where} ORDER BY 1`)).map((r) => r.job_id);
const clientIds = async (dbs: TestDatabases, ids: number[]): Promise<number[]> =>
  (await query<{ client_id: number }>(dbs.cloudUrl, `SELECT client_id FROM client WHERE client_id = ANY($1) ORDER BY 1`, [ids])).map((r) => r.client_id);

/**
 * The scenario with `clientExtra` on client: the office deletes clients 7 and 8, a phone job
 * (source M) references 7 on the cloud with ON DELETE CASCADE. Forward deletes 8 (only desktop-owned
 * jobs), keeps and reports 7, and deletes it once the phone's job is gone.
 */
async function phoneJobKeepsItsClient(label: string, clientExtra: string): Promise<void> {
  const dbs = await mirrorSlice(label, 'CASCADE');
  try {
    const cfg = await jobsConfig(dbs, { clientExtra });
    await apply(cfg);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (9001, 7, 'phone job', 'open', 'M')`);
    await officeDeletesClient(dbs, 7);
    await officeDeletesClient(dbs, 8);

    const report = await apply(cfg, { direction: 'forward', tables: ['client'] });

    expect(report.exitCode).toBe(0);
    // Client 8 had only desktop-owned jobs: deleted, and its jobs went with it (they are forward's).
    expect(report.steps[0]).toMatchObject({ status: 'succeeded', deleted: 1, kept: { count: 1, keys: ['{"client_id": 7}'] } });
    expect(await clientIds(dbs, [7, 8])).toEqual([7]);
    expect(await jobIds(dbs, `source = 'M'`)).toEqual([9001]);
    expect(await jobIds(dbs, 'client_id = 8')).toEqual([]);
    // Once the phone's job is gone, the next run deletes the client.
    await query(dbs.cloudUrl, `DELETE FROM job WHERE job_id = 9001`);
    const later = await apply(cfg, { direction: 'forward', tables: ['client'], allowDeletes: true });
    expect(later.steps[0]).toMatchObject({ status: 'succeeded', deleted: 1 });
    expect(later.steps[0]?.kept).toBeUndefined();
    expect(await clientIds(dbs, [7])).toEqual([]);
  } finally {
    await dbs.drop();
  }
}

describe('mirror deletes never remove or change, through foreign keys, a row the other side owns', () => {
  it('mirror deletes never cascade into rows the cloud owns: the referenced client is kept and reported, the phone job stays', async () => {
    await phoneJobKeepsItsClient('fkcascade', MIRROR_CLIENTS.clientExtra);
  });

  it('edits: both deletes never cascade into rows the other side owns: the parent is kept and reported, not refused by the guard', async () => {
    await phoneJobKeepsItsClient('fk3way', '    edits: both\n    deletes: mirror');
  });

  it('mirror deletes never set the cloud\'s rows\' keys to NULL (ON DELETE SET NULL)', async () => {
    const dbs = await mirrorSlice('fksetnull', 'SET NULL');
    try {
      const cfg = await clientMirrorConfig(dbs);
      await apply(cfg);
      await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (9002, 3, 'phone job', 'open', 'M')`);
      await officeDeletesClient(dbs, 3);

      const report = await apply(cfg, { direction: 'forward', tables: ['client'] });

      expect(report.steps[0]).toMatchObject({ status: 'succeeded', deleted: 0, kept: { count: 1 } });
      const phone = await query<{ client_id: number | null }>(dbs.cloudUrl, 'SELECT client_id FROM job WHERE job_id = 9002');
      expect(phone).toEqual([{ client_id: 3 }]);
    } finally {
      await dbs.drop();
    }
  });

  it('mirror deletes never cascade two levels down into the cloud\'s rows, nor into a table without an origin column', async () => {
    const dbs = await mirrorSlice('fktwolevel', 'CASCADE');
    try {
      await query(dbs.cloudUrl, `
        CREATE TABLE job_note (note_id integer PRIMARY KEY, job_id integer NOT NULL REFERENCES job ON DELETE CASCADE, body text, source char(1));
        CREATE TABLE job_photo (photo_id integer PRIMARY KEY, job_id integer NOT NULL REFERENCES job ON DELETE CASCADE);`);
      const cfg = await clientMirrorConfig(dbs);
      await apply(cfg);
      // Jobs 4 and 14 belong to client 5, jobs 5 and 15 to client 6, jobs 6 and 16 to client 7 (all the desktop's).
      await query(dbs.cloudUrl, `INSERT INTO job_note VALUES (1, 4, 'phone note on an office job', 'M'), (2, 6, 'office note', 'D')`);
      await query(dbs.cloudUrl, `INSERT INTO job_photo VALUES (1, 5)`);
      for (const id of [5, 6, 7]) await officeDeletesClient(dbs, id);

      const report = await apply(cfg, { direction: 'forward', tables: ['client'] });

      expect(report.steps[0]).toMatchObject({ status: 'succeeded', deleted: 1, kept: { count: 2, keys: ['{"client_id": 5}', '{"client_id": 6}'] } });
      expect(await clientIds(dbs, [5, 6, 7])).toEqual([5, 6]);
      expect(await query(dbs.cloudUrl, 'SELECT note_id FROM job_note ORDER BY 1')).toEqual([{ note_id: 1 }]);
      expect(await query(dbs.cloudUrl, 'SELECT photo_id FROM job_photo')).toEqual([{ photo_id: 1 }]);
    } finally {
      await dbs.drop();
    }
  });

  it('the guard watches every table a mirror delete can reach: a trigger that removes the cloud\'s rows there is refused (exit 4)', async () => {
    const dbs = await mirrorSlice('fkguard', 'CASCADE');
    try {
      const cfg = await clientMirrorConfig(dbs);
      await apply(cfg);
      await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (9003, 1, 'phone job', 'open', 'M')`);
      await query(dbs.cloudUrl, `
        CREATE FUNCTION clean_jobs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM public.job WHERE source = 'M'; RETURN OLD; END $$;
        CREATE TRIGGER clean_jobs BEFORE DELETE ON client FOR EACH ROW EXECUTE FUNCTION clean_jobs();`);
      await officeDeletesClient(dbs, 9);

      const report = await apply(cfg, { direction: 'forward', tables: ['client'] });

      expect(report.exitCode).toBe(4);
      expect(report.steps[0]).toMatchObject({ status: 'refused', deleted: 0 });
      expect(report.steps[0]?.error).toMatch(/public\.job, reached through a foreign key/);
      expect(await jobIds(dbs, `source = 'M'`)).toEqual([9003]);
      expect(await clientIds(dbs, [9])).toEqual([9]);
    } finally {
      await dbs.drop();
    }
  });

  it('validate --live and plan say which foreign keys and triggers a mirror delete would set off', async () => {
    const dbs = await mirrorSlice('fkvalidate', 'CASCADE');
    try {
      await query(dbs.cloudUrl, `CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$;
        CREATE TRIGGER audit_client AFTER DELETE ON client FOR EACH ROW EXECUTE FUNCTION noop();`);
      const file = jobsConfigFile(MIRROR_CLIENTS);

      const validate = await runCli(['validate', '--live', '--config', file], envFor(dbs));
      expect(validate.code).toBe(0);
      expect(validate.stderr).toMatch(/public\.job references it ON DELETE CASCADE \(job_client_id_fkey\)/);
      expect(validate.stderr).toMatch(/trigger audit_client runs on the rows forward writes and deletes/);

      const plan = await runCli(['plan', '--config', file, '--direction', 'forward', '--table', 'client'], envFor(dbs));
      expect(plan.code).toBe(0);
      expect(plan.stdout).toMatch(/-- warning: cloud public\.client: deletes: mirror: public\.job references it ON DELETE CASCADE/);
      expect(plan.stdout).toMatch(/AND NOT \(EXISTS \(SELECT 1 FROM "public"\."job" AS r1/);
    } finally {
      await dbs.drop();
    }
  });
});
