import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { SAMPLE_TABLES } from '../test/fixtures/sample-dataset.js';

export type RssMethod = 'time' | 'proc';

/** What one `npm run bench` invocation measures, parsed from its arguments. */
export interface BenchOptions {
  /** Scale factor of the sample loaded on the desktop (1 ≈ 92k rows). */
  sf: number;
  /** Config names of the tables to sync, in foreign-key order (all fifteen by default). */
  tables: string[];
  /** Passed to `bisync apply --concurrency`. */
  concurrency: number;
  /** Runs per case; the table shows the median. */
  runs: number;
  urlDesktop: string | undefined;
  urlCloud: string | undefined;
  /** Instead of the cases: peak RSS of full forward at each of `memoryScales`. */
  memoryCheck: boolean;
  memoryScales: number[];
  /** `auto`: /usr/bin/time -v when it exists, else /proc polling. */
  rss: RssMethod | 'auto';
  /** Instead of the cases: the WAN cases, the cloud reached through a latency/bandwidth proxy. */
  wan: boolean;
  /** With `wan`: round-trip time added to every cloud exchange, in ms. */
  rttMs: number;
  /** With `wan`: bandwidth of the link to the cloud in each direction, in Mbit/s (Infinity: unlimited). */
  mbit: number;
  /** Where the markdown result goes. */
  out: string;
  /** The arguments as given, passwords removed (for the result file). */
  argv: string[];
}

export class UsageError extends Error {}

const positiveNumber = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a positive number');
  return n;
};

const wholeNumber = (max: number) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`a whole number from 1 to ${max}`);
  return n;
};

const nonNegative = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('a number ≥ 0');
  return n;
};

const scaleList = (value: string): number[] => value.split(',').map((s) => positiveNumber(s.trim()));

/** Replace the password of any postgres URL in `text` with ***. */
export function redactUrls(text: string): string {
  return text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@');
}

/**
 * Parse `run-bench.js` arguments. Throws UsageError (with the message to print) on bad usage and
 * CommanderError for --help.
 */
export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  const program = new Command('run-bench')
    .description('bisync benchmark: raw COPY pipe vs bisync apply, on the sample dataset (see docs/benchmarks.md)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s), outputError: () => undefined })
    .option('--sf <n>', 'scale factor of the sample on the desktop (1 ≈ 92k rows)', positiveNumber, 1)
    .option('--tables <names...>', 'only these tables (config names, space- or comma-separated); their foreign-key parents must be included')
    .option('--concurrency <n>', 'bisync apply --concurrency', wholeNumber(32), 1)
    .option('--runs <n>', 'runs per case (median reported)', wholeNumber(100), 3)
    .option('--url-desktop <url>', 'use this database as the desktop instead of an embedded server (its sample tables are dropped and reloaded)')
    .option('--url-cloud <url>', 'use this database as the cloud instead of an embedded server (its sample tables are dropped before each run)')
    .option('--memory-check', 'peak RSS of full forward at SF=1 and SF=10 must stay within 20%; exit 1 if not')
    .option('--sf100', 'with --memory-check: add SF=100 (≈ 9.2M rows)')
    .option('--memory-sfs <list>', 'with --memory-check: the scale factors, comma-separated (default 1,10)', scaleList)
    .addOption(new Option('--rss <method>', 'how peak RSS of the bisync process is measured').choices(['auto', 'time', 'proc']).default('auto'))
    .option('--wan', 'run the WAN cases instead: the cloud behind a proxy that adds latency and limits bandwidth (defaults 100 ms, 20 Mbit/s; --runs 1, --concurrency 2)')
    .option('--rtt <ms>', 'with --wan: round-trip time added to every cloud exchange, in ms (0: none)', nonNegative, 100)
    .option('--bandwidth <mbit>', 'with --wan: link bandwidth to the cloud in each direction, in Mbit/s (0: unlimited)', nonNegative, 20)
    .option('--out <file>', 'write the markdown result here (default bench/results/latest.md, memory-check.md or wan.md)');
  try {
    program.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError && (error.code === 'commander.helpDisplayed' || error.code === 'commander.help')) throw error;
    throw new UsageError((error instanceof Error ? error.message : String(error)).replace(/^error: /, ''));
  }
  const flags = program.opts<{
    sf: number;
    tables?: string[];
    concurrency: number;
    runs: number;
    urlDesktop?: string;
    urlCloud?: string;
    memoryCheck?: boolean;
    sf100?: boolean;
    memorySfs?: number[];
    rss: RssMethod | 'auto';
    wan?: boolean;
    rtt: number;
    bandwidth: number;
    out?: string;
  }>();
  const wan = flags.wan === true;
  const given = (name: string): boolean => program.getOptionValueSource(name) === 'cli';
  if ((flags.urlDesktop === undefined) !== (flags.urlCloud === undefined)) {
    throw new UsageError('give both --url-desktop and --url-cloud, or neither (then two embedded servers are started)');
  }
  if (flags.urlDesktop !== undefined && flags.urlDesktop === flags.urlCloud) {
    throw new UsageError('--url-desktop and --url-cloud must be two different databases: both sides use the same table names');
  }
  const memoryCheck = flags.memoryCheck === true;
  if (memoryCheck && wan) throw new UsageError('--memory-check and --wan are two different benches: give one');
  const memoryScales = [...(flags.memorySfs ?? [1, 10]), ...(flags.sf100 === true ? [100] : [])];
  return {
    sf: flags.sf,
    tables: chosenTables(flags.tables),
    concurrency: wan && !given('concurrency') ? 2 : flags.concurrency,
    runs: wan && !given('runs') ? 1 : flags.runs,
    urlDesktop: flags.urlDesktop,
    urlCloud: flags.urlCloud,
    memoryCheck,
    memoryScales: [...new Set(memoryScales)].sort((a, b) => a - b),
    rss: flags.rss,
    wan,
    rttMs: flags.rtt,
    mbit: flags.bandwidth === 0 ? Infinity : flags.bandwidth,
    out: flags.out ?? (memoryCheck ? 'bench/results/memory-check.md' : wan ? 'bench/results/wan.md' : 'bench/results/latest.md'),
    argv: argv.map(redactUrls),
  };
}

/** The chosen tables in foreign-key order; every parent of a chosen table must be chosen too. */
function chosenTables(given: string[] | undefined): string[] {
  const all = SAMPLE_TABLES.map((t) => t.name);
  if (given === undefined) return all;
  const names = new Set(given.flatMap((g) => g.split(',')).map((s) => s.trim()).filter((s) => s !== ''));
  const unknown = [...names].filter((n) => !all.includes(n));
  if (unknown.length > 0) throw new UsageError(`unknown table(s) ${unknown.join(', ')}; the sample tables are: ${all.join(', ')}`);
  for (const t of SAMPLE_TABLES) {
    if (!names.has(t.name)) continue;
    const missing = t.parents.filter((p) => !names.has(p));
    if (missing.length > 0) {
      throw new UsageError(`--tables: ${t.name} references ${missing.join(', ')}; include them too, or its rows would fail their foreign keys`);
    }
  }
  return all.filter((n) => names.has(n));
}
