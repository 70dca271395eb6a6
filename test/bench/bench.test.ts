import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CASES } from '../../bench/bench-cases.js';
import { WAN_CASES } from '../../bench/wan-cases.js';
import { useFreshDatabases, withClient } from '../harness/fresh-databases.js';

// The bench as `npm run bench` runs it after `tsc` (npm test builds first). No timing is asserted
// here: timings belong in the bench output and docs/benchmarks.md.
const RUN_BENCH = fileURLToPath(new URL('../../dist/bench/run-bench.js', import.meta.url));

interface BenchResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function runBench(args: readonly string[]): Promise<BenchResult> {
  const child = spawn(process.execPath, [RUN_BENCH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}

const outFile = (): string => join(mkdtempSync(join(tmpdir(), 'bisync-bench-test-')), 'latest.md');

/** The cells of the table row whose first cell is `name`. */
function row(markdown: string, name: string): string[] | undefined {
  const line = markdown.split('\n').find((l) => l.startsWith(`| ${name} |`));
  return line?.split('|').slice(1, -1).map((c) => c.trim());
}

function expectEveryCase(markdown: string): void {
  for (const name of CASES) {
    const cells = row(markdown, name);
    expect(cells, `a row for "${name}"`).toHaveLength(7);
  }
  expect(row(markdown, 'no-change re-run, forward')?.[6]).toBe('0');
  expect(row(markdown, 'no-change re-run, reverse')?.[6]).toBe('0');
  // Issue 10: the edits: both cases on the cursor tables, with their checks.
  expect(row(markdown, 'edits: both, no-change re-run, both ways')?.[6]).toBe('0');
  expect(Number(row(markdown, 'edits: both, 1% edited on each side, both ways')?.[6])).toBeGreaterThan(0);
  expect(row(markdown, "edits: both, full forward (cursor tables' steps)")?.[6]).toBe(row(markdown, "edits: owner, full forward (cursor tables' steps)")?.[6]);
  expect(markdown).toContain('### edits: both on jobshead, jobtasks (issue 10)');
  expect(markdown).toMatch(/maintaining the base costs ≤ 25% of the full-forward rows\/s without it .*: \d+\.\d\d× .* — (met|NOT met)/);
  expect(markdown).toMatch(/a second, looser reading .*: the whole full forward process, every table, .*: \d+\.\d\d× \(median of the per-run ratios\)/);
  expect(markdown).toContain('a no-change re-run (both ways) writes 0 rows on both sides, base included: 0 rows written, no base row written — met');
  expect(markdown).toMatch(/1% edited on each side: apply both ways wrote exactly the rows edited \(\d+\)/);
  expect(markdown).toMatch(/the base's size per row .*: \d+ bytes \([\d,]+ bytes \/ [\d,]+ rows\)/);
  expect(markdown).toMatch(/load average \(1 \/ 5 \/ 15 min\) at start: [\d.]+ \/ [\d.]+ \/ [\d.]+; at end: /);
  expect(markdown).toMatch(/Node v\d+/);
  expect(markdown).toMatch(/PostgreSQL \d+/);
  expect(markdown).toMatch(/\d+ cores/);
}

describe('npm run bench', () => {
  const dbs = useFreshDatabases('bench');
  const occupied = useFreshDatabases('benchbusy');

  it('measures every case at a tiny scale against the databases it is given; no-change re-runs write 0 rows (edits: both: base included)', async () => {
    const out = outFile();
    const result = await runBench(['--sf', '0.01', '--runs', '1', '--url-desktop', dbs.desktopUrl, '--url-cloud', dbs.cloudUrl, '--out', out]);
    expect(result.stderr).not.toMatch(/CHECK FAILED/);
    expect(result.code, result.stderr).toBe(0);
    const markdown = readFileSync(out, 'utf8');
    expectEveryCase(markdown);
    expect(result.stdout).toContain(row(markdown, 'full forward (empty cloud)')?.join(' | ') ?? 'the table');
    // The command line is recorded without the passwords of the URLs it was given.
    const password = new URL(dbs.cloudUrl).password;
    if (password !== '') expect(markdown).not.toContain(password);
    expect(markdown).toContain('--url-cloud');
  }, 300_000);

  it('starts two embedded servers of its own when given no URLs, at --concurrency 2', async () => {
    const out = outFile();
    const result = await runBench(['--sf', '0.01', '--runs', '1', '--concurrency', '2', '--out', out]);
    expect(result.code, result.stderr).toBe(0);
    const markdown = readFileSync(out, 'utf8');
    expectEveryCase(markdown);
    expect(markdown).toContain('two embedded PostgreSQL servers');
  }, 300_000);

  it('memory check: prints a verdict per scale and exits 0 exactly when it passed', async () => {
    const out = outFile();
    const result = await runBench(['--memory-check', '--memory-sfs', '0.01,0.02', '--runs', '1', '--url-desktop', dbs.desktopUrl, '--url-cloud', dbs.cloudUrl, '--out', out]);
    const verdict = /memory check (PASSED|FAILED): /.exec(result.stdout)?.[1];
    expect(verdict, result.stderr).toBeDefined();
    expect(result.code).toBe(verdict === 'PASSED' ? 0 : 1);
    const markdown = readFileSync(out, 'utf8');
    expect(row(markdown, '0.01')).toHaveLength(5);
    expect(row(markdown, '0.02')).toHaveLength(5);
  }, 300_000);

  it('--wan: every WAN case on each path (full read, checksum-first, xmin) through its link proxy, with bytes, round trips and connections counted', async () => {
    const out = outFile();
    const variantCopies = (): string[] => readdirSync(tmpdir()).filter((d) => /^bisync-bench-(full|xmin)-/.test(d));
    const before = variantCopies();
    const result = await runBench(['--wan', '--sf', '0.01', '--rtt', '2', '--bandwidth', '0', '--url-desktop', dbs.desktopUrl, '--url-cloud', dbs.cloudUrl, '--out', out]);
    expect(result.stderr).not.toMatch(/CHECK FAILED/);
    expect(result.code, result.stderr).toBe(0);
    const markdown = readFileSync(out, 'utf8');
    expect(markdown).toContain('cloud behind 2 ms round trip, unlimited bandwidth, --concurrency 2, 1 run');
    const lines = markdown.split('\n');
    for (const name of WAN_CASES) {
      for (const path of ['full read', 'checksum-first', 'desktop: xmin']) {
        const cells = lines.find((l) => l.startsWith(`| ${name} | ${path} |`))?.split('|').slice(1, -1).map((c) => c.trim());
        expect(cells, `a row for "${name}" on "${path}"`).toHaveLength(13);
        const [, , , uploaded, , roundTrips, , , connections] = cells ?? [];
        expect(Number(uploaded?.replace(/,/g, ''))).toBeGreaterThan(0);
        expect(Number(roundTrips)).toBeGreaterThan(0);
        expect(connections).toMatch(/^[1-9]\d* \+ [1-9]\d*$/);
      }
    }
    // A no-change run writes nothing on any path.
    const noChange = lines.filter((l) => l.startsWith('| no-change apply (both ways) |')).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
    expect(noChange.map((c) => c[10])).toEqual(['0', '0', '0']);
    // The bench leaves nothing behind: its config variants are removed with the run.
    expect(variantCopies()).toEqual(before);
  }, 300_000);

  it('refuses databases that hold anything but the sample tables, and leaves them alone', async () => {
    await withClient(occupied.cloudUrl, async (c) => {
      await c.query('CREATE TABLE public.invoices (id integer PRIMARY KEY)');
      await c.query('INSERT INTO public.invoices VALUES (1)');
    });
    const result = await runBench(['--sf', '0.01', '--runs', '1', '--url-desktop', occupied.desktopUrl, '--url-cloud', occupied.cloudUrl, '--out', outFile()]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/holds other tables \(public\.invoices\).*scratch databases/);
    const left = await withClient(occupied.cloudUrl, async (c) => (await c.query('SELECT count(*)::int AS n FROM public.invoices')).rows[0]);
    expect(left.n).toBe(1);
  }, 60_000);

  it('rejects bad usage with exit 2', async () => {
    const partial = await runBench(['--url-desktop', 'postgres://u:secret@127.0.0.1:1/x']);
    expect(partial.code).toBe(2);
    expect(partial.stderr).toMatch(/both --url-desktop and --url-cloud/);
    const orphan = await runBench(['--tables', 'jobshead']);
    expect(orphan.code).toBe(2);
    expect(orphan.stderr).toMatch(/jobshead references climaster, jobmaster/);
  }, 60_000);
});
