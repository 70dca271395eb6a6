/**
 * SPEC §8 and `apply --probe auto` (the default): the run-level probe trades a second pass over the
 * rows (checksums, read windows) for the round trips of the steps it finds nothing to do for. That
 * pays over the internet and costs on a fast link, so auto probes only when a round trip to either
 * database took PROBE_SLOW_LINK_MS or more while the catalog was read.
 */
import { describe, expect, it } from 'vitest';
import { PROBE_SLOW_LINK_MS } from '../../src/compiler/compile-plan.js';
import { LinkProxy } from '../proxy/link-proxy.js';
import { apply, testConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile, seedDesktop } from './jobs-fixture.js';

describe('apply --probe auto', () => {
  const dbs = useFreshDatabases('probe_auto');

  it('--probe auto runs every step on a fast link and probes over a slow one, where it skips the steps with nothing to do', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 3, 20);
    const direct = await testConfig(jobsConfigFile(), dbs);
    expect((await apply(direct, { probe: false })).exitCode).toBe(0);

    // Same machine: every round trip is far under the threshold, so nothing is probed and every step runs.
    const fast = await apply(direct, { probe: 'auto' });
    expect(fast.exitCode).toBe(0);
    expect(fast.probe?.probed).toBe(0);
    expect(fast.probe?.off).toMatch(new RegExp(`every database answered within ${PROBE_SLOW_LINK_MS} ms \\(cloud [\\d.]+ ms, desktop [\\d.]+ ms\\)`));
    expect(fast.steps.map((s) => s.reason)).not.toContainEqual(expect.stringMatching(/nothing to do/));

    // The cloud behind a link with twice the threshold's round trip: the probe runs and the same
    // no-change steps are not run.
    const cloud = await LinkProxy.start(dbs.cloudUrl, { rttMs: 2 * PROBE_SLOW_LINK_MS, bitsPerSecond: Infinity });
    try {
      const slow = await apply(await testConfig(jobsConfigFile(), { ...dbs, cloudUrl: cloud.url(dbs.cloudUrl) }), { probe: 'auto' });
      expect(slow.exitCode).toBe(0);
      expect(slow.probe?.off).toBeUndefined();
      expect(slow.probe?.probed).toBeGreaterThan(0);
      expect(slow.probe?.skipped).toBe(slow.probe?.probed);
      expect(slow.steps.filter((s) => /nothing to do/.test(s.reason))).toHaveLength(slow.probe?.skipped ?? -1);
    } finally {
      await cloud.stop();
    }
  });
});
