import type { ResolvedConfig } from '../config/types.js';
import type { Catalog, SequenceRange } from './catalog.js';
import type { LiveProblem } from './check-catalog.js';
import { displayName } from './quote-ident.js';

/** The values a sequence will still hand out: every `step`-th integer from `next`, within [lo, hi]. */
interface Remaining {
  readonly next: bigint;
  readonly step: bigint;
  readonly lo: bigint;
  readonly hi: bigint;
}

function remaining(r: SequenceRange): Remaining | null {
  const step = BigInt(r.increment);
  const next = r.last === null ? BigInt(r.start) : BigInt(r.last) + step;
  if (step > 0n) return next > BigInt(r.max) ? null : { next, step, lo: next, hi: BigInt(r.max) };
  return next < BigInt(r.min) ? null : { next, step, lo: BigInt(r.min), hi: next };
}

const abs = (x: bigint): bigint => (x < 0n ? -x : x);
const mod = (x: bigint, m: bigint): bigint => ((x % m) + m) % m;

/** [g, x] with a·x ≡ g (mod b), g = gcd(a, b). */
function extendedGcd(a: bigint, b: bigint): [bigint, bigint] {
  let [oldR, r, oldS, s] = [a, b, 1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  return [oldR, oldS];
}

/**
 * The smallest value both sequences will still hand out, or null when none: the two progressions
 * meet where their ranges overlap and x ≡ next (mod step) holds for both (Chinese remainder theorem).
 */
export function firstSharedValue(a: SequenceRange, b: SequenceRange): bigint | null {
  const ra = remaining(a);
  const rb = remaining(b);
  if (ra === null || rb === null) return null;
  const lo = ra.lo > rb.lo ? ra.lo : rb.lo;
  const hi = ra.hi < rb.hi ? ra.hi : rb.hi;
  if (lo > hi) return null;
  const [m, n] = [abs(ra.step), abs(rb.step)];
  const [g, inverse] = extendedGcd(m, n);
  const gap = rb.next - ra.next;
  if (gap % g !== 0n) return null;
  const lcm = (m / g) * n;
  // x = ra.next + m·t with m·t ≡ gap (mod n): t ≡ (gap/g)·inverse (mod n/g).
  const x0 = mod(ra.next + m * mod((gap / g) * inverse, n / g), lcm);
  const first = lo + mod(x0 - lo, lcm);
  return first <= hi ? first : null;
}

/**
 * `validate --live` (SPEC §7, Keys): a key column of a `direction: both` table whose sequences on
 * the two databases will hand out the same values — rows both sides create then collide.
 */
export function sequenceOverlapWarnings(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>): LiveProblem[] {
  const [one, other] = [config.forward.from, config.forward.to];
  const warnings: LiveProblem[] = [];
  for (const table of config.tables) {
    if (!table.directions.includes('forward') || !table.directions.includes('reverse')) continue;
    const t1 = catalogs[one]?.tables[table.name];
    const t2 = catalogs[other]?.tables[table.name];
    if (t1 === null || t1 === undefined || t2 === null || t2 === undefined) continue;
    for (const key of table.primaryKey) {
      const c1 = t1.columns.find((c) => c.name === key[one]);
      const c2 = t2.columns.find((c) => c.name === key[other]);
      const [s1, s2] = [c1?.sequenceRange, c2?.sequenceRange];
      if (c1 === undefined || c2 === undefined || s1 === null || s1 === undefined || s2 === null || s2 === undefined) continue;
      const shared = firstSharedValue(s1, s2);
      if (shared === null) continue;
      // An unused sequence (or one this role may not read) is judged from its START.
      const next = (s: SequenceRange): string => `${s.last === null ? `START ${s.start}` : `next ${(BigInt(s.last) + BigInt(s.increment)).toString()}`}, INCREMENT BY ${s.increment}`;
      warnings.push({
        table: table.name,
        database: one,
        relation: displayName(t1),
        location: table.location,
        message: `key column ${c1.name}: the sequences on ${one} (${next(s1)}) and on ${other} (${next(s2)}) will both hand out ${shared}, and more: rows both sides create get the same key and collide (a conflict to resolve, never both rows)`,
        hint: `make the two ranges disjoint: odd/even (ALTER SEQUENCE ... INCREMENT BY 2 START WITH <an odd value past the largest key> RESTART on one side, an even one on the other), or separate ranges (e.g. START WITH 1000000000 RESTART on ${other}, MAXVALUE 999999999 on ${one}), or use UUID keys`,
      });
    }
  }
  return warnings;
}
