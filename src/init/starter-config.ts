import { Document, isScalar, visit } from 'yaml';
import type { Node, Scalar, YAMLMap, YAMLSeq } from 'yaml';
import type { TableDirection } from '../config/types.js';
import type { DatabaseListing } from '../compiler/catalog.js';
import { compareText, ORIGIN_NAMES } from './detect-columns.js';
import { proposeTables, SIDES } from './propose-tables.js';
import type { Side, SkippedTable, TableProposal } from './propose-tables.js';
import { orderTables } from './table-order.js';
import type { BrokenDependency } from './table-order.js';

/** The state schema a starter config names; `init` leaves tables in it out. */
export const INIT_STATE_SCHEMA = 'bisync';

/** Placeholder ownership markers (the spec's example); `init` never reads a row to learn the real ones. */
const ORIGIN_FORWARD = 'D';
const ORIGIN_REVERSE = 'M';
const COMMENT_WIDTH = 98;

export interface StarterConfig {
  /** The YAML file. */
  readonly text: string;
  /** In file order. */
  readonly tables: readonly {
    readonly name: string;
    readonly direction: TableDirection;
    readonly primaryKey: readonly string[];
    /** The cloud's origin column, and whether an insert without a marker leaves it NULL-able or default-less. */
    readonly origin: { readonly column: string; readonly allowsNull: boolean; readonly hasDefault: boolean } | null;
  }[];
  readonly skipped: readonly SkippedTable[];
  readonly onlyOn: Readonly<Record<Side, string[]>>;
  /** How many `GUESS:` comments the file holds. */
  readonly guesses: number;
}

/**
 * A starter config from the catalogs of both databases: the tables both have, with keys, cursor
 * columns, the origin rule and `after` from foreign keys, and comments wherever it had to guess.
 * Pure: the same listings always give the same bytes.
 */
