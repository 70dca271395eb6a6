import type pg from 'pg';

/** Rows and checksum of one bucket of keys on one database (bucket-checksums.sql.hbs). */
export interface BucketSum {
  bucket: number;
  rows: number;
  checksum: string;
  /** A sync target's rows the other side owns (part of `rows`). */
  others?: number;
}

interface BucketRow {
  bucket: number;
  rows: string;
  checksum: string;
  others?: string;
}

/** The non-empty buckets of a bucket-checksums result, in bucket order. */
export function bucketSums(result: pg.QueryResult): BucketSum[] {
  return (result.rows as BucketRow[]).map((r) => ({ bucket: r.bucket, rows: Number(r.rows), checksum: r.checksum, ...(r.others === undefined ? {} : { others: Number(r.others) }) }));
}

/**
 * Buckets whose rows or checksum differ between two databases (or that hold rows on one side
 * only), in bucket order; how many rows the equal ones hold (and of those, how many `to` says the
 * other side owns), and how many buckets were compared.
 */
export function compareBuckets(
  from: readonly BucketSum[],
  to: readonly BucketSum[],
): { differing: number[]; inStep: number; othersInStep: number; compared: number } {
  const theirs = new Map(to.map((b) => [b.bucket, b]));
  const differing: number[] = [];
  let inStep = 0;
  let othersInStep = 0;
  for (const mine of from) {
    const other = theirs.get(mine.bucket);
    theirs.delete(mine.bucket);
    if (other !== undefined && other.rows === mine.rows && other.checksum === mine.checksum) {
      inStep += mine.rows;
      othersInStep += other.others ?? 0;
    } else differing.push(mine.bucket);
  }
  differing.push(...theirs.keys());
  return { differing: differing.sort((a, b) => a - b), inStep, othersInStep, compared: from.length + theirs.size };
}
