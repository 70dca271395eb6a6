import type { VerifyTable } from '../compiler/compile-verify.js';
import type { VerifyRow } from '../executor/verify-reader.js';

/** Every finding lists at most this many keys (SPEC §3: at least the first 100 per table). */
export const MAX_KEYS = 100;

export type FindingKind = 'missing' | 'extra' | 'unmarked' | 'differs' | 'cursor-missed' | 'protected-differs' | 'not-synced';

/** One kind of difference in one table: how many rows, and the keys of the first of them. */
export interface Finding {
  kind: FindingKind;
  /** Where the row is missing or extra; null when both sides hold it. */
  database: string | null;
  /** True when this kind counts as drift (exit 1). */
  drift: boolean;
  label: string;
  count: number;
  /** Key column → value as text, for the first MAX_KEYS rows in key order (numbers as numbers). */
  keys: Record<string, string | null>[];
}

const collator = new Intl.Collator('en', { numeric: true });
const INTEGER = /^-?\d+$/;

/** Key order for people: NULL first, integers by value, other text in natural order. */
export function compareKeys(a: readonly (string | null)[], b: readonly (string | null)[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? null;
    const y = b[i] ?? null;
    if (x === y) continue;
    if (x === null) return -1;
    if (y === null) return 1;
    if (INTEGER.test(x) && INTEGER.test(y)) {
      const d = BigInt(x) - BigInt(y);
      if (d !== 0n) return d < 0n ? -1 : 1;
      continue;
    }
    return collator.compare(x, y) || (x < y ? -1 : 1);
  }
  return 0;
}

/** What one key found on one or both sides means under the table's directions and origin rule. */
export type Outcome =
  | 'in-step'
  | 'missing-on-to'
  | 'missing-on-from'
  | 'extra-on-to'
  | 'unmarked-on-to'
  | 'differs'
  | 'missed-on-from'
  | 'missed-on-to'
  | 'protected-differs'
  | 'not-synced';

/** Which side owns a forward-target row: by its origin value, or, without an origin rule, by the direction the table syncs. */
function owner(table: VerifyTable, row: VerifyRow): 'forward' | 'reverse' | 'other' {
  if (table.origin === null) return table.directions.includes('forward') ? 'forward' : 'reverse';
  const origin = row.origin ?? null;
  if (origin === null || origin === table.origin.forward) return 'forward';
  return origin === table.origin.reverse ? 'reverse' : 'other';
}

/**
 * The verify rules (README "Checking both sides"). `from` is the forward source's row with this key,
 * `to` the forward target's; at least one is present.
 */
export function classify(table: VerifyTable, from: VerifyRow | undefined, to: VerifyRow | undefined): Outcome {
  const forward = table.directions.includes('forward');
  const reverse = table.directions.includes('reverse');
  if (to === undefined) return forward ? 'missing-on-to' : 'not-synced';
  const own = owner(table, to);
  if (from === undefined) {
    // No side claims a row whose origin column is NULL: forward never deletes it, reverse never sends it.
    if (table.origin !== null && (to.origin ?? null) === null) return 'unmarked-on-to';
    if (own === 'forward' && forward) return 'extra-on-to';
    if (own === 'reverse' && reverse) return 'missing-on-from';
    return 'not-synced';
  }
  if (from.rowHash === to.rowHash) return 'in-step';
  // The owner's side was edited without moving its cursor past the watermark: no incremental run reads it again.
  if (own === 'forward' && forward && from.behind === true) return 'missed-on-from';
  if (own === 'reverse' && reverse && to.behind === true) return 'missed-on-to';
  if (own === 'forward') return forward ? 'differs' : 'not-synced';
  // Forward never overwrites a row the other side owns: a difference there is by design.
  if (forward) return 'protected-differs';
  return own === 'reverse' && reverse ? 'differs' : 'not-synced';
}

function missedLabel(table: VerifyTable, database: string, direction: 'forward' | 'reverse'): string {
  return (
    `drift the cursor missed: differs, and its cursor value on ${database} is older than the ${direction} watermark less lookback, ` +
    `so incremental ${direction} runs never read it (edited without updating its cursor column); ` +
    `bisync apply --direction ${direction} --table ${table.table} --mode full sends it; maintain the cursor on update (e.g. a moddatetime trigger)`
  );
}

/** Counts of one table's outcomes, with the first keys of each kind. */
export class DriftTally {
  inStep = 0;
  readonly findings: Finding[];
  private readonly byOutcome: Record<Exclude<Outcome, 'in-step'>, Finding>;
  /** The key values behind each finding's `keys`, in the same order. */
  private readonly kept = new Map<Finding, (string | null)[][]>();