export function starterConfig(
  listings: Readonly<Record<Side, DatabaseListing>>,
  /** Where the JSON Schema is, as the written file should reference it (a path relative to it). */
  schemaRef = './schema/sync.config.schema.json',
  /** Databases not on this machine: written with ssl: verify-full and a CA from the environment. */
  remote: Readonly<Record<Side, boolean>> = { desktop: false, cloud: false },
): StarterConfig {
  const proposals = proposeTables(listings);
  const { order, after, broken, unsynced } = orderTables(proposals.tables);
  const byName = new Map(proposals.tables.map((t) => [t.name, t]));
  const tables = order.map((n) => byName.get(n)).filter((t): t is TableProposal => t !== undefined);
  const orderNotes = new Map<string, string[]>();
  for (const b of broken) {
    const notes = orderNotes.get(b.child) ?? [];
    notes.push(cycleNote(b));
    orderNotes.set(b.child, notes);
  }
  for (const [name, missing] of unsynced) {
    const where = SIDES.filter((side) => missing[side].length > 0).map((side) => `${side}: ${missing[side].join(', ')}`);
    const notes = orderNotes.get(name) ?? [];
    notes.push(`foreign keys reference tables this file does not sync (${where.join('; ')}): a row whose parent is missing on the other side is rejected, and retried on later runs, until that parent arrives`);
    orderNotes.set(name, notes);
  }

  const origin = hoistedOrigin(tables);
  const timestamps = hoistedTimestamps(tables);

  const defaults: Record<string, unknown> = {};
  if (origin !== null) defaults.origin = { column: origin, forward: ORIGIN_FORWARD, reverse: ORIGIN_REVERSE };
  defaults.lookback = '5s';
  if (timestamps !== null) defaults.timestamps = timestamps;

  const doc = new Document({
    version: 1,
    databases: { desktop: databaseEntry('desktop', remote.desktop), cloud: databaseEntry('cloud', remote.cloud) },
    forward: { from: 'desktop', to: 'cloud' },
    state: { schema: INIT_STATE_SCHEMA },
    defaults,
    tables: tables.map((t) => tableEntry(t, after.get(t.name) ?? [], origin, timestamps !== null)),
  });

  doc.commentBefore = comment([
    `yaml-language-server: $schema=${schemaRef}`,
    '',
    'Starter config written by `bisync init` from the catalogs of both databases (it read no rows).',
    'Review it before the first sync: lines marked GUESS are inferences from names and constraints.',
    '',
    '  bisync validate --live    check this file and both databases',
    '  bisync plan               show the SQL each step would run; writes nothing',
    '  bisync apply              sync: forward (desktop -> cloud), then reverse (cloud -> desktop)',
  ]);
  const root = doc.contents as YAMLMap;
  for (const key of ['databases', 'forward', 'state', 'defaults', 'tables']) keyOf(root, key).spaceBefore = true;
  valueOf(doc, ['databases', 'desktop', 'url']).comment = ' secrets stay in the environment, never in this file';
  for (const side of SIDES) {
    if (remote[side]) {
      keyOf(valueOf(doc, ['databases', side]) as YAMLMap, 'ssl').commentBefore = comment([
        `${side} is not on this machine: TLS with its certificate checked, so no one on the way can pose as the server. Set ${caVariable(side)} to the server's CA certificate (Supabase: Project Settings → Database → SSL configuration → Download certificate).`,
      ]);
    } else if (side === 'cloud') {
      valueOf(doc, ['databases', side, 'url']).comment = ' no ssl: disable for localhost, require for other hosts; set ssl to override';
    }
  }
  const forward = valueOf(doc, ['forward']);
  (forward as YAMLMap).flow = true;
  forward.comment = ' reverse is always cloud -> desktop';
  valueOf(doc, ['state', 'schema']).comment = ' watermarks, run log and rejects; never in public';

  const defaultsMap = valueOf(doc, ['defaults']) as YAMLMap;
  if (origin !== null) {
    const count = tables.filter((t) => t.origin === origin).length;
    keyOf(defaultsMap, 'origin').commentBefore = comment([
      `GUESS: ${count} of ${tables.length} cloud tables have a text column \`${origin}\` the desktop tables lack: it is taken as the ownership column. ${ORIGIN_FORWARD} and ${ORIGIN_REVERSE} are placeholders: set them to the markers your applications write.`,
    ]);
    valueOf(doc, ['defaults', 'origin', 'forward']).comment = ` forward stamps ${ORIGIN_FORWARD}, and only ever updates rows carrying ${ORIGIN_FORWARD} (or NULL)`;
    valueOf(doc, ['defaults', 'origin', 'reverse']).comment = ` rows written on the cloud: forward never touches them, reverse sends them`;
  }
  valueOf(doc, ['defaults', 'lookback']).comment = ' re-read this far behind each watermark (late commits, clock skew)';
  if (timestamps !== null) {
    keyOf(defaultsMap, 'timestamps').commentBefore = comment([maintainedEverywhere(tables) ?? timestampsGuess]);
    for (const side of SIDES) if (Array.isArray(timestamps[side])) (valueOf(doc, ['defaults', 'timestamps', side]) as YAMLSeq).flow = true;
  }

  const tablesHeader = ['Run order: `after` dependencies (from foreign keys on either side), then file order.'];
  if (tables.some((t) => t.direction === 'both')) {
    tablesHeader.push(
      'GUESS: every table whose cloud side has the origin column syncs both ways. Make tables only the office maintains `direction: forward`, and set `reverse: { write: insert-only }` where both sides can create the same key.',
    );
  }
  if (timestamps === null && tables.some((t) => Object.keys(t.timestamps).length > 0)) tablesHeader.push(timestampsGuess);
  if (tables.some((t) => t.leftOutByTrigger.length > 0)) {
    tablesHeader.push(
      'Columns a BEFORE trigger sets on the database bisync writes (last_update = now(), a search tsvector, …) are left out of `columns`, with the trigger named: each side keeps what its own trigger writes. Synced, the trigger would replace the value bisync wrote, every run would find those rows different and rewrite them, and verify would report drift. To copy such columns exactly instead, see "Triggers on the written side" in the bisync README.',
    );
  }
  keyOf(root, 'tables').commentBefore = comment(tablesHeader);
  const items = (valueOf(doc, ['tables']) as YAMLSeq).items as YAMLMap[];
  items.forEach((item, i) => {
    const t = tables[i];
    if (t === undefined) return;
    if (i > 0) item.spaceBefore = true;
    const cursorNotes = timestamps !== null && maintainedEverywhere(tables) !== null ? [] : maintainedNotes(t);
    const notes = [...t.notes, ...cursorNotes, ...(orderNotes.get(t.name) ?? [])];
    if (notes.length > 0) item.commentBefore = comment(notes);
    for (const key of ['primary_key', 'after', 'timestamps', 'origin']) {
      const node = item.get(key, true) as Node | undefined;
      if (node !== undefined && !isScalar(node)) (node as YAMLMap | YAMLSeq).flow = true;
    }
  });

  doc.comment = trailer(proposals.skipped, proposals.onlyOn, proposals.platformSchemas);
  escapeDollars(doc);
  const text = doc.toString({ lineWidth: 0, flowCollectionPadding: false });
  return {
    text,
    tables: tables.map((t) => ({ name: t.name, direction: t.direction, primaryKey: t.primaryKey, origin: originColumn(t) })),
    skipped: proposals.skipped,
    onlyOn: proposals.onlyOn,
    guesses: text.split('GUESS:').length - 1,
  };
}

