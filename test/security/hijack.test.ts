import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderSql } from '../../src/compiler/render-sql.js';
import { configHead, envFor, query, runCli, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';

/**
 * An unprivileged role ("intruder") that can create objects where PostgreSQL 13/14 lets every role
 * (CREATE on public; granted explicitly here, since PostgreSQL 15 revoked it by default) or where a
 * careless grant does (CREATE on the database). bisync connects as a superuser, the worst case.
 */
function intruderSetup(): {
  role: string;
  url: (adminUrl: string) => string;
  isSuperuser: (adminUrl: string) => Promise<boolean>;
  drop: (adminUrls: string[]) => Promise<void>;
} {
  const role = `intruder_${randomBytes(4).toString('hex')}`;
  return {
    role,
    url: (adminUrl) => {
      const u = new URL(adminUrl);
      u.username = role;
      u.password = 'intruder-pw';
      return u.toString();
    },
    isSuperuser: async (adminUrl) => (await query<{ rolsuper: boolean }>(adminUrl, 'SELECT rolsuper FROM pg_roles WHERE rolname = $1', [role]))[0]?.rolsuper === true,
    // Roles outlive the test databases: remove what it owns and was granted, then the role.
    drop: async (adminUrls) => {
      for (const url of adminUrls) await query(url, `DROP OWNED BY ${role} CASCADE`);
      await query(adminUrls[0] ?? '', `DROP ROLE ${role}`);
    },
  };
}

const CONFIG = `
${configHead()}tables:
  - name: t
    primary_key: [id]
    direction: forward
`;

async function createTables(dbs: { desktopUrl: string; cloudUrl: string }): Promise<void> {
  await query(dbs.desktopUrl, `CREATE TABLE t (id integer PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'ok'), (2, 'bad')`);
  // The cloud refuses 'bad': row 2 takes the reject path.
  await query(dbs.cloudUrl, `CREATE TABLE t (id integer PRIMARY KEY, v text CHECK (v <> 'bad'))`);
}

async function createIntruder(adminUrls: string[], role: string, grants: string[]): Promise<void> {
  await query(adminUrls[0] ?? '', `CREATE ROLE ${role} LOGIN NOSUPERUSER PASSWORD 'intruder-pw'`);
  for (const url of adminUrls) for (const grant of grants) await query(url, grant.replace(/ROLE/g, role).replace(/DB/g, `"${new URL(url).pathname.slice(1)}"`));
}

describe('search_path hijacks (CVE-2018-1058 class): objects another role put in public never run in bisync statements', () => {
  const dbs = useFreshDatabases('hijack');
  const intruder = intruderSetup();

  beforeAll(async () => {
    await createTables(dbs);
    await createIntruder([dbs.desktopUrl, dbs.cloudUrl], intruder.role, ['GRANT CREATE ON SCHEMA public TO ROLE']);
  });
  afterAll(async () => {
    await intruder.drop([dbs.desktopUrl, dbs.cloudUrl]);
  });

  it('a public.jsonb_build_object(text, text) planted by another role does not run in the reject path (no escalation to superuser)', async () => {
    await query(
      intruder.url(dbs.cloudUrl),
      `CREATE FUNCTION public.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE plpgsql AS $$
       BEGIN EXECUTE 'ALTER ROLE ${intruder.role} SUPERUSER'; RETURN pg_catalog.jsonb_build_object($1, $2); END $$`,
    );
    const result = await runCli(['apply', '--config', writeConfig(CONFIG), '--log-level', 'error'], envFor(dbs));
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(await intruder.isSuperuser(dbs.cloudUrl)).toBe(false);
    const rejects = await query<{ key: unknown; reason: string }>(dbs.cloudUrl, 'SELECT key, reason FROM bisync.rejects');
    expect(rejects).toEqual([{ key: { id: '2' }, reason: 'error' }]);
    expect(await query(dbs.cloudUrl, 'SELECT id, v FROM t')).toEqual([{ id: 1, v: 'ok' }]);
  });

  it('a public.array_to_json(name[]) planted by another role does not run in validate --live, plan, status, verify or init', async () => {
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      await query(
        intruder.url(url),
        `CREATE FUNCTION public.array_to_json(name[]) RETURNS json LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'hijacked: ran as %', current_user; END $$`,
      );
    }
    const file = writeConfig(CONFIG);
    const out = join(mkdtempSync(join(tmpdir(), 'bisync-init-')), 'init.yaml');
    const runs = [
      await runCli(['validate', '--live', '--config', file], envFor(dbs)),
      await runCli(['plan', '--config', file], envFor(dbs)),
      await runCli(['status', '--config', file], envFor(dbs)),
      await runCli(['verify', '--config', file], envFor(dbs)),
      await runCli(['init', '--desktop', dbs.desktopUrl, '--cloud', dbs.cloudUrl, '--out', out], envFor(dbs)),
    ];
    for (const r of runs) {
      expect(`${r.stdout}${r.stderr}`).not.toMatch(/hijacked/);
      expect(r.code).toBeLessThan(2); // verify reports row 2 as drift (exit 1); everything else succeeds
    }
  });
});

