import type { ApplyReport } from '../commands/apply.js';
import { renderTable } from './render.js';

/** The per-step summary of `bisync apply` (SPEC §3). */
export function applyText(report: ApplyReport): string {
  const rows = [
    ['table', 'direction', 'status', 'mode', 'read', 'inserted', 'updated', 'unchanged', 'protected', 'rejected', 'deleted', 'seconds'],
    ...report.steps.map((s) => [
      s.table,
      s.direction,
      s.status,
      s.mode,
      String(s.read),
      String(s.inserted),
      String(s.updated),
      String(s.unchanged),
      String(s.protected),
      String(s.rejected),
      String(s.deleted),
      (s.durationMs / 1000).toFixed(2),
    ]),
  ];
  const lines = [
    `${report.dryRun ? 'DRY RUN (one transaction per database, rolled back at the end) — ' : ''}run ${report.runId}, plan ${report.planHash.slice(0, 12)}`,
    renderTable(rows),
  ];
  for (const s of report.steps) {
    if (s.error !== undefined) lines.push(`${s.table} ${s.direction} ${s.status}: ${s.error}`);
    else if (s.status === 'locked') lines.push(`${s.table} ${s.direction}: ${s.error ?? 'another bisync run holds this step; nothing changed'}`);
    if (s.sequenceWarning !== undefined) lines.push(`${s.table} ${s.direction}: ${s.sequenceWarning}`);
    if (s.unmarked > 0) lines.push(`${s.table} ${s.direction}: ${s.unmarked} unmarked row${s.unmarked === 1 ? '' : 's'} on the target (origin column NULL) the source does not have: never deleted, never sent; set their marker`);
    if (s.deletedKeys !== undefined) {
      const more = s.deleted > s.deletedKeys.length ? `, and ${s.deleted - s.deletedKeys.length} more` : '';
      lines.push(`${s.table} ${s.direction}: deletes: mirror ${report.dryRun ? 'would delete' : 'deleted'} ${s.deletedKeys.join(', ')}${more}`);
    }
    if (s.kept !== undefined) {
      lines.push(
        `${s.table} ${s.direction}: deletes: mirror kept ${s.kept.count} row${s.kept.count === 1 ? '' : 's'} that rows the other side owns still reference (${s.kept.keys.join(', ')}${s.kept.count > s.kept.keys.length ? ', …' : ''})`,
      );
    }
    if (s.retried > 0) lines.push(`${s.table} ${s.direction}: retried ${s.retried} earlier reject${s.retried === 1 ? '' : 's'}`);
    if (report.dryRun && s.inserted > 0 && s.sequenceDefaults !== undefined && s.sequenceDefaults.length > 0) {
      lines.push(
        `${s.table} ${s.direction}: the dry run drew ${s.inserted} value${s.inserted === 1 ? '' : 's'} from the sequence of ${s.sequenceDefaults.join(', ')}; ` +
          'PostgreSQL does not roll sequences back, so the real run numbers its rows after them',
      );
    }
    const insertOnly = s.conflicts - s.parked;
    if (s.parked > 0) {
      const why = s.edits === 'both' ? 'edited on both sides and parked' : 'the same key made on both sides: parked, a row bisync did not write is never overwritten';
      lines.push(`${s.table} ${s.direction}: ${s.parked} conflict${s.parked === 1 ? '' : 's'} (${why}; see bisync conflicts --table ${s.table})`);
    }
    if (insertOnly > 0) lines.push(`${s.table} ${s.direction}: ${insertOnly} conflict${insertOnly === 1 ? '' : 's'} (insert-only; see rejects with reason conflict)`);
  }
  const noWrites = report.steps.every((s) => s.inserted + s.updated + s.deleted === 0);
  if (noWrites && report.steps.every((s) => s.status === 'succeeded' && s.rejected === 0)) lines.push('Nothing to write: both sides were already in step.');
  return lines.join('\n');
}