function caVariable(side: Side): string {
  return `${side.toUpperCase()}_CA_FILE`;
}

/** A database entry: its URL from the environment; for a remote host, ssl: verify-full and its CA. */
function databaseEntry(side: Side, remote: boolean): Record<string, string> {
  const url = `\${${side.toUpperCase()}_DATABASE_URL}`;
  return remote ? { url, ssl: 'verify-full', ca: `\${${caVariable(side)}}` } : { url };
}

/**
 * Every string value the loader interpolates, written so it reads back as itself: `$` becomes `$$`
 * (a table named `${CLOUD_DATABASE_URL}` must not turn into the cloud URL, nor `price$$hist` into
 * `price$hist`). Only the two URL placeholders are meant as references. YAML quoting is the
 * library's. Keys and comments are not interpolated.
 */
function escapeDollars(doc: Document): void {
  // By node, not by value: a table may well be named `${CLOUD_DATABASE_URL}`.
  const placeholders = new Set<unknown>(SIDES.flatMap((side) => ['url', 'ca'].map((key) => doc.getIn(['databases', side, key], true))));
  visit(doc, {
    Scalar: (key, node) => {
      if (key === 'key' || typeof node.value !== 'string' || placeholders.has(node)) return;
      node.value = node.value.split('$').join('$$');
    },
  });
}

/** Where `init` broke a foreign-key cycle, and why the order it chose lets rows arrive. */
function cycleNote(b: BrokenDependency): string {
  const chain = [...b.cycle, b.child].join(' → ');
  const via = b.via.join(' and ');
  const closing = b.closing;
  const why =
    closing === null
      ? ''
      : b.nullable && !closing.nullable
        ? ` ${closing.child} waits for ${b.child}, because ${closing.via.join(' and ')} is NOT NULL (no ${closing.child} row can exist before its ${b.child}), while ${via} allows NULL (a ${b.child} row can exist before the ${b.parent} row it references).`
        : b.nullable
          ? ` ${via} allows NULL, so a ${b.child} row can exist before the ${b.parent} row it references.`
          : ` Neither reference allows NULL, so the cycle is broken at ${via}, by name.`;
  return (
    `GUESS: foreign keys form a cycle (${chain}, each referencing the next); it is broken here: ${b.child} does not wait for ${b.parent}.${why}` +
    ` A ${b.child} row whose ${b.parent} row has not synced yet is rejected and retried on later runs, after ${b.parent} has run.` +
    ` Rows that close the cycle in the data (each referencing the other) cannot arrive in separate transactions in any order: see "Foreign-key cycles" in the bisync README`
  );
}

