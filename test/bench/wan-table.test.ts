/**
 * The WAN table of `npm run bench -- --wan --runs N` (docs/benchmarks.md): each path's sample is
 * compared with the baseline's sample of the same run. Until session 7 every run was divided by the
 * first run's baseline, so a run whose full read was quicker or slower than the first showed another
 * ratio than its own (0.171× printed for a run whose own ratio was 0.162×).
 */
import { describe, expect, it } from 'vitest';
import { wanTable } from '../../bench/wan-cases.js';
import type { WanSample } from '../../bench/wan-cases.js';

const link = (up: number): WanSample['cloud'] => ({ bytesFromClient: up, bytesFromServer: 0, roundTrips: 8, directionChanges: 14, connections: 1 });
const sample = (path: string, seconds: number, up: number): WanSample => ({
  path,
  name: 'no-change apply (both ways)',
  seconds,
  read: 0,
  written: 0,
  cloud: link(up),
  desktop: link(0),
  stepRoundTrips: 0,
});

describe('npm run bench -- --wan: the table', () => {
  it('compares each run of a path with the baseline of the same run, not with the first run\'s', () => {
    // Two runs, in the order the bench takes them: run 1's paths, then run 2's.
    const table = wanTable([sample('full read', 10, 8000), sample('checksum-first', 1.5, 80), sample('full read', 20, 4000), sample('checksum-first', 1.5, 80)]);
    const ratios = table
      .split('\n')
      .filter((l) => l.includes('| checksum-first |'))
      .map((l) => l.split('|').slice(-3, -1).map((c) => c.trim()));
    expect(ratios).toEqual([
      ['0.150×', '0.010×'],
      ['0.075×', '0.020×'],
    ]);
  });
});
