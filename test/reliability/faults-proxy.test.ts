import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResolvedConfig } from '../../src/config/types.js';
import { isTransient } from '../../src/executor/transient.js';
import { apply, query, runCli, testConfig } from '../harness/bisync.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { waitForNoBisyncSessions } from './kill-sessions.js';
import type { Direction, TargetSnapshot } from './proxy-fixture.js';
import { expectedRejectKeys, jobsConfigFile, makeWork, ownedRows, seedJobs, snapshotTarget } from './proxy-fixture.js';
import type { Fault } from './proxy-pg.js';
import { FaultProxy } from './proxy-pg.js';

/**
 * Issue 7, fault injection: the connections of one step are cut at chosen points of the wire
 * protocol by a proxy between bisync and PostgreSQL. Whatever the point, the step's target holds
 * its data, state and rejects exactly as before the step or exactly as after it, never in between;
 * the advisory lock goes with the connection; and a rerun converges, nothing lost or duplicated.
 */

/**
 * The step's transaction on T is the one that takes the step lock (the bootstrap transaction before it
 * also begins READ COMMITTED, and commits); the read on F begins as below (after a comment).
 */
const TARGET_STEP = /FOR UPDATE NOWAIT$/;
const SOURCE_BEGIN = /^(--[^\n]*\n)*BEGIN ISOLATION LEVEL REPEATABLE READ/;

const dbs = useFreshDatabases('faultsproxy');
let desktopProxy: FaultProxy;
let cloudProxy: FaultProxy;
let proxied: TestDatabases;
let file: string;
let config: ResolvedConfig;

beforeAll(async () => {
  desktopProxy = await FaultProxy.start(dbs.desktopUrl);
  cloudProxy = await FaultProxy.start(dbs.cloudUrl);
  proxied = { desktopUrl: desktopProxy.url(dbs.desktopUrl), cloudUrl: cloudProxy.url(dbs.cloudUrl) };
  await seedJobs(dbs, 2000);
  file = jobsConfigFile();
  config = await testConfig(file, proxied);
  const first = await apply(config, { retries: 0 });
  expect(first.steps.map((s) => `${s.table} ${s.direction} ${s.status}`)).toEqual([
    'client forward succeeded',
    'job forward succeeded',
    'client reverse succeeded',
    'job reverse succeeded',
  ]);
});

afterAll(async () => {
  await desktopProxy?.stop();
  await cloudProxy?.stop();
});

const proxyOf = (direction: Direction, side: 'source' | 'target'): FaultProxy =>
  (direction === 'forward') === (side === 'source') ? desktopProxy : cloudProxy;

const envProxied = (): NodeJS.ProcessEnv => ({ ...process.env, DESKTOP_DATABASE_URL: proxied.desktopUrl, CLOUD_DATABASE_URL: proxied.cloudUrl });

/** After a fault: no bisync session left on either side (the lock goes with the target's). */
async function sessionsGone(): Promise<void> {
  await waitForNoBisyncSessions(dbs.desktopUrl);
  await waitForNoBisyncSessions(dbs.cloudUrl);
}

/** A clean run of the step (not 'locked': the faulted run's lock is gone), then convergence checks. */
async function rerunAndConverge(direction: Direction): Promise<{ after: TargetSnapshot; inserted: number; updated: number }> {
  const rerun = await apply(config, { direction, tables: ['job'], retries: 0 });
  expect(rerun.steps[0]?.error).toBeUndefined();
  expect(rerun.steps[0]?.status).toBe('succeeded');
  const owned = await ownedRows(dbs, direction);
  expect(owned.target).toEqual(owned.source);
  expect(owned.rejectKeys).toEqual(expectedRejectKeys(direction));
  return { after: await snapshotTarget(dbs, direction), inserted: rerun.steps[0]?.inserted ?? -1, updated: rerun.steps[0]?.updated ?? -1 };
}

interface CutCase {
  name: string;
  direction: Direction;
  side: 'source' | 'target';
  fault: Fault;
  /** Where T must be after the faulted run: the commit never reached the server, or it did. */
  lands: 'before' | 'after';
}

