/**
 * edits: both: forward and reverse of one table run one at a time (SPEC §2.7, §7). A reverse step
 * locks, in its read transaction on its source, the state row the forward step locks there, and
 * keeps that transaction open until it has committed on its target (plan: pair-lock, read-only,
 * and the read's commit last). Both locks are NOWAIT, so two runs never wait on each other (no
 * deadlock): the one that comes second gets `locked` (exit 3) and changes nothing.
 *
 * Why the row lock in the read, and not an advisory lock or a transaction of its own: a
 * transaction of its own costs a connection per step (connections per run, SPEC §8); an advisory
 * lock can be taken by any role that can connect (a hostile one could hold it: exit 3 for every
 * run), and a session-level one outlives a transaction on a pooler in transaction mode. The state
 * row can only be locked by a role that can write bisync's state.
 */

/**
 * Whether a failed pair-lock statement found the lock held by the other direction (lock_not_available).
 * A serialization failure (the forward step committed a change to its state row after the read's
 * snapshot was taken, a moment before the lock) is thrown as it is: apply runs the step again
 * (a transient failure), with a new snapshot.
 */
export function pairLockHeld(error: unknown): boolean {
  return (error as { code?: unknown }).code === '55P03';
}

/** What a step that found the other direction running reports. */
export const PAIR_LOCKED = 'the forward step of this edits: both table is running in another run (forward and reverse of such a table run one at a time); nothing was changed, run again';

/** What an edits: both step whose own lock is held reports: that run may be this step's or the other direction's. */
export const PAIR_HELD = "another run holds this step's lock: the same step, or the other direction of this edits: both table (they run one at a time); nothing was changed, run again";
