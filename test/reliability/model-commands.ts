import fc from 'fast-check';
import type { TableName, Variant } from './model-state.js';

/**
 * The commands of the model-based property test, as plain data (so fast-check can print and shrink
 * them), and their generators. `model-writes.ts` carries the writes out.
 */

export type WriteKind =
  | 'desktop-insert'
  | 'desktop-update' // a desktop-owned row, on the desktop
  | 'mobile-insert' // a new cloud row with source 'M'
  | 'mobile-update' // a mobile-owned row, on the cloud
  | 'cloud-edit-desktop-row' // a desktop-owned row (source 'D') edited on the cloud
  | 'desktop-edit-mobile-row' // a mobile-owned row edited on the desktop
  | 'desktop-new-client-with-job' // a new client and a first job under it, on the desktop
  | 'mobile-new-client-with-job'; // the same on the phone (both source 'M')

export interface Write {
  kind: WriteKind;
  table: TableName;
  /** Which candidate row or free key (modulo the number of candidates when the write runs). */
  pick: number;
  /** Which parent client for a job (0 = the newest), modulo the candidates. */
  parentPick: number;
  text: string;
  status: string | null;
  /** Explicit clock: how far after the previous mobile timestamp this one is, in µs. */
  gapUs: number;
}

export interface Run {
  kind: 'run';
  direction: 'forward' | 'reverse' | 'both';
  /** Writes that land between the read and the commit of the `at`-th step (modulo the steps run). */
  during: { at: number; writes: Write[] } | null;
  /** The step (modulo the steps run) during which an open late transaction commits. */
  lateAt: number;
  /** `--table`: both tables, or one (a job step without its client step makes orphans). */
  tables: 'all' | TableName;
  /** `--mode full` forces a complete read even where a watermark exists. */
  mode: 'auto' | 'full';
  /** `--dry-run`: must change nothing (writes during it and late commits are not performed). */
  dryRun: boolean;
}

export interface Settle {
  kind: 'settle';
}

/** Open a late mobile transaction (server clock only); the next run commits it during step `lateAt`. */
export interface LateBegin {
  kind: 'late-begin';
  table: TableName;
  text: string;
  status: string | null;
  parentPick: number;
}

export type Command = Write | Run | Settle | LateBegin;

export interface Scenario {
  variant: Variant;
  /** µs added to the explicit clock's base, so watermarks carry arbitrary microseconds. */
  clockOffsetUs: number;
  commands: Command[];
}

/** Explicit mobile clock starts here (well in the past, so the in-flight clamp never applies). */
export const CLOCK_BASE_US = Date.UTC(2024, 0, 1) * 1000;

// Text that COPY's text format must escape (tab, newline, backslash, a literal \N) and non-ASCII.
const textArb = fc.string({ unit: fc.constantFrom('a', 'b', ' ', '\t', '\n', '\r', '\\', 'N', 'é', '"', "'", ','), maxLength: 5 });
// Gaps around the 5 s lookback: exactly on it, just past it, and far below and above it.
const gapArb = fc.constantFrom(1, 1_000, 700_000, 2_500_000, 4_999_999, 5_000_000, 5_000_001, 60_000_000);

const writeArb: fc.Arbitrary<Write> = fc.record({
  kind: fc.constantFrom<WriteKind>(
    'desktop-insert',
    'desktop-update',
    'mobile-insert',
    'mobile-update',
    'cloud-edit-desktop-row',
    'desktop-edit-mobile-row',
    'desktop-new-client-with-job',
    'mobile-new-client-with-job',
  ),
  table: fc.constantFrom<TableName>('client', 'job', 'job'),
  pick: fc.nat(50),
  parentPick: fc.oneof(fc.constant(0), fc.nat(10)),
  text: textArb,
  status: fc.constantFrom<string | null>('open', 'done', '', null),
  gapUs: gapArb,
});

// During a run, half the writes create a client with a job under it: landing after a client step
// has read, they make the orphan (a missing FK parent on T) that rejects must hold for one run.
const duringWriteArb: fc.Arbitrary<Write> = fc.oneof(
  writeArb,
  writeArb.map((w): Write => ({ ...w, kind: w.pick % 2 === 0 ? 'desktop-new-client-with-job' : 'mobile-new-client-with-job' })),
);

const runArb: fc.Arbitrary<Run> = fc.record({
  kind: fc.constant<'run'>('run'),
  direction: fc.constantFrom<Run['direction']>('forward', 'reverse', 'both', 'both'),
  during: fc.option(fc.record({ at: fc.constantFrom(0, 0, 1, 2, 2, 3), writes: fc.array(duringWriteArb, { minLength: 1, maxLength: 3 }) }), { freq: 2 }),
  lateAt: fc.nat(3),
  tables: fc.constantFrom<Run['tables']>('all', 'all', 'all', 'all', 'client', 'job'),
  mode: fc.constantFrom<Run['mode']>('auto', 'auto', 'auto', 'full'),
  dryRun: fc.constantFrom(false, false, false, false, false, true),
});

const lateArb: fc.Arbitrary<LateBegin> = fc.record({
  kind: fc.constant<'late-begin'>('late-begin'),
  table: fc.constantFrom<TableName>('client', 'job'),
  text: textArb,
  status: fc.constantFrom<string | null>('open', null),
  parentPick: fc.nat(10),
});

const commandChoices: fc.WeightedArbitrary<Command>[] = [
  { arbitrary: writeArb, weight: 6 },
  { arbitrary: runArb, weight: 3 },
  { arbitrary: fc.constant<Settle>({ kind: 'settle' }), weight: 1 },
];

/**
 * Scenarios for one variant (concurrency is drawn: with `after` it must not change anything; so is
 * the compare path, unless `compare` forces one).
 *
 * With checksum-first, the target's checksums are taken when the step opens, so a cloud write that
 * lands during the step acts as if it came after it (the step writes nothing in an equal bucket),
 * which is not what the model predicts for a full read: those scenarios run without writes during steps.
 */
export function scenarioArb(commandsPerRun: number, variant: Omit<Variant, 'concurrency' | 'compare'>, compare?: Variant['compare']): fc.Arbitrary<Scenario> {
  const compares = compare === undefined ? fc.constantFrom<Variant['compare']>('checksum', 'full') : fc.constant(compare);
  return fc.record({
    variant: fc.tuple(fc.constantFrom<Variant['concurrency']>(1, 2), compares).map(([concurrency, c]): Variant => ({ ...variant, concurrency, compare: c })),
    clockOffsetUs: fc.nat(999_999),
    commands: fc.array(
      fc.oneof(
        ...commandChoices,
        // Late transactions need the server clock (see model-late-commit.ts).
        ...(variant.clock === 'server' ? [{ arbitrary: lateArb as fc.Arbitrary<Command>, weight: 2 }] : []),
      ),
      { minLength: Math.max(1, Math.floor(commandsPerRun / 2)), maxLength: commandsPerRun * 2 - 1 },
    ),
  }).map((s) => (s.variant.compare === 'full' ? s : { ...s, commands: s.commands.map((c) => (c.kind === 'run' ? { ...c, during: null } : c)) }));
}
