import { compilePlan } from '../compiler/compile-plan.js';
import type { CompileOptions } from '../compiler/compile-plan.js';
import type { Plan } from '../compiler/plan-types.js';
import type { ResolvedConfig } from '../config/types.js';
import { readCatalogs } from './validate.js';

/** `bisync plan`: introspect and read state (read-only), then compile. Writes nothing. */
export async function planCommand(config: ResolvedConfig, options: CompileOptions): Promise<Plan> {
  const { catalogs, state, xmin, pendingRejects } = await readCatalogs(config);
  return compilePlan(config, catalogs, state, { ...options, pendingRejects }, xmin);
}