const cases: CutCase[] = [
  {
    name: 'the COPY out of the source, mid-stream (server CopyData #120)',
    direction: 'reverse',
    side: 'source',
    fault: { trigger: { kind: 'copy-out' }, nth: 120, watchFrom: SOURCE_BEGIN },
    lands: 'before',
  },
  {
    name: 'the COPY out of the source, mid-stream (server CopyData #1500)',
    direction: 'forward',
    side: 'source',
    fault: { trigger: { kind: 'copy-out' }, nth: 1500, watchFrom: SOURCE_BEGIN },
    lands: 'before',
  },
  {
    name: 'the end of the COPY into the target (its CopyDone never arrives)',
    direction: 'reverse',
    side: 'target',
    fault: { trigger: { kind: 'message', from: 'client', type: 'c' }, watchFrom: TARGET_STEP },
    lands: 'before',
  },
  {
    name: 'the end of the COPY into the target (its CopyDone never arrives)',
    direction: 'forward',
    side: 'target',
    fault: { trigger: { kind: 'message', from: 'client', type: 'c' }, watchFrom: TARGET_STEP },
    lands: 'before',
  },
  {
    name: 'the merge, first statement',
    direction: 'reverse',
    side: 'target',
    fault: { trigger: { kind: 'sql', match: /WITH src AS/ }, watchFrom: TARGET_STEP },
    lands: 'before',
  },
  {
    name: 'the merge, while bisecting down to the reject (merge #4)',
    direction: 'forward',
    side: 'target',
    fault: { trigger: { kind: 'sql', match: /WITH src AS/ }, nth: 4, watchFrom: TARGET_STEP },
    lands: 'before',
  },
  {
    name: 'save-state (watermark upsert)',
    direction: 'reverse',
    side: 'target',
    fault: { trigger: { kind: 'sql', match: /INSERT INTO "?bisync"?\.state AS st/ }, watchFrom: TARGET_STEP },
    lands: 'before',
  },
  {
    name: 'COMMIT, before it reaches the target',
    direction: 'reverse',
    side: 'target',
    fault: { trigger: { kind: 'sql', match: /^COMMIT$/ }, watchFrom: TARGET_STEP },
    lands: 'before',
  },
  {
    name: 'COMMIT, before it reaches the target',
    direction: 'forward',
    side: 'target',
    fault: { trigger: { kind: 'sql', match: /^COMMIT$/ }, watchFrom: TARGET_STEP },
    lands: 'before',
  },
  {
    name: 'COMMIT, after the target committed (its answer is lost)',
    direction: 'reverse',
    side: 'target',
    fault: { trigger: { kind: 'sql', match: /^COMMIT$/ }, cut: 'reply', watchFrom: TARGET_STEP },
    lands: 'after',
  },
  {
    name: 'COMMIT, after the target committed (its answer is lost)',
    direction: 'forward',
    side: 'target',
    fault: { trigger: { kind: 'sql', match: /^COMMIT$/ }, cut: 'reply', watchFrom: TARGET_STEP },
    lands: 'after',
  },
];

describe('a connection cut at any point of a step leaves T exactly before or exactly after the step (apply, retries: 0)', () => {
  for (const c of cases) {
    it(`${c.direction}: cut at ${c.name}`, async () => {
      await makeWork(dbs, c.direction);
      const before = await snapshotTarget(dbs, c.direction);
      const proxy = proxyOf(c.direction, c.side);
      const cutsBefore = proxy.cuts.length;

      proxy.arm(c.fault);
      const report = await apply(config, { direction: c.direction, tables: ['job'], retries: 0 });
      proxy.disarm();

      expect(proxy.cuts.length - cutsBefore, 'the fault landed once').toBe(1);
      const step = report.steps[0];
      expect(step?.status).toBe('failed');
      expect(report.exitCode).toBe(1);
      expect(isTransient(step?.errorCode, step?.error), `classified as transient: ${step?.errorCode} ${step?.error}`).toBe(true);
      const faulted = await snapshotTarget(dbs, c.direction);

      await sessionsGone();
      const { after, inserted, updated } = await rerunAndConverge(c.direction);
      expect(after).not.toEqual(before);
      if (c.lands === 'before') {
        expect(faulted).toEqual(before);
        expect(inserted).toBeGreaterThanOrEqual(300);
      } else {
        expect(faulted).toEqual(after);
        expect({ inserted, updated }).toEqual({ inserted: 0, updated: 0 });
      }
    });
  }
});

