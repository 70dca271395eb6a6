import type { TableVerifyResult, VerifyReport } from '../commands/verify.js';
import type { Finding } from '../commands/verify-drift.js';
import { renderTable } from './render.js';

/** `job_id=42`, or `(a=1, b="x y")` for a composite key. */
export function formatKey(key: Readonly<Record<string, string | null>>): string {
  const parts = Object.entries(key).map(([name, value]) => `${name}=${value === null ? 'NULL' : /^[\w.:+-]+$/.test(value) ? value : JSON.stringify(value)}`);
  return parts.length === 1 ? (parts[0] ?? '') : `(${parts.join(', ')})`;
}

function count(t: TableVerifyResult, kind: Finding['kind'], database: string | null): string {
  const found = t.findings.find((f) => f.kind === kind && f.database === database);
  return t.status === 'failed' ? '-' : String(found?.count ?? 0);
}

/** The human report of `bisync verify`: the rules, a table per table, then the drifted keys. */
export function verifyText(report: VerifyReport): string {
  const { from, to } = report;
  const lines = [`bisync verify: ${from} (forward source) ↔ ${to} (forward target). Nothing is written to either database.`, ...report.rules.map((r) => `  · ${r}`), ''];
  const rows = [
    ['table', 'result', `${from} rows`, `${to} rows`, 'in step', `missing on ${to}`, `extra on ${to}`, `unmarked on ${to}`, `missing on ${from}`, 'differs', 'cursor missed', 'other side owns, differs', 'not synced'],
    ...report.tables.map((t) => [
      t.table,
      t.status === 'in-step' ? 'in step' : t.status === 'drift' ? 'DRIFT' : 'FAILED',
      t.status === 'failed' ? '-' : String(t.rows[from] ?? 0),
      t.status === 'failed' ? '-' : String(t.rows[to] ?? 0),
      t.status === 'failed' ? '-' : String(t.inStep),
      count(t, 'missing', to),
      count(t, 'extra', to),
      count(t, 'unmarked', to),
      count(t, 'missing', from),
      count(t, 'differs', null),
      t.status === 'failed' ? '-' : String(t.findings.filter((f) => f.kind === 'cursor-missed').reduce((n, f) => n + f.count, 0)),
      count(t, 'protected-differs', null),
      count(t, 'not-synced', null),
    ]),
  ];
  lines.push(renderTable(rows));
  for (const t of report.tables) {
    if (t.status === 'failed') {
      lines.push('', `${t.table}: could not be compared: ${t.error ?? 'unknown error'}`);
      continue;
    }
    const listed = t.findings.filter((f) => f.count > 0 && f.kind !== 'not-synced');
    if (listed.length === 0) continue;
    const origin = t.origin === null ? 'no origin rule' : `origin ${t.origin.column}: ${t.origin.forward} = ${from}, ${t.origin.reverse} = ${to}`;
    lines.push('', `${t.table} (${t.directions.join(' and ')}; ${origin}; deletes: ${t.deletes}): ${t.drifted} drifted row${t.drifted === 1 ? '' : 's'}`);
    for (const f of listed) {
      const more = f.count > f.keys.length ? ` … and ${f.count - f.keys.length} more (the first ${f.keys.length} by key are listed)` : '';
      lines.push(`  ${f.label} (${f.count}): ${f.keys.map(formatKey).join(', ')}${more}`);
    }
    for (const note of t.notes) lines.push(`  note: ${note}`);
  }
  const drifting = report.tables.filter((t) => t.status !== 'in-step');
  const total = report.tables.reduce((n, t) => n + t.drifted, 0);
  lines.push(
    '',
    drifting.length === 0
      ? `In step: ${report.tables.length} table${report.tables.length === 1 ? '' : 's'} compared, no drift.`
      : `Drift: ${drifting.length} of ${report.tables.length} table${report.tables.length === 1 ? '' : 's'} (${total} drifted row${total === 1 ? '' : 's'}${drifting.some((t) => t.status === 'failed') ? '; some tables could not be compared' : ''}).`,
  );
  return lines.join('\n');
}