/** Comment lines naming the trigger that keeps each of a table's cursor columns. */
function maintainedNotes(t: TableProposal): string[] {
  return SIDES.flatMap((side) => (t.maintainedCursors[side] ?? []).map((m) => `on ${side}, cursor ${m.column} is set to the clock on every UPDATE by trigger ${m.trigger}`));
}

/** When every table's cursors are kept by the same triggers: one comment for `defaults.timestamps`. */
function maintainedEverywhere(tables: readonly TableProposal[]): string | null {
  const first = tables[0];
  if (first === undefined) return null;
  const same = (t: TableProposal): boolean =>
    SIDES.every((side) => JSON.stringify(t.maintainedCursors[side] ?? []) === JSON.stringify(first.maintainedCursors[side] ?? []) && (t.timestamps[side] ?? []).length === (t.maintainedCursors[side] ?? []).length);
  if (!tables.every(same)) return null;
  const describe = (side: Side): string => (first.maintainedCursors[side] ?? []).map((m) => `${m.column} (trigger ${m.trigger})`).join(', ');
  if (describe('desktop') === '' && describe('cloud') === '') return null;
  const parts =
    describe('desktop') === describe('cloud')
      ? [`on both sides, ${describe('desktop')}`]
      : SIDES.filter((side) => describe(side) !== '').map((side) => `on ${side}, ${describe(side)}`);
  return `cursor columns: on every table, a BEFORE UPDATE trigger sets them to the clock on every change (${parts.join('; ')}), so an incremental read sees every edit. A side without them is read by xmin (rows written since the last run).`;
}

const timestampsGuess =
  'GUESS: cursor columns found by name. They must change on every write (set by the application or a trigger), or incremental reads miss edits; remove them to read in full. A side without any is read by `xmin`: only rows written since the last run, by the transaction id PostgreSQL stamps on every row (no schema change; deletes are not seen, as with any cursor).';

function tableEntry(t: TableProposal, after: readonly string[], defaultOrigin: string | null, timestampsHoisted: boolean): Record<string, unknown> {
  const entry: Record<string, unknown> = { name: t.name, primary_key: [...t.primaryKey], direction: t.direction };
  if (after.length > 0) entry.after = [...after];
  if (!timestampsHoisted && Object.keys(orderedTimestamps(t)).length > 0) entry.timestamps = orderedTimestamps(t);
  if (t.origin === null && defaultOrigin !== null) entry.origin = false;
  else if (t.origin !== null && t.origin !== defaultOrigin) entry.origin = { column: t.origin, forward: ORIGIN_FORWARD, reverse: ORIGIN_REVERSE };
  if (t.columns !== null) entry.columns = [...t.columns];
  return entry;
}

/** The origin column most tables have, for `defaults` (a minority keeps its own, or `origin: false`). */
function hoistedOrigin(tables: readonly TableProposal[]): string | null {
  const counts = new Map<string, number>();
  for (const t of tables) if (t.origin !== null) counts.set(t.origin, (counts.get(t.origin) ?? 0) + 1);
  const rank = (name: string): number => {
    const i = ORIGIN_NAMES.indexOf(name.toLowerCase().replaceAll('_', ''));
    return i < 0 ? ORIGIN_NAMES.length : i;
  };
  const best = [...counts.entries()].sort((a, b) => b[1] - a[1] || rank(a[0]) - rank(b[0]) || compareText(a[0], b[0]))[0];
  return best !== undefined && best[1] * 2 > tables.length ? best[0] : null;
}