/** Seeded PRNG (mulberry32), so a failing byte offset can be replayed with the printed seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('cuts after a random number of bytes', () => {
  const seed = Number(process.env.BISYNC_FAULT_SEED ?? 20240707);
  const random = prng(seed);

  // Where the bytes are counted from: F's COPY out, T's answers, T's COPY in (while F still
  // streams), and what bisync sends T from the retry of rejects on.
  const windows = [
    { side: 'source', from: 'server', watchFrom: SOURCE_BEGIN, span: { forward: 160_000, reverse: 40_000 } },
    { side: 'target', from: 'client', watchFrom: TARGET_STEP, span: { forward: 160_000, reverse: 40_000 } },
    { side: 'target', from: 'server', watchFrom: TARGET_STEP, span: { forward: 3_000, reverse: 3_000 } },
    { side: 'target', from: 'client', watchFrom: /^-- Rows rejected by earlier runs/, span: { forward: 12_000, reverse: 12_000 } },
  ] as const;

  it(`never leave T in between (BISYNC_FAULT_SEED=${seed})`, async () => {
    console.log(`faults-proxy: BISYNC_FAULT_SEED=${seed}`);
    for (let i = 0; i < 6; i++) {
      const direction: Direction = i % 2 === 0 ? 'forward' : 'reverse';
      const window = windows[Math.floor(random() * windows.length)] ?? windows[0];
      const after = 1 + Math.floor(random() * window.span[direction]);
      await makeWork(dbs, direction);
      const before = await snapshotTarget(dbs, direction);
      const proxy = proxyOf(direction, window.side);
      const cutsBefore = proxy.cuts.length;

      proxy.arm({ trigger: { kind: 'bytes', from: window.from, after }, watchFrom: window.watchFrom });
      const report = await apply(config, { direction, tables: ['job'], retries: 0 });
      proxy.disarm();
      const cut = proxy.cuts.length > cutsBefore;
      console.log(`  ${direction}: ${window.side} connection, ${after} bytes from the ${window.from}: ${cut ? 'cut' : 'not reached'}; step ${report.steps[0]?.status}`);

      const faulted = await snapshotTarget(dbs, direction);
      await sessionsGone();
      const { after: converged } = await rerunAndConverge(direction);
      expect([before, converged]).toContainEqual(faulted);
      if (!cut) expect(report.steps[0]?.status).toBe('succeeded');
    }
  });
});

describe('retries', () => {
  it('retries: 2 — the proxy cuts only the first connection, during the merge; the same run succeeds, exactly once', async () => {
    await makeWork(dbs, 'reverse');
    desktopProxy.arm({ trigger: { kind: 'sql', match: /WITH src AS/ }, watchFrom: TARGET_STEP, times: 1 });
    const cutsBefore = desktopProxy.cuts.length;
    const report = await apply(config, { direction: 'reverse', tables: ['job'], retries: 2 });
    desktopProxy.disarm();

    expect(desktopProxy.cuts.length - cutsBefore).toBe(1);
    expect(report.steps[0]?.error).toBeUndefined();
    expect(report.steps[0]).toMatchObject({ status: 'succeeded', retries: 1 });
    expect(report.steps[0]?.inserted).toBeGreaterThanOrEqual(300);
    expect(report.exitCode).toBe(0);
    const owned = await ownedRows(dbs, 'reverse');
    expect(owned.target).toEqual(owned.source);
    expect(owned.rejectKeys).toEqual(expectedRejectKeys('reverse'));
  });

  /** The first COMMIT of the step reaches T and commits, but its answer is lost; retries follow. */
  async function commitAnswerLost(direction: Direction): Promise<void> {
    await makeWork(dbs, direction);
    const proxy = proxyOf(direction, 'target');
    const cutsBefore = proxy.cuts.length;
    proxy.arm({ trigger: { kind: 'sql', match: /^COMMIT$/ }, cut: 'reply', watchFrom: TARGET_STEP, times: 1 });
    const report = await apply(config, { direction, tables: ['job'], retries: 2 });
    proxy.disarm();

    expect(proxy.cuts.length - cutsBefore).toBe(1);
    expect(report.steps[0]?.error).toBeUndefined();
    expect(report.steps[0]?.status).toBe('succeeded');
    expect(report.exitCode).toBe(0);
    await sessionsGone();
    const { inserted, updated } = await rerunAndConverge(direction);
    expect({ inserted, updated }).toEqual({ inserted: 0, updated: 0 });
  }

  it('retries: 2 — forward (no cursor): the first COMMIT commits but its answer is lost; the retry finds nothing to do and the run succeeds', async () => {
    await commitAnswerLost('forward');
  });

  // Regression: the retry finds the watermark moved by the commit it did not hear of and re-plans;
  // attempt numbers continue across re-plans, so its run row cannot collide with the committed one.
  it('retries: 2 — reverse (cursor): the first COMMIT commits but its answer is lost; the run succeeds', async () => {
    await commitAnswerLost('reverse');
  });
});

