import { describe, expect, it } from 'vitest';
import type { StepStatus } from '../../src/commands/status.js';
import type { StepResult } from '../../src/executor/run-step.js';
import { envFor, query, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile, seedDesktop } from '../executor/jobs-fixture.js';

// SPEC §8 / issue 11: `status` shows what the last run of each step cost on the wire, as apply
// counted it, from <state>.runs; a runs table an earlier bisync created gets the columns.

describe('bisync status: the last run on the wire', () => {
  const dbs = useFreshDatabases('status_wire');

  it("status shows each step's last round trips and bytes sent and received, as apply --json counted them", async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 3, 30);
    const file = jobsConfigFile();
    const env = envFor(dbs);
    const applyJson = async (): Promise<StepResult[]> => {
      const result = await runCli(['apply', '--json', '--config', file], env);
      expect(result.code).toBe(0);
      return (JSON.parse(result.stdout) as { steps: StepResult[] }).steps;
    };
    const status = async (): Promise<StepStatus[]> => {
      const result = await runCli(['status', '--json', '--config', file], env);
      expect(result.code).toBe(0);
      return (JSON.parse(result.stdout) as { steps: StepStatus[] }).steps;
    };

    const applied = await applyJson();
    const shown = await status();
    expect(applied.map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    for (const a of applied) {
      const last = shown.find((s) => s.table === a.table && s.direction === a.direction)?.lastRun;
      // The run row is written before its own batch and the COMMIT travel: every round trip is in
      // it, the bytes of that last batch are not.
      expect(last?.roundTrips).toBe(a.roundTrips);
      expect(last?.bytesSent).toBeGreaterThan(0);
      expect(last?.bytesSent).toBeLessThanOrEqual(a.bytesSent ?? 0);
      expect(last?.bytesReceived).toBeGreaterThan(0);
      expect(last?.bytesReceived).toBeLessThanOrEqual(a.bytesReceived ?? 0);
    }
    const jobForward = applied.find((s) => s.table === 'job' && s.direction === 'forward');
    const text = await runCli(['status', '--config', file], env);
    expect(text.stdout).toMatch(/round trips\s+kB sent \/ received/);
    const line = text.stdout.split('\n').find((l) => /^job\s+forward/.test(l)) ?? '';
    expect(line).toMatch(new RegExp(`\\s${jobForward?.roundTrips ?? 'none'}\\s+\\d+\\.\\d / \\d+\\.\\d\\s*$`));

    // A runs table from before the columns: status still reads it (and writes nothing), and the
    // next apply adds the columns and fills them.
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      await query(url, 'ALTER TABLE bisync.runs DROP COLUMN round_trips, DROP COLUMN bytes_sent, DROP COLUMN bytes_received');
    }
    const old = await status();
    expect(old.map((s) => s.lastRun?.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    expect(old.map((s) => s.lastRun?.roundTrips)).toEqual([null, null, null, null]);
    const again = await applyJson();
    const after = await status();
    expect(after.map((s) => s.lastRun?.roundTrips)).toEqual(again.map((s) => s.roundTrips));
  });
});
