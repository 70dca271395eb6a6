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
      comment(`step hash: ${step.hash}`),
      comment('='.repeat(76)),
    );
    out.push('', comment(`Bootstrap on ${step.target}, only if ${plan.stateSchema}.state/runs/rejects/base/conflicts are missing:`));
    for (const s of [...step.bootstrap, ...step.statements]) {
      if (s === step.statements[0]) out.push('', comment('The step:'));
      out.push('', comment(`[${s.side === 'source' ? step.source : step.target}] ${s.purpose}`), ...paramComment(s), `${s.sql};`);
    }
  });
  return `${out.join('\n')}\n`;
}