describe('through the CLI (default retries: 2)', () => {
  it('every attempt cut during the merge: exit 1, T exactly as before, the lock free, a rerun converges', async () => {
    await makeWork(dbs, 'reverse');
    const before = await snapshotTarget(dbs, 'reverse');
    desktopProxy.arm({ trigger: { kind: 'sql', match: /WITH src AS/ }, watchFrom: TARGET_STEP, times: Infinity });
    const cutsBefore = desktopProxy.cuts.length;
    const cli = await runCli(['apply', '--config', file, '--direction', 'reverse', '--table', 'job', '--json', '--log-level', 'warn'], envProxied());
    desktopProxy.disarm();

    expect(desktopProxy.cuts.length - cutsBefore, 'first attempt and both retries were cut').toBe(3);
    expect(cli.code, cli.stderr).toBe(1);
    const report = JSON.parse(cli.stdout) as { steps: { status: string; retries?: number }[] };
    expect(report.steps[0]).toMatchObject({ status: 'failed', retries: 2 });
    expect(cli.stderr).toMatch(/transient failure; running the step again/);
    expect(await snapshotTarget(dbs, 'reverse')).toEqual(before);

    await sessionsGone();
    const { after } = await rerunAndConverge('reverse');
    expect(after).not.toEqual(before);
  });

  it('the first connection cut during the COPY out of the source: the retry succeeds, exit 0', async () => {
    await makeWork(dbs, 'forward');
    desktopProxy.arm({ trigger: { kind: 'copy-out' }, nth: 700, watchFrom: SOURCE_BEGIN, times: 1 });
    const cutsBefore = desktopProxy.cuts.length;
    const cli = await runCli(['apply', '--config', file, '--direction', 'forward', '--table', 'job', '--json', '--log-level', 'warn'], envProxied());
    desktopProxy.disarm();

    expect(desktopProxy.cuts.length - cutsBefore).toBe(1);
    expect(cli.code, cli.stderr).toBe(0);
    const report = JSON.parse(cli.stdout) as { steps: { status: string; retries?: number; inserted: number }[] };
    expect(report.steps[0]).toMatchObject({ status: 'succeeded', retries: 1 });
    expect(report.steps[0]?.inserted).toBeGreaterThanOrEqual(300);
    const owned = await ownedRows(dbs, 'forward');
    expect(owned.target).toEqual(owned.source);
  });
});

/**
 * Regression: when T's connection is lost during the COPY while F is still streaming, the step
 * must fail (as a retryable connection error) rather than wait forever for F's connection, which is
 * left mid-COPY and is cut instead of rolled back (its transaction is read-only).
 */
describe('the connection to T lost while F still streams its COPY', () => {
  /** Settles with the value, or with 'hung' after `ms`. */
  const within = async <T>(promise: Promise<T>, ms: number): Promise<T | 'hung'> =>
    await Promise.race([promise, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), ms).unref())]);

  beforeAll(async () => {
    // A source big enough (≈4 MB) that its COPY is still streaming when T's connection drops.
    await query(
      dbs.cloudUrl,
      `INSERT INTO job (job_id, client_id, title, status, source) SELECT 500000 + i, 1 + i % 3, repeat('x', 200), 'open', 'M' FROM generate_series(1, 20000) i`,
    );
  });

  it('in-process: the step fails (retryable) and T is as before, instead of hanging', async () => {
    const before = await snapshotTarget(dbs, 'reverse');
    const pending = apply(config, {
      direction: 'reverse',
      tables: ['job'],
      retries: 0,
      // With the first chunk held (F's COPY stream full, not reading), T's connection drops.
      duringCopy: async () => {
        desktopProxy.cutAll();
        await waitForNoBisyncSessions(dbs.desktopUrl);
      },
    });
    const outcome = await within(pending, 10_000);
    if (outcome === 'hung') cloudProxy.cutAll(); // end F's session, left open by the hung step
    await sessionsGone();
    expect(await snapshotTarget(dbs, 'reverse')).toEqual(before);
    expect(outcome).not.toBe('hung');
    if (outcome !== 'hung') expect(outcome.steps[0]?.status).toBe('failed');
  });

  it('CLI: the first attempt cut during the COPY into T, the retry succeeds (exit 0), instead of exit 13 with no output', async () => {
    await makeWork(dbs, 'reverse');
    desktopProxy.arm({ trigger: { kind: 'copy-in' }, watchFrom: TARGET_STEP, times: 1 });
    const cli = await runCli(['apply', '--config', file, '--direction', 'reverse', '--table', 'job', '--json', '--log-level', 'warn'], envProxied());
    desktopProxy.disarm();
    await sessionsGone();
    await rerunAndConverge('reverse');
    expect(cli.code, `stdout: ${cli.stdout}\nstderr: ${cli.stderr}`).toBe(0);
    expect((JSON.parse(cli.stdout) as { steps: { status: string }[] }).steps[0]?.status).toBe('succeeded');
  });
});