describe('a state schema another role created before the first run is refused (exit 2), never used', () => {
  const dbs = useFreshDatabases('prestate');
  const intruder = intruderSetup();

  beforeAll(async () => {
    await createTables(dbs);
    await createIntruder([dbs.desktopUrl, dbs.cloudUrl], intruder.role, ['GRANT CREATE ON DATABASE DB TO ROLE']);
  });
  afterAll(async () => {
    await intruder.drop([dbs.desktopUrl, dbs.cloudUrl]);
  });
  beforeAll(async () => {
    // The intruder prepares bisync's schema exactly as bisync would, plus a trigger that escalates.
    const { sql } = renderSql('bootstrap', { schema: 'bisync' });
    await query(intruder.url(dbs.cloudUrl), sql);
    await query(
      intruder.url(dbs.cloudUrl),
      `CREATE FUNCTION bisync.on_run() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN EXECUTE 'ALTER ROLE ${intruder.role} SUPERUSER'; RETURN NEW; END $$;
       CREATE TRIGGER on_run BEFORE INSERT ON bisync.runs FOR EACH ROW EXECUTE FUNCTION bisync.on_run();
       CREATE TRIGGER on_reject BEFORE INSERT ON bisync.rejects FOR EACH ROW EXECUTE FUNCTION bisync.on_run();`,
    );
  });

  it('apply exits 2 naming the owner and the triggers, writes nothing, and the intruder stays unprivileged', async () => {
    const result = await runCli(['apply', '--config', writeConfig(CONFIG), '--log-level', 'error'], envFor(dbs));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`schema "bisync" is owned by role "${intruder.role}"`);
    expect(result.stderr).toContain(`bisync.state is owned by role "${intruder.role}"`);
    expect(result.stderr).toContain('bisync.runs has 1 trigger');
    expect(result.stderr).toContain('bisync.rejects has 1 trigger');
    expect(await intruder.isSuperuser(dbs.cloudUrl)).toBe(false);
    expect(await query(dbs.cloudUrl, 'SELECT id FROM t')).toEqual([]);
    expect(await query(dbs.cloudUrl, 'SELECT * FROM bisync.runs')).toEqual([]);
  });

  it('plan, status and apply --dry-run refuse it too (its watermarks are not read)', async () => {
    const file = writeConfig(CONFIG);
    for (const args of [['plan'], ['status'], ['apply', '--dry-run']]) {
      const result = await runCli([...args, '--config', file, '--log-level', 'error'], envFor(dbs));
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toContain(`schema "bisync" is owned by role "${intruder.role}"`);
    }
    expect(await intruder.isSuperuser(dbs.cloudUrl)).toBe(false);
  });
});

describe('a session search_path that puts another role\'s schema before pg_catalog: none of its functions runs in a step', () => {
  const dbs = useFreshDatabases('pathfirst');
  const intruder = intruderSetup();

  beforeAll(async () => {
    await createTables(dbs);
    await createIntruder([dbs.desktopUrl, dbs.cloudUrl], intruder.role, ['GRANT CREATE ON DATABASE DB TO ROLE']);
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      // The intruder's schema holds a set_config with pg_catalog's exact signature, and the database's
      // default search_path (set by its owner, or by a role allowed to alter bisync's role) lists it first.
      await query(
        intruder.url(url),
        `CREATE SCHEMA intruder_tools;
         CREATE FUNCTION intruder_tools.set_config(text, text, boolean) RETURNS text LANGUAGE plpgsql AS $$
         BEGIN EXECUTE 'ALTER ROLE ${intruder.role} SUPERUSER'; RETURN pg_catalog.set_config($1, $2, $3); END $$`,
      );
      await query(url, `ALTER DATABASE "${new URL(url).pathname.slice(1)}" SET search_path = intruder_tools, pg_catalog, public`);
    }
  });
  afterAll(async () => {
    await intruder.drop([dbs.desktopUrl, dbs.cloudUrl]);
  });

  it('no function another role created runs in a step, even where the session search_path lists its schema before pg_catalog', async () => {
    const result = await runCli(['apply', '--config', writeConfig(CONFIG), '--log-level', 'error'], envFor(dbs));
    expect(await intruder.isSuperuser(dbs.cloudUrl)).toBe(false);
    expect(result.code).toBe(0);
    expect(await query(dbs.cloudUrl, 'SELECT id, v FROM t')).toEqual([{ id: 1, v: 'ok' }]);
    const file = writeConfig(CONFIG);
    for (const args of [['validate', '--live'], ['plan'], ['status'], ['verify'], ['rejects'], ['conflicts'], ['apply', '--dry-run']]) {
      const r = await runCli([...args, '--config', file, '--log-level', 'error'], envFor(dbs));
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBeLessThan(2); // verify reports row 2 as drift, rejects lists it (exit 1)
    }
    expect(await intruder.isSuperuser(dbs.cloudUrl)).toBe(false);
    expect(await intruder.isSuperuser(dbs.desktopUrl)).toBe(false);
  });
});
