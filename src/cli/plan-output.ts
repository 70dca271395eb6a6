import { PROBE_SLOW_LINK_MS } from '../compiler/compile-plan.js';
import type { Plan, PlanStatement } from '../compiler/plan-types.js';

/** Text safe inside a `--` comment line: line breaks and other control characters become escapes. */
function commentSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function paramComment(statement: PlanStatement): string[] {
  return statement.params.map(
    (p, i) =>
      commentSafe(
        `--   $${i + 1} = ${p.runtime ? `<${p.name}, supplied while running>` : p.value === null ? 'NULL' : `'${p.value.replace(/'/g, "''")}'`}${p.runtime ? '' : `  (${p.name})`}`,
      ),
  );
}

/** The plan as annotated SQL a DBA can read top to bottom. */
export function planSql(plan: Plan): string {
  const comment = (text: string): string => `-- ${commentSafe(text)}`;
  const out: string[] = [
    comment(`bisync plan ${plan.hash}`),
    comment(`config: ${plan.config}; state schema: ${plan.stateSchema}; ${plan.steps.length} step${plan.steps.length === 1 ? '' : 's'}`),
    comment('Parameters are listed above each statement; values are sent as $n parameters, never spliced into SQL.'),
    ...(plan.unplanned ?? []).map((u) => comment(`NOT PLANNED: ${u.table} ${u.direction} ${u.status}: ${u.reason}`)),
    ...plan.warnings.map((w) => comment(`warning: ${w.database}: ${w.message} (${w.hint})`)),
  ];
  plan.steps.forEach((step, i) => {
    out.push(
      '',
      comment('='.repeat(76)),
      comment(`Step ${i + 1}/${plan.steps.length}: ${step.table} ${step.direction}: ${step.source} ${step.sourceRelation} → ${step.target} ${step.targetRelation}`),
      comment(`mode: ${step.mode} — ${step.reason}`),
      comment(`write: ${step.write}; deletes: ${step.deletes}; columns: ${step.columns.map((c) => (c.source === c.target ? c.target : `${c.source}→${c.target}`)).join(', ')}`),
      ...step.warnings.map((w) => comment(`warning: ${w}`)),
      comment(`step hash: ${step.hash}`),
      comment('='.repeat(76)),
    );
    out.push('', comment(`Bootstrap on ${step.target}, only if ${plan.stateSchema}.state/runs/rejects/base/conflicts are missing:`));
    const probe = step.probe ?? [];
    for (const s of [...step.bootstrap, ...probe, ...step.statements]) {
      if (s === probe[0]) {
        out.push(
          '',
          comment(`The probe (${step.probeKind === 'checksum' ? 'its checksums summed over the table on each database' : 'the rows the read would take'}), run before any step, inside one transaction per database (BEGIN … COMMIT) shared with the other steps' probes.`),
          comment('When the probe finds nothing to do, the statements below do not run.'),
          comment(`apply --probe auto (the default) probes only over a slow link: a round trip of ${PROBE_SLOW_LINK_MS} ms or more to either database while the catalog was read; --probe always | never.`),
        );
      }
      if (s === step.statements[0]) out.push('', comment('The step:'));
      out.push('', comment(`[${s.side === 'source' ? step.source : step.target}] ${s.purpose}`), ...paramComment(s), `${s.sql};`);
    }
  });
  return `${out.join('\n')}\n`;
}

function waitingText(mode: string, n: number | null | undefined, source: string): string {
  if (typeof n === 'number') return `${n} on ${source} past the watermark`;
  return mode === 'full' ? 'not counted (full read)' : 'not counted';
}

/**
 * What the plan will do, before the SQL, Terraform-style: per step the direction, the mode and why,
 * how it writes and what it could delete; then the steps that cannot run. Plain text, for people.
 */
export function planSummary(plan: Plan, waiting: Readonly<Record<string, number | null>> = {}): string {
  const unplanned = plan.unplanned ?? [];
  const lines = [
    `bisync plan ${plan.hash.slice(0, 12)} (${plan.config}): ${plan.steps.length} step${plan.steps.length === 1 ? '' : 's'}${unplanned.length === 0 ? '' : `, ${unplanned.length} that cannot run`}`,
    '',
  ];
  plan.steps.forEach((step, i) => {
    const deletes =
      step.deletes === 'mirror'
        ? `deletes: mirror — after a full read, may delete rows on ${step.target} this direction owns that ${step.source} no longer has (refused above ${step.maxDeleteFraction * 100}% of them without --allow-deletes)`
        : `deletes: keep — deletes nothing on ${step.target}`;
    lines.push(
      `  ${i + 1}. ${step.table} ${step.direction}: ${step.source} ${step.sourceRelation} → ${step.target} ${step.targetRelation}`,
      `     ${step.mode}: ${step.reason}`,
      `     rows waiting: ${waitingText(step.mode, waiting[`${step.table}/${step.direction}`], step.source)}`,
      `     writes: ${step.edits === 'both' ? 'three-way (edits: both)' : step.write === 'insert-only' ? 'insert-only (existing rows never overwritten)' : 'upsert (new rows inserted, owned rows updated when they differ)'}; ${deletes}`,
    );
  });
  for (const u of unplanned) lines.push(`  ! ${u.table} ${u.direction}: ${u.status === 'failed' ? 'cannot run' : 'skipped'}: ${u.reason}`);
  for (const w of plan.warnings) lines.push(`  warning: ${w.database}: ${w.message}`, `    hint: ${w.hint}`);
  lines.push('', 'The SQL each step runs follows (bisync plan --format sql prints only the SQL).', '');
  return lines.join('\n');
}
