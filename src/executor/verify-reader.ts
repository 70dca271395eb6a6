import type pg from 'pg';
import type { VerifySide } from '../compiler/compile-verify.js';
import { bucketSums } from './bucket-sums.js';
import type { BucketSum } from './bucket-sums.js';
import { run } from './statements.js';


/** One row as verify compares it: hashes of its key and content, its key values as text, its origin. */
export interface VerifyRow {
  keyHash: string;
  key: (string | null)[];
  rowHash: string;
  /** The origin column's value as text (forward target only; undefined elsewhere). */
  origin?: string | null;
  /** True when its cursor value is older than the watermark (less lookback) of the direction reading this side. */
  behind?: boolean;
}

interface RowRow {
  key_hash: string;
  key: (string | null)[];
  row_hash: string;
  origin?: string | null;
  behind?: boolean | null;
}

/**
 * One database's side of a verify: a REPEATABLE READ READ ONLY snapshot held for the whole table,
 * bucket checksums, then the rows of chosen buckets streamed through a cursor in key-hash order.
 */
export class VerifyReader {
  private open = false;

  constructor(
    private readonly client: pg.ClientBase,
    private readonly side: VerifySide,
  ) {}

  async begin(): Promise<void> {
    await run(this.client, this.side.begin);
    this.open = true;
    await run(this.client, this.side.settings);
  }

  /** Non-empty buckets in bucket order. */
  async buckets(): Promise<BucketSum[]> {
    return bucketSums(await run(this.client, this.side.buckets));
  }

  /** The rows of `buckets`, in key-hash order, a cursor page at a time (memory does not grow with the table). */
  async *rows(buckets: readonly number[]): AsyncGenerator<VerifyRow[]> {
    await run(this.client, this.side.openRows, { 'differing buckets': buckets });
    for (;;) {
      const page = await run<RowRow>(this.client, this.side.fetchRows);
      if (page.rows.length === 0) return;
      yield page.rows.map((r) => ({
        keyHash: r.key_hash,
        key: r.key,
        rowHash: r.row_hash,
        ...(r.origin === undefined ? {} : { origin: r.origin }),
        ...(r.behind === true ? { behind: true } : {}),
      }));
    }
  }

  /** End the snapshot (it only read, so COMMIT and ROLLBACK are the same). */
  async end(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    await run(this.client, this.side.commit);
  }

  /** After a failure: roll back if a transaction is open; a broken connection is left to the caller. */
  async abort(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    await this.client.query('ROLLBACK').catch(() => undefined);
  }
}
