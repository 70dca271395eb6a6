import type pg from 'pg';
import type { PlanStatement, PlanStep } from '../compiler/plan-types.js';
import { bucketSums, compareBuckets } from './bucket-sums.js';
import type { Sendable } from './statements.js';
import { statement } from './statements.js';

/** What a checksum-first step found (SPEC §8): buckets holding rows on either side, and those that differ. */
export interface ChecksumOutcome {
  buckets: number;
  differing: number[];
  /** Rows of F in the equal buckets, not read: unchanged, or protected where the other side owns T's (the merge would have found them so). */
  equalRows: number;
  equalProtected: number;
}

/** The target's bucket checksums, sent with the statements that open the step on T (empty when the step reads in full). */
export function targetChecksum(step: PlanStep): PlanStatement[] {
  return step.compare === 'checksum' ? [statement(step, 'bucket-checksums', 'target')] : [];
}

/** The source's bucket checksums, sent in the read snapshot before the copy (empty when the step reads in full). */
export function sourceChecksum(step: PlanStep): PlanStatement[] {
  return step.compare === 'checksum' ? [statement(step, 'bucket-checksums', 'source')] : [];
}

/** Compare both sides' bucket checksums: the buckets whose rows the copy must read. */
export function compareChecksums(source: pg.QueryResult | undefined, target: pg.QueryResult | undefined): ChecksumOutcome {
  if (source === undefined || target === undefined) throw new Error('a checksum-first step is missing a bucket checksum result');
  const { differing, compared, inStep, othersInStep } = compareBuckets(bucketSums(source), bucketSums(target));
  return { buckets: compared, differing, equalRows: inStep - othersInStep, equalProtected: othersInStep };
}

/** set-buckets on one side with the differing buckets (an int[] literal), or nothing for a step without checksums. */
export function setBuckets(step: PlanStep, side: 'source' | 'target', outcome: ChecksumOutcome | null): Sendable[] {
  if (outcome === null) return [];
  return [{ statement: statement(step, 'set-buckets', side), runtime: { 'differing buckets': `{${outcome.differing.join(',')}}` } }];
}
