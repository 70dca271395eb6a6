import type { StepResult } from '../executor/run-step.js';

/** The one line an unattended run ends with: what needs its owner, at the level that matches. */
export interface FinalLine {
  level: 'info' | 'warn' | 'error';
  message: string;
}

/** What in this run needs its owner, one sentence per step and kind (empty when nothing does). */
export function applyAttention(steps: readonly StepResult[], dryRun: boolean): string[] {
  const out: string[] = [];
  for (const s of steps) {
    const name = `${s.table} ${s.direction}`;
    if (s.status === 'failed' || s.status === 'refused' || s.status === 'replan') out.push(`${name} ${s.status === 'replan' ? 'failed' : s.status}: ${s.error ?? 'the watermark kept moving while planning'}`);
    else if (s.status === 'interrupted') out.push(`${name} interrupted: ${s.error === 'not started: the run was interrupted' ? 'not started' : 'rolled back'}`);
    else if (s.status === 'skipped') out.push(`${name} skipped: ${s.error ?? ''}`);
    else if (s.status === 'locked') out.push(`${name}: ${s.error ?? 'another run holds its lock'}; skipped`);
    // insert-only conflicts are counted in rejected too; parked conflicts only in conflicts.
    const insertOnly = s.conflicts - s.parked;
    const errors = Math.max(0, s.rejected - insertOnly);
    if (errors > 0) out.push(`${name}: ${errors} row${errors === 1 ? '' : 's'} rejected${dryRun ? ' (dry run)' : ''} (bisync rejects --table ${s.table})`);
    if (insertOnly > 0) out.push(`${name}: ${insertOnly} conflict${insertOnly === 1 ? '' : 's'}${dryRun ? ' (dry run)' : ''}  (bisync rejects --table ${s.table})`);
    if (s.parked > 0) out.push(`${name}: ${s.parked} conflict${s.parked === 1 ? '' : 's'}${dryRun ? ' (dry run)' : ''}  (parked: bisync conflicts --table ${s.table})`);
    if (s.unmarked > 0) out.push(`${name}: ${s.unmarked} unmarked row${s.unmarked === 1 ? '' : 's'} on the target (bisync verify --table ${s.table})`);
  }
  return out;
}

/** The final log line of `apply`: error when the exit code is not 0, warn when rows need the owner, else info. */
export function applyFinalLine(steps: readonly StepResult[], attention: readonly string[], exitCode: number, dryRun: boolean, interruptedBy?: string): FinalLine {
  const run = dryRun ? 'bisync apply --dry-run' : 'bisync apply';
  if (interruptedBy !== undefined) {
    const list = (status: string, notStarted: boolean): string =>
      steps
        .filter((s) => s.status === status && (status !== 'interrupted' || (s.error === 'not started: the run was interrupted') === notStarted))
        .map((s) => `${s.table} ${s.direction}`)
        .join(', ') || 'none';
    return {
      level: 'error',
      message: `${run}: interrupted by ${interruptedBy}: committed: ${list('succeeded', false)}; rolled back: ${list('interrupted', false)}; not started: ${list('interrupted', true)} (exit ${exitCode})`,
    };
  }
  if (attention.length === 0) {
    return { level: 'info', message: `${run}: ${steps.length} step${steps.length === 1 ? '' : 's'} succeeded; nothing needs you (exit 0)` };
  }
  return { level: exitCode === 0 ? 'warn' : 'error', message: `${run}: needs you: ${attention.join('; ')} (exit ${exitCode})` };
}
