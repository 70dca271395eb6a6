import { describe, expect, it } from 'vitest';
import { planSql } from '../../src/cli/plan-output.js';
import type { Plan, PlanStep } from '../../src/compiler/plan-types.js';

describe('printed plans', () => {
  it('names with line breaks cannot break out of a comment line into runnable SQL', () => {
    const hostile = 'x\nDROP TABLE victim;\r\n--';
    const step = {
      table: hostile,
      direction: 'forward',
      source: 'desktop',
      target: 'cloud',
      sourceRelation: `public.${hostile}`,
      targetRelation: `public.${hostile}`,
      stateSchema: 'bisync',
      after: [],
      mode: 'full',
      reason: hostile,
      watermark: null,
      columns: [{ source: hostile, target: hostile, type: 'text' }],
      write: 'upsert',
      deletes: 'keep',
      maxDeleteFraction: 0.1,
      warnings: [hostile],
      bootstrap: [],
      statements: [{ kind: 'read-state', side: 'target', purpose: hostile, sql: 'SELECT 1', params: [{ name: hostile, value: hostile, runtime: false }] }],
      hash: 'h',
    } as unknown as PlanStep;
    const plan: Plan = { version: 1, config: `c${hostile}.yaml`, stateSchema: 'bisync', steps: [step], warnings: [{ database: hostile, message: hostile, hint: hostile }], hash: 'p' };

    const lines = planSql(plan).split('\n');

    expect(lines.filter((l) => /DROP TABLE victim/.test(l) && !l.startsWith('--'))).toEqual([]);
    expect(lines.filter((l) => l !== '' && !l.startsWith('--'))).toEqual(['SELECT 1;']);
  });
});
