import type { ListedTable } from '../compiler/catalog.js';
import { compareText } from './detect-columns.js';
import type { Side, TableProposal } from './propose-tables.js';

export interface BrokenDependency {
  /** The table whose `after` leaves `parent` out. */
  readonly child: string;
  readonly parent: string;
  /** The cycle as config names, starting at `child`, each referencing the next; the last references `child`. */
  readonly cycle: readonly string[];
  /** Whether every foreign key behind the left-out edge allows NULL (a row can be written before its parent). */
  readonly nullable: boolean;
  /** The referencing columns behind the left-out edge, as `table.column`. */
  readonly via: readonly string[];
  /** The kept edge that closes the cycle at `child` (the last table of `cycle` referencing `child`). */
  readonly closing: { readonly child: string; readonly via: readonly string[]; readonly nullable: boolean } | null;
}

export interface TableOrder {
  /** Config names, every table after the tables it references (ties broken by name). */
  readonly order: string[];
  /** Each table's `after`: the proposed tables its foreign keys (on either side) reference, in file order. */
  readonly after: ReadonlyMap<string, string[]>;
  readonly broken: BrokenDependency[];
  /** Per table, per side: tables its foreign keys reference that are not proposed (so not synced). */
  readonly unsynced: ReadonlyMap<string, Readonly<Record<Side, string[]>>>;
}

interface Edge {
  readonly child: string;
  readonly parent: string;
  /** Some foreign key behind it has NOT NULL columns: the child row cannot exist without the parent. */
  hard: boolean;
  /** The referencing columns of its foreign keys, as `table.column` (each once). */
  readonly via: string[];
}

/**
 * `after` from the foreign keys between the proposed tables, on either database. Cycles are broken
 * by adding edges one at a time, NOT NULL foreign keys first, then by name, and leaving out any edge
 * that would close a cycle: the result is the same every time, and a nullable reference is the one
 * given up where there is a choice.
 */
export function orderTables(tables: readonly TableProposal[]): TableOrder {
  const names = tables.map((t) => t.name).sort(compareText);
  const bySideTable: Record<Side, Map<string, string>> = { desktop: new Map(), cloud: new Map() };
  for (const t of tables) {
    bySideTable.desktop.set(relationKey(t.desktop), t.name);
    bySideTable.cloud.set(relationKey(t.cloud), t.name);
  }
  const edges = new Map<string, Edge>();
  const unsynced = new Map<string, Record<Side, string[]>>();
  for (const t of tables) {
    const missing: Record<Side, string[]> = { desktop: [], cloud: [] };
    for (const side of ['desktop', 'cloud'] as const) {
      const notNull = new Set(t[side].columns.filter((c) => c.notNull).map((c) => c.name));
      for (const fk of t[side].foreignKeys) {
        const parent = bySideTable[side].get(`${fk.refSchema}\0${fk.refTable}`);
        if (parent === undefined) {
          const label = fk.refSchema === t[side].schema ? fk.refTable : `${fk.refSchema}.${fk.refTable}`;
          if (!missing[side].includes(label)) missing[side].push(label);
          continue;
        }
        // A table referencing itself needs no order: one statement inserts parent and child rows.
        if (parent === t.name) continue;
        const key = `${t.name}\0${parent}`;
        const edge = edges.get(key) ?? { child: t.name, parent, hard: false, via: [] };
        edge.hard ||= fk.columns.every((c) => notNull.has(c));
        const via = `${t.name}.${fk.columns.join(', ')}`;
        if (!edge.via.includes(via)) edge.via.push(via);
        edges.set(key, edge);
      }
      missing[side].sort(compareText);
    }
    if (missing.desktop.length > 0 || missing.cloud.length > 0) unsynced.set(t.name, missing);
  }

  const kept = new Map<string, string[]>(names.map((n) => [n, []]));
  const broken: BrokenDependency[] = [];
  const candidates = [...edges.values()].sort(
    (a, b) => Number(b.hard) - Number(a.hard) || compareText(a.child, b.child) || compareText(a.parent, b.parent),
  );
  for (const edge of candidates) {
    const path = pathBetween(kept, edge.parent, edge.child);
    if (path === undefined) kept.get(edge.child)?.push(edge.parent);
    else {
      const cycle = [edge.child, ...path.slice(0, -1)];
      const closing = edges.get(`${cycle[cycle.length - 1] ?? ''}\0${edge.child}`);
      broken.push({
        child: edge.child,
        parent: edge.parent,
        cycle,
        nullable: !edge.hard,
        via: edge.via,
        closing: closing === undefined ? null : { child: closing.child, via: closing.via, nullable: !closing.hard },
      });
    }
  }

  // Kahn's algorithm over the acyclic remainder, taking the smallest ready name each time.
  const order: string[] = [];
  const placed = new Set<string>();
  while (order.length < names.length) {
    const ready = names.find((n) => !placed.has(n) && (kept.get(n) ?? []).every((p) => placed.has(p)));
    if (ready === undefined) throw new Error('table order: a dependency cycle survived');
    order.push(ready);
    placed.add(ready);
  }
  const position = new Map(order.map((n, i) => [n, i]));
  const after = new Map<string, string[]>();
  for (const name of names) {
    after.set(name, [...(kept.get(name) ?? [])].sort((a, b) => (position.get(a) ?? 0) - (position.get(b) ?? 0)));
  }
  return { order, after, broken, unsynced };
}

/** The chain of references from `from` to `to` in `graph` (both ends included), if there is one. */
function pathBetween(graph: ReadonlyMap<string, readonly string[]>, from: string, to: string): string[] | undefined {
  const seen = new Set<string>();
  const walk = (node: string): string[] | undefined => {
    if (node === to) return [node];
    if (seen.has(node)) return undefined;
    seen.add(node);
    for (const next of [...(graph.get(node) ?? [])].sort(compareText)) {
      const rest = walk(next);
      if (rest !== undefined) return [node, ...rest];
    }
    return undefined;
  };
  return walk(from);
}

function relationKey(t: ListedTable): string {
  return `${t.schema}\0${t.name}`;
}
