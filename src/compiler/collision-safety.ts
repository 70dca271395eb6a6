import type { Direction, ResolvedTable } from '../config/types.js';
import type { StepMode } from './plan-types.js';

/** How a step keeps the collision promise of SPEC §7 under edits: owner. */
export interface CollisionSafety {
  /**
   * Reverse `write: upsert` under edits: owner: a row on T that bisync did not write (no base
   * entry on T for its key) and that differs is parked as an `insert-insert` conflict, never
   * overwritten; every row the step writes or finds equal is recorded in T's base.
   */
  readonly collisionSafe: boolean;
  /**
   * The step's state row predates the base (an earlier bisync): this run reads in full once and
   * takes the rows both sides hold as written by bisync (as before), recording them, so an upgrade
   * does not turn every later phone edit of an old row into a false conflict.
   */
  readonly adopting: boolean;
}

/** Which steps keep T's base for collision safety, and whether this run is the once-only adoption. */
export function collisionSafety(table: ResolvedTable, direction: Direction, hasUpdatable: boolean, untracked: boolean): CollisionSafety {
  // Without a column to update, an existing key is never overwritten: nothing to protect.
  const collisionSafe = direction === 'reverse' && table.edits !== 'both' && hasUpdatable && table.write.reverse !== 'insert-only';
  return { collisionSafe, adopting: collisionSafe && untracked };
}

/** The mode of an adopting step: always a full read, so every row both sides hold is recorded at once. */
export function adoptionMode(targetName: string): { mode: StepMode; reason: string } {
  return {
    mode: 'full',
    reason: `collision safety: ${targetName}'s state is from a bisync that did not record which rows it wrote there; every row is read once, and the rows both sides hold are recorded as written by bisync (a differing one is overwritten as before)`,
  };
}
