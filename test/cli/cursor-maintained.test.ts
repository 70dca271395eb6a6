import { describe, expect, it } from 'vitest';
import { envFor, query, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile } from '../executor/jobs-fixture.js';

describe('cursor columns an edit may not move', () => {
  const dbs = useFreshDatabases('cursormaint');

  it('validate --live warns about a cursor column no trigger sets on update, and not about one a trigger maintains', async () => {
    await createJobsSchema(dbs);
    await query(
      dbs.cloudUrl,
      `CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
       CREATE TRIGGER touch BEFORE UPDATE ON client FOR EACH ROW EXECUTE FUNCTION touch();`,
    );

    const result = await runCli(['validate', '--live', '--config', jobsConfigFile()], envFor(dbs));

    expect(result.code).toBe(0);
    expect(result.stderr).toContain(
      'table "job" on cloud (public.job): no trigger sets cursor columns updated_at, created_at on update: an edit that does not set them is never read by an incremental run',
    );
    expect(result.stderr).not.toMatch(/table "client" on cloud \(public\.client\): .*cursor column/);
  });
});
