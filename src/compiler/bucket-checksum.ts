import type { CatalogColumn } from './catalog.js';

/**
 * Bucket checksums, shared by `verify` and the checksum-first full compare of a sync step (SPEC §8):
 * each server hashes its rows' keys into buckets and sums a hash of each row per bucket, so two
 * databases are compared by a few bytes per bucket, and only the rows of differing buckets move.
 */

/** A column as the checksum templates hash it on one database. */
export interface ChecksumColumn {
  readonly name: string;
  /** Casts applied in order, then to text; none: the column's own text. */
  readonly casts: readonly string[];
  /**
   * Time zone handling (applied instead of casts): `utc` a timestamptz as its UTC time; `local-to-utc`
   * a timestamp read as local time in the zone of the database written to, then as UTC time;
   * `utc-to-local` a timestamptz as local time in that zone.
   */
  readonly zone?: 'utc' | 'local-to-utc' | 'utc-to-local';
}

/** verify: 2^16 buckets, so the rows of one differing bucket are few even in large tables. */
export const VERIFY_BUCKET_BITS = 16;
/**
 * A sync step: 2^10 buckets. Each bucket costs T about 50 bytes to send per run; a changed row costs
 * F the rows of its bucket (1/1024 of the table). 1,024 keeps both small for tables up to ~100k rows.
 */
export const SYNC_BUCKET_BITS = 10;

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);
// Built-in types every PostgreSQL server knows by these names, so a cast to them works on both sides.
const BUILTIN_TYPES = new Set([
  ...INTEGER_TYPES,
  'numeric',
  'real',
  'double precision',
  'boolean',
  'date',
  'time without time zone',
  'time with time zone',
  'timestamp without time zone',
  'timestamp with time zone',
  'interval',
  'uuid',
  'json',
  'jsonb',
  'bytea',
]);
// Built-in types whose text → value conversion does not depend on the session (no zone, no date order):
// F's text cast to T's type on F gives the value the merge gives on T.
const SESSION_FREE = new Set([
  ...INTEGER_TYPES,
  'numeric',
  'real',
  'double precision',
  'boolean',
  'text',
  'character varying',
  'uuid',
  'json',
  'jsonb',
  'bytea',
]);

const base = (type: string): string => type.replace(/\(\d+(?:,\d+)?\)/g, '');
const WITH_ZONE = /^timestamp(\(\d\))? with time zone$/;
const WITHOUT_ZONE = /^timestamp(\(\d\))? without time zone$/;

/**
 * verify: the casts applied to a column on both sides before its text is compared. None when each
 * side's own text (its output function, as COPY sends it) already compares correctly: the same type,
 * or strings without char(n). Otherwise each value goes through the other side's type and then the
 * type-giving side's, so a value that was rounded, padded or widened on its way across compares
 * equal to its origin on either side: char(n) ignores trailing blanks, integers compare as bigint.
 * Types that may not exist on the other server (enums, domains, arrays) compare by their text.
 */
export function comparedCasts(target: CatalogColumn, other: CatalogColumn): readonly string[] {
  if (target.type === other.type) return [];
  if (target.category === 'S' && other.category === 'S') {
    return [target, other].some((c) => base(c.type) === 'character' || base(c.type) === 'bpchar') ? ['bpchar'] : [];
  }
  if (INTEGER_TYPES.has(target.type) && INTEGER_TYPES.has(other.type)) return ['bigint'];
  if (BUILTIN_TYPES.has(base(target.type)) && BUILTIN_TYPES.has(base(other.type))) return [other.type, target.type];
  return [];
}

/**
 * Whether every value of numeric type `from` fits numeric type `to` after rounding to its scale, so
 * the cast cannot fail on F (a failing cast would fail the step instead of rejecting one row).
 */
function numericFits(from: string, to: string): boolean {
  const parse = (type: string): { precision: number; scale: number } | 'any' | null => {
    if (type === 'numeric') return 'any';
    const m = /^numeric\((\d+)(?:,(\d+))?\)$/.exec(type);
    return m === null ? null : { precision: Number(m[1]), scale: Number(m[2] ?? 0) };
  };
  const a = parse(from);
  const b = parse(to);
  if (a === null || b === null) return false;
  if (b === 'any') return true;
  if (a === 'any') return false;
  const digits = (n: { precision: number; scale: number }): number => n.precision - n.scale;
  return digits(b) > digits(a) || (digits(b) === digits(a) && b.scale >= a.scale);
}

/** One synced column: names and types on F (source) and T (target). */
export interface SyncedColumn {
  readonly source: string;
  readonly target: string;
  readonly type: string;
  readonly sourceType: string;
}

/**
 * A sync step's checksum columns on each side: each value as T will hold it, so a bucket is equal
 * only when the merge would change nothing in it. T hashes its own values (a timestamptz as UTC
 * time); F hashes its own text, cast to T's numeric type where no value can fail that cast, or
 * converted through T's zone for timestamp ↔ timestamptz. Any other type difference (enums, domains,
 * arrays, dates and times of other kinds) cannot be reproduced on F: `unsupported` says which, and
 * the step reads in full. Equal text means equal values, so a bucket can differ where the merge
 * finds nothing to write (1.0 against 1.00), never the other way round.
 */
export function syncChecksumColumns(columns: readonly SyncedColumn[]): { source: ChecksumColumn[]; target: ChecksumColumn[] } | { unsupported: string } {
  const source: ChecksumColumn[] = [];
  const target: ChecksumColumn[] = [];
  for (const c of columns) {
    const t = c.type;
    const s = c.sourceType;
    if (s === t) {
      const zone = WITH_ZONE.test(t) ? { zone: 'utc' as const } : {};
      source.push({ name: c.source, casts: [], ...zone });
      target.push({ name: c.target, casts: [], ...zone });
    } else if (WITH_ZONE.test(t) && WITHOUT_ZONE.test(s) && base(s) === s && base(t) === t) {
      source.push({ name: c.source, casts: [], zone: 'local-to-utc' });
      target.push({ name: c.target, casts: [], zone: 'utc' });
    } else if (WITH_ZONE.test(s) && WITHOUT_ZONE.test(t) && base(s) === s && base(t) === t) {
      source.push({ name: c.source, casts: [], zone: 'utc-to-local' });
      target.push({ name: c.target, casts: [] });
    } else if (numericFits(s, t)) {
      source.push({ name: c.source, casts: [t] });
      target.push({ name: c.target, casts: [] });
    } else if (SESSION_FREE.has(base(s)) && SESSION_FREE.has(base(t))) {
      // Each side's own text: equal text is the same value on T (the merge casts F's text to T's
      // type); a value rounded or reformatted on its way across keeps its bucket differing.
      source.push({ name: c.source, casts: [] });
      target.push({ name: c.target, casts: [] });
    } else {
      return { unsupported: `column ${c.source} is ${s} on one side and ${t} on the other` };
    }
  }
  return { source, target };
}
