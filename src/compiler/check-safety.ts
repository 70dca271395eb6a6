import type { Direction, ResolvedConfig, ResolvedTable } from '../config/types.js';
import type { Catalog, CatalogReference, CatalogRowSecurity, CatalogTable } from './catalog.js';
import type { LiveProblem } from './check-catalog.js';

/** What a step's role may do to a table under row-level security. */
export interface RowSecurityFinding {
  /** RLS filters this role's reads and writes (not owner, not BYPASSRLS, not superuser). */
  readonly applies: boolean;
  readonly canRead: boolean;
  readonly canWrite: boolean;
}

/** How row-level security on one table applies to the role bisync connects as. */
export function rowSecurityFinding(rs: CatalogRowSecurity | undefined): RowSecurityFinding {
  const applies = rs !== undefined && rs.enabled && !rs.roleBypasses && (!rs.roleOwns || rs.forced);
  const allows = (cmd: string): boolean => rs === undefined || rs.policyCommands.includes(cmd) || rs.policyCommands.includes('*');
  return { applies, canRead: !applies || allows('r'), canWrite: !applies || allows('a') || allows('w') };
}

const ACTIONS: Readonly<Record<string, string>> = { c: 'CASCADE', n: 'SET NULL', d: 'SET DEFAULT', a: 'NO ACTION', r: 'RESTRICT' };

/** `ON DELETE CASCADE` etc. for a pg_constraint.confdeltype letter. */
export function deleteAction(letter: string): string {
  return ACTIONS[letter] ?? letter;
}

/** Every reference in the tree, depth first, with its depth (1 = references the table itself). */
export function flattenReferences(refs: readonly CatalogReference[], depth = 1): { ref: CatalogReference; depth: number }[] {
  return refs.flatMap((ref) => [{ ref, depth }, ...flattenReferences(ref.children, depth + 1)]);
}

const GRANT_HINT = (role: string, relation: string): string =>
  `let bisync's role see and write every row: ALTER ROLE ${role} BYPASSRLS (as a superuser), or CREATE POLICY bisync_all ON ${relation} TO ${role} USING (true) WITH CHECK (true)`;

/**
 * Live checks that are about safety rather than shape (SPEC §2.1, §2.6): row-level security that
 * hides rows from bisync's role, and, for `deletes: mirror`, the foreign keys and triggers a delete
 * would set off. `errors` make a plan impossible (a step would silently read or write nothing);
 * `warnings` are reported by `validate --live` and `plan` and do not stop a run.
 */
export function checkSafety(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>): { errors: LiveProblem[]; warnings: LiveProblem[] } {
  const errors: LiveProblem[] = [];
  const warnings: LiveProblem[] = [];
  for (const table of config.tables) {
    for (const direction of table.directions) {
      const { from, to } = direction === 'forward' ? config.forward : config.reverse;
      const source = catalogs[from]?.tables[table.name];
      const target = catalogs[to]?.tables[table.name];
      if (source === null || source === undefined || target === null || target === undefined) continue;
      const report = (list: LiveProblem[], database: string, t: CatalogTable, message: string, hint?: string): void => {
        const relation = `${t.schema}.${t.name}`;
        if (list.some((p) => p.table === table.name && p.database === database && p.message === message)) return;
        list.push({ table: table.name, database, relation, location: table.location, message, ...(hint === undefined ? {} : { hint }) });
      };
      const read = rowSecurityFinding(source.rowSecurity);
      if (read.applies) {
        const role = source.rowSecurity?.role ?? 'bisync';
        if (!read.canRead) {
          report(errors, from, source, `row-level security is enabled and no policy lets role ${role} read it: ${direction} would silently read 0 rows`, GRANT_HINT(role, `${source.schema}.${source.name}`));
        } else {
          report(warnings, from, source, `row-level security is enabled for role ${role}: ${direction} reads only the rows its policies show, and rows they hide never sync`, GRANT_HINT(role, `${source.schema}.${source.name}`));
        }
      }
      const write = rowSecurityFinding(target.rowSecurity);
      if (write.applies) {
        const role = target.rowSecurity?.role ?? 'bisync';
        const what = write.canWrite
          ? `${direction} writes only rows its policies allow (others are rejected with 42501), and its guard cannot count rows they hide`
          : `no policy lets role ${role} insert or update it: every row ${direction} writes would be rejected, and its guard cannot count rows they hide`;
        report(write.canWrite ? warnings : errors, to, target, `row-level security is enabled for role ${role}: ${what}`, GRANT_HINT(role, `${target.schema}.${target.name}`));
      }
      if (table.deletes === 'mirror' && direction === 'forward') mirrorWarnings(table, direction, to, target, (m, h) => report(warnings, to, target, m, h));
    }
  }
  return { errors, warnings };
}

function mirrorWarnings(table: ResolvedTable, direction: Direction, database: string, target: CatalogTable, warn: (message: string, hint?: string) => void): void {
  const originColumn = table.origin?.column;
  for (const { ref, depth } of flattenReferences(target.referencedBy ?? [])) {
    const owned = originColumn !== undefined && ref.tableColumns.includes(originColumn);
    warn(
      `deletes: mirror: ${ref.schema}.${ref.table} references ${depth === 1 ? 'it' : 'it indirectly'} ON DELETE ${deleteAction(ref.onDelete)} (${ref.name}); ` +
        `${direction} keeps a row while any referencing row ${owned ? `not marked ${table.origin?.forward ?? ''} in ${originColumn}` : '(that table has no origin column, so none is provably its own)'} depends on it, and reports the rows it kept`,
      owned ? undefined : `add the origin column ${originColumn ?? 'source'} to ${ref.schema}.${ref.table} if ${direction} may delete its rows with their parent`,
    );
  }
  for (const trigger of target.userTriggers ?? []) {
    warn(
      `deletes: mirror: trigger ${trigger} runs on the rows ${direction} writes and deletes; if it removes or changes rows the other side owns, the guard rolls the step back (exit 4), and its other effects are not checked`,
      'make sure the trigger leaves rows of the other side alone, or use deletes: keep',
    );
  }
}
