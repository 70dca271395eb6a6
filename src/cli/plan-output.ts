import type { Plan, PlanStatement } from '../compiler/plan-types.js';

function paramComment(statement: PlanStatement): string[] {
  return statement.params.map(
    (p, i) => `--   $${i + 1} = ${p.runtime ? `<${p.name}, supplied while running>` : p.value === null ? 'NULL' : `'${p.value.replace(/'/g, "''")}'`}${p.runtime ? '' : `  (${p.name})`}`,
  );
}

/** The plan as annotated SQL a DBA can read top to bottom. */
export function planSql(plan: Plan): string {
  const out: string[] = [
    `-- bisync plan ${plan.hash}`,
    `-- config: ${plan.config}; state schema: ${plan.stateSchema}; ${plan.steps.length} step${plan.steps.length === 1 ? '' : 's'}`,
    '-- Parameters are listed above each statement; values are sent as $n parameters, never spliced into SQL.',
  ];
  plan.steps.forEach((step, i) => {
    out.push(
      '',
      `-- ${'='.repeat(76)}`,
      `-- Step ${i + 1}/${plan.steps.length}: ${step.table} ${step.direction}: ${step.source} ${step.sourceRelation} → ${step.target} ${step.targetRelation}`,
      `-- mode: ${step.mode} — ${step.reason}`,
      `-- write: ${step.write}; deletes: ${step.deletes}; columns: ${step.columns.map((c) => (c.source === c.target ? c.target : `${c.source}→${c.target}`)).join(', ')}`,
      `-- step hash: ${step.hash}`,
      `-- ${'='.repeat(76)}`,
    );
    out.push('', `-- Bootstrap on ${step.target}, only if ${plan.stateSchema}.state/runs/rejects are missing:`);
    for (const s of [...step.bootstrap, ...step.statements]) {
      if (s === step.statements[0]) out.push('', `-- The step:`);
      out.push('', `-- [${s.side === 'source' ? step.source : step.target}] ${s.purpose}`, ...paramComment(s), `${s.sql};`);
    }
  });
  return `${out.join('\n')}\n`;
}
