import { applyOnce, CheckFailure, freshTargets } from './bench-cases.js';
import type { CaseContext } from './bench-cases.js';
import { countRows, loadDesktop } from './bench-databases.js';
import { median } from './report.js';

/** Peak RSS may grow by at most this factor from the smallest scale to any larger one (SPEC §5). */
export const MEMORY_LIMIT = 1.2;

export interface MemoryPoint {
  sf: number;
  rows: number;
  seconds: number;
  /** The largest peak RSS of the runs at this scale. */
  peakRssKiB: number;
}

export interface MemoryCheckResult {
  points: MemoryPoint[];
  passed: boolean;
  verdict: string;
  table: string;
}

/**
 * Full forward into an empty cloud at each scale factor (`runs` times each), as a user runs it;
 * passes when the peak RSS at every scale is within MEMORY_LIMIT of the peak at the smallest one.
 */
export async function memoryCheck(ctx: Omit<CaseContext, 'desktopRows'>, scales: readonly number[], runs: number): Promise<MemoryCheckResult> {
  const points: MemoryPoint[] = [];
  for (const sf of scales) {
    ctx.log(`loading the sample at SF=${sf} on the desktop…`);
    await loadDesktop(ctx.dbs.desktopUrl, sf);
    const desktopRows = await countRows(ctx.dbs.desktopUrl, 'desktop', ctx.tables);
    const seconds: number[] = [];
    const peaks: number[] = [];
    for (let run = 1; run <= runs; run++) {
      await freshTargets({ ...ctx, desktopRows });
      const result = await applyOnce({ ...ctx, desktopRows }, 'forward');
      if (result.written !== desktopRows) throw new CheckFailure(`full forward at SF=${sf} wrote ${result.written} rows, the desktop holds ${desktopRows}`);
      seconds.push(result.seconds);
      peaks.push(result.peakRssKiB);
      ctx.log(`  SF=${sf} run ${run}/${runs}: ${desktopRows} rows in ${result.seconds.toFixed(2)} s, peak RSS ${(result.peakRssKiB / 1024).toFixed(1)} MiB`);
    }
    points.push({ sf, rows: desktopRows, seconds: median(seconds), peakRssKiB: Math.max(...peaks) });
  }
  const reference = points[0];
  if (reference === undefined || reference.peakRssKiB <= 0) throw new CheckFailure('no peak RSS was measured');
  const worst = points.reduce((w, p) => (p.peakRssKiB > w.peakRssKiB ? p : w), reference);
  const growth = worst.peakRssKiB / reference.peakRssKiB;
  const passed = points.every((p) => p.peakRssKiB <= reference.peakRssKiB * MEMORY_LIMIT);
  const verdict =
    `memory check ${passed ? 'PASSED' : 'FAILED'}: peak RSS of full forward ${(reference.peakRssKiB / 1024).toFixed(1)} MiB at SF=${reference.sf}, ` +
    `largest ${(worst.peakRssKiB / 1024).toFixed(1)} MiB at SF=${worst.sf} (${growth.toFixed(2)}×; limit ${MEMORY_LIMIT.toFixed(2)}×)`;
  const lines = [
    `| SF | rows | seconds (median of ${runs}) | peak RSS MiB (largest of ${runs}) | × SF=${reference.sf} |`,
    '|---:|---:|---:|---:|---:|',
    ...points.map((p) => `| ${p.sf} | ${p.rows.toLocaleString('en-US')} | ${p.seconds.toFixed(2)} | ${(p.peakRssKiB / 1024).toFixed(1)} | ${(p.peakRssKiB / reference.peakRssKiB).toFixed(2)}× |`),
  ];
  return { points, passed, verdict, table: lines.join('\n') };
}