/** The cursor columns (or xmin), when every table has the same ones (and has some). */
function hoistedTimestamps(tables: readonly TableProposal[]): Partial<Record<Side, string[] | 'xmin'>> | null {
  const first = tables[0];
  if (first === undefined || Object.keys(orderedTimestamps(first)).length === 0) return null;
  const same = JSON.stringify(orderedTimestamps(first));
  return tables.every((t) => JSON.stringify(orderedTimestamps(t)) === same) ? orderedTimestamps(first) : null;
}

function orderedTimestamps(t: TableProposal): Partial<Record<Side, string[] | 'xmin'>> {
  const result: Partial<Record<Side, string[] | 'xmin'>> = {};
  for (const side of SIDES) {
    const columns = t.timestamps[side];
    if (columns !== undefined) result[side] = [...columns];
    else if (t.xmin.includes(side)) result[side] = 'xmin';
  }
  return result;
}

/** The comment at the end of the file: tables left out, and why. */
function trailer(skipped: readonly SkippedTable[], onlyOn: Readonly<Record<Side, string[]>>, platform: Readonly<Record<Side, string[]>>): string | null {
  const sections: string[][] = [];
  if (skipped.length > 0) {
    sections.push(['Not synced: on both databases, but bisync cannot sync them as they are:', ...skipped.map((s) => `- ${s.name}: ${s.reason}.`)]);
  }
  if (onlyOn.desktop.length > 0 || onlyOn.cloud.length > 0) {
    sections.push([
      'On one database only (tables are matched by schema and name):',
      ...SIDES.filter((side) => onlyOn[side].length > 0).map((side) => `- only on ${side}: ${onlyOn[side].join(', ')}`),
      'If one of them is the same table under another name on the other side, add it by hand:',
      '  - name: <cloud table>',
      '    desktop: { table: <desktop table> }',
      'and list its columns if they are named differently (see the worked example in the bisync README).',
    ]);
  }
  for (const side of SIDES) {
    if (platform[side].length > 0) {
      const many = platform[side].length > 1;
      sections.push([`Left out on ${side}: the schema${many ? 's' : ''} ${platform[side].join(', ')}, which the hosting platform (Supabase) manages.`]);
    }
  }
  return sections.length === 0 ? null : comment(sections.flatMap((lines, i) => (i === 0 ? lines : ['', ...lines])));
}

/** YAML comment text: each line wrapped, blank lines kept as a bare `#`. */
function comment(lines: readonly string[]): string {
  return lines.flatMap((line) => (line === '' ? [' '] : wrap(line).map((l) => ` ${l}`))).join('\n');
}

function wrap(line: string): string[] {
  if (line.length <= COMMENT_WIDTH) return [line];
  const indent = /^(- |\s*)/.exec(line)?.[0].replace('-', ' ') ?? '';
  const out: string[] = [];
  let current = '';
  for (const word of line.split(' ')) {
    if (current !== '' && current.length + 1 + word.length > COMMENT_WIDTH) {
      out.push(current);
      current = indent + word;
    } else {
      current = current === '' ? word : `${current} ${word}`;
    }
  }
  out.push(current);
  return out;
}

function keyOf(map: YAMLMap, key: string): Scalar {
  const pair = map.items.find((p) => isScalar(p.key) && p.key.value === key);
  if (pair === undefined || !isScalar(pair.key)) throw new Error(`starter config: no key ${key}`);
  return pair.key;
}

function valueOf(doc: Document, path: readonly string[]): Node {
  const node = doc.getIn(path, true) as Node | undefined;
  if (node === undefined) throw new Error(`starter config: nothing at ${path.join('.')}`);
  return node;
}

function originColumn(t: TableProposal): { column: string; allowsNull: boolean; hasDefault: boolean } | null {
  const c = t.origin === null ? undefined : t.cloud.columns.find((col) => col.name === t.origin);
  return c === undefined ? null : { column: c.name, allowsNull: !c.notNull, hasDefault: c.hasDefault };
}