  constructor(private readonly table: VerifyTable) {
    const { from, to } = { from: table.from.database, to: table.to.database };
    const keeps = table.deletes === 'keep' ? `; deletes: keep, so forward never removes it` : `; deletes: mirror removes it on the next full forward run`;
    const finding = (kind: FindingKind, database: string | null, drift: boolean, label: string): Finding => ({ kind, database, drift, label, count: 0, keys: [] });
    this.byOutcome = {
      'missing-on-to': finding('missing', to, true, `missing on ${to}`),
      'extra-on-to': finding('extra', to, true, `extra on ${to} (owned by ${from}, which lacks it${keeps})`),
      'unmarked-on-to': finding(
        'unmarked',
        to,
        true,
        `unmarked on ${to} (${table.origin?.column ?? 'origin'} is NULL and ${from} lacks it): no side claims it, so forward never deletes it and reverse never sends it; set its marker`,
      ),
      'missing-on-from': finding('missing', from, true, `missing on ${from} (owned by ${to})`),
      differs: finding('differs', null, true, 'differs'),
      'missed-on-from': finding('cursor-missed', from, true, missedLabel(table, from, 'forward')),
      'missed-on-to': finding('cursor-missed', to, true, missedLabel(table, to, 'reverse')),
      'protected-differs': finding('protected-differs', null, false, `owned by the other side (${to}), differs: forward never overwrites it; not drift`),
      'not-synced': finding('not-synced', null, false, 'on one side only or different, but no step of this table moves it; not drift'),
    };
    this.findings = Object.values(this.byOutcome);
  }

  add(outcome: Outcome, row: VerifyRow): void {
    if (outcome === 'in-step') {
      this.inStep += 1;
      return;
    }
    const finding = this.byOutcome[outcome];
    finding.count += 1;
    // Keep the MAX_KEYS smallest keys seen so far, sorted: rows arrive in key-hash order.
    const kept = this.kept.get(finding) ?? [];
    this.kept.set(finding, kept);
    const last = kept[kept.length - 1];
    if (kept.length >= MAX_KEYS && last !== undefined && compareKeys(row.key, last) >= 0) return;
    let at = kept.length;
    while (at > 0 && compareKeys(row.key, kept[at - 1] ?? []) < 0) at -= 1;
    const names = this.table.from.keyColumns;
    kept.splice(at, 0, row.key);
    finding.keys.splice(at, 0, Object.fromEntries(names.map((name, i) => [name, row.key[i] ?? null])));
    if (kept.length > MAX_KEYS) {
      kept.pop();
      finding.keys.pop();
    }
  }

  get drifted(): number {
    return this.findings.filter((f) => f.drift).reduce((n, f) => n + f.count, 0);
  }
}

/** A page-at-a-time reader over an async stream of row pages. */
class RowCursor {
  private page: VerifyRow[] = [];
  private index = 0;
  private done = false;

  constructor(private readonly pages: AsyncIterator<VerifyRow[]>) {}

  async peek(): Promise<VerifyRow | undefined> {
    while (this.index >= this.page.length && !this.done) {
      const next = await this.pages.next();
      if (next.done === true) this.done = true;
      else {
        this.page = next.value;
        this.index = 0;
      }
    }
    return this.page[this.index];
  }

  advance(): void {
    this.index += 1;
  }
}

/**
 * Merge two key-hash-ordered row streams and call `visit` once per key with the row from each side
 * that has it. Memory holds one page per side.
 */
export async function mergeByKey(
  from: AsyncIterable<VerifyRow[]>,
  to: AsyncIterable<VerifyRow[]>,
  visit: (from: VerifyRow | undefined, to: VerifyRow | undefined) => void,
): Promise<void> {
  const a = new RowCursor(from[Symbol.asyncIterator]());
  const b = new RowCursor(to[Symbol.asyncIterator]());
  for (;;) {
    const x = await a.peek();
    const y = await b.peek();
    if (x === undefined && y === undefined) return;
    // md5 hex text: plain string order is the byte order ORDER BY ... COLLATE "C" produced.
    if (y === undefined || (x !== undefined && x.keyHash < y.keyHash)) {
      visit(x, undefined);
      a.advance();
    } else if (x === undefined || y.keyHash < x.keyHash) {
      visit(undefined, y);
      b.advance();
    } else {
      visit(x, y);
      a.advance();
      b.advance();
    }
  }
}
