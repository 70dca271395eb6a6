import type { ConfigProblem } from '../errors.js';
import { sslFor, urlFacts } from './database-url.js';
import { parseDuration } from './duration.js';
import { didYouMean } from './suggest.js';
import type {
  ColumnPair,
  ConflictPolicy,
  Direction,
  QualifiedName,
  RawConfig,
  RawTableSettings,
  ResolvedConfig,
  ResolvedDatabase,
  ResolvedOrigin,
  ResolvedTable,
} from './types.js';
import type { KeyPath, YamlSource } from './yaml-source.js';

/** Keys a table (or `defaults`) may have besides per-database blocks. */
export const TABLE_KEYS = [
  'name',
  'primary_key',
  'direction',
  'after',
  'timestamps',
  'origin',
  'lookback',
  'lock_timeout',
  'statement_timeout',
  'columns',
  'deletes',
  'compare',
  'edits',
  'conflicts',
  'max_delete_fraction',
  'forward',
  'reverse',
] as const;

const DEFAULT_LOOKBACK = '5s';
// A step waits at most this long for a lock another session holds (then fails, and is retried),
// and no single statement runs longer: a run never hangs forever behind a table lock.
const DEFAULT_LOCK_TIMEOUT = '30s';
const DEFAULT_STATEMENT_TIMEOUT = '1h';
const DEFAULT_MAX_DELETE_FRACTION = 0.1;

/**
 * Keys of `defaults` and of each table that are neither table settings nor database names.
 * Checked before the schema so a typo reads "unknown key", not "must be an object".
 */
export function findUnknownTableKeys(raw: unknown, source: YamlSource): { problems: ConfigProblem[]; paths: KeyPath[] } {
  const problems: ConfigProblem[] = [];
  const paths: KeyPath[] = [];
  if (!isObject(raw)) return { problems, paths };
  const databases = isObject(raw.databases) ? Object.keys(raw.databases) : [];
  const allowed = new Set<string>([...TABLE_KEYS, ...databases]);
  for (const name of databases) {
    if ((TABLE_KEYS as readonly string[]).includes(name)) {
      const path = ['databases', name];
      problems.push(source.problem(path, `a database cannot be named "${name}": that is a table setting`, 'rename the database, e.g. desktop or cloud', 'key'));
      paths.push(path);
    }
  }
  const check = (block: unknown, base: KeyPath, isDefaults: boolean): void => {
    if (!isObject(block)) return;
    for (const key of Object.keys(block)) {
      const path = [...base, key];
      if (isDefaults && (key === 'name' || key === 'after')) {
        problems.push(source.problem(path, `unknown key "${key}" under defaults`, `${key} belongs on the table itself`, 'key'));
        paths.push(path);
      } else if (!allowed.has(key)) {
        const guess = didYouMean(key, allowed);
        problems.push(
          source.problem(
            path,
            `unknown key "${key}"`,
            guess !== '' ? guess : `a table takes ${TABLE_KEYS.join(', ')}, or a block named after a database (${databases.join(', ')})`,
            'key',
          ),
        );
        paths.push(path);
      }
    }
  };
  check(raw.defaults, ['defaults'], true);
  if (Array.isArray(raw.tables)) raw.tables.forEach((t, i) => check(t, ['tables', i], false));
  return { problems, paths };
}

/** Checks that touch the file system, done when loading a config from disk. */
export interface ResolveChecks {
  /** Whether a `ca:` file exists and can be read. */
  caReadable?: (path: string) => boolean;
}

/** PostgreSQL keeps the first 63 bytes of a name (NAMEDATALEN - 1) and silently drops the rest. */
const MAX_IDENTIFIER_BYTES = 63;

/**
 * Every string the config uses as a PostgreSQL name (schema, table, column) must be one the server
 * keeps as written: no NUL character, at most 63 bytes (a longer one is truncated, so two names
 * could meet as one, or a name could mean another object).
 */
function checkIdentifiers(raw: RawConfig, dbNames: readonly string[], report: (path: KeyPath, message: string, hint?: string) => void): void {
  const check = (value: unknown, path: KeyPath, what: string): void => {
    if (typeof value !== 'string') return;
    if (value.includes('\0')) {
      report(path, `${what} contains a NUL character`, 'PostgreSQL names cannot contain NUL; remove it');
      return;
    }
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > MAX_IDENTIFIER_BYTES) {
      report(path, `${what} "${value}" is ${bytes} bytes; PostgreSQL keeps only the first ${MAX_IDENTIFIER_BYTES} of a name`, 'use the name as the database shows it (at most 63 bytes), so it cannot meet another name once truncated');
    }
  };
  const relation = (value: unknown, path: KeyPath): void => {
    if (typeof value !== 'string') return;
    const { schema, name } = qualifiedName(value);
    if (schema !== null) check(schema, path, 'schema name');
    check(name, path, 'table name');
  };
  check(raw.state?.schema, ['state', 'schema'], 'state schema');
  const settings = (block: RawTableSettings | undefined, base: KeyPath, isTable: boolean): void => {
    if (!isPlainObject(block)) return;
    if (isTable && dbNames.some((db) => !isPlainObject(block[db]) || (block[db] as { table?: unknown }).table === undefined)) relation(block.name, [...base, 'name']);
    for (const db of dbNames) if (isPlainObject(block[db])) relation((block[db] as { table?: unknown }).table, [...base, db, 'table']);
    listOf(block.primary_key).forEach((c, j) => check(c, [...base, 'primary_key', j], 'column name'));
    listOf(block.columns).forEach((c, j) => {
      if (typeof c === 'string') check(c, [...base, 'columns', j], 'column name');
      else if (isPlainObject(c)) for (const [db, name] of Object.entries(c)) check(name, [...base, 'columns', j, db], 'column name');
    });
    if (isPlainObject(block.timestamps)) {
      for (const [db, cols] of Object.entries(block.timestamps)) if (Array.isArray(cols)) cols.forEach((c, j) => check(c, [...base, 'timestamps', db, j], 'column name'));
    }
    if (isPlainObject(block.origin)) check((block.origin as { column?: unknown }).column, [...base, 'origin', 'column'], 'origin column');
  };
  settings(raw.defaults, ['defaults'], false);
  listOf(raw.tables).forEach((t, i) => settings(t, ['tables', i], true));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Semantic rules of SPEC §1 on a schema-valid config, then defaults merged and order resolved. */
export function resolveConfig(
  raw: RawConfig,
  source: YamlSource,
  env: NodeJS.ProcessEnv = {},
  checks: ResolveChecks = {},
): { config: ResolvedConfig | undefined; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const report = (path: KeyPath, message: string, hint?: string, at?: 'key' | 'value'): void => {
    problems.push(source.problem(path, message, hint, at));
  };
  const dbNames = Object.keys(raw.databases);

  const databases: Record<string, ResolvedDatabase> = {};
  for (const [name, db] of Object.entries(raw.databases)) {
    // An unresolved ${VAR} was reported at this url already; parseConfig drops the duplicate. (Do not
    // skip on "${" here: an interpolated value, or a literal $${ in the file, may contain it.)
    const facts = urlFacts(db.url, env);
    if ('error' in facts) {
      report(['databases', name, 'url'], facts.error, 'write it as postgres://user:password@host:5432/database, e.g. url: ${DATABASE_URL}');
      continue;
    }
    if (db.ssl === 'verify-full' && db.ca === undefined) {
      report(['databases', name, 'ssl'], 'ssl: verify-full needs a CA certificate', 'add ca: path/to/ca.pem next to ssl');
    }
    if (db.ca !== undefined && db.ssl !== 'verify-full') {
      report(['databases', name, 'ca'], 'ca is only used with ssl: verify-full', 'set ssl: verify-full, or remove ca', 'key');
    } else if (db.ca !== undefined && checks.caReadable !== undefined && !checks.caReadable(db.ca)) {
      report(['databases', name, 'ca'], `the CA certificate file "${db.ca}" does not exist or cannot be read`, 'give the path of the PEM file (relative to the current directory), e.g. ca: certs/supabase-ca.pem');
    }
    databases[name] = { name, url: db.url, ...sslFor(db.ssl, facts), ca: db.ca ?? null, host: facts.host, port: facts.port, database: facts.database, user: facts.user, options: facts.options };
  }

  const { from, to } = raw.forward;
  for (const [key, value] of [['from', from], ['to', to]] as const) {
    if (!dbNames.includes(value)) {
      report(['forward', key], `"${value}" is not one of the databases (${dbNames.join(', ')})`, didYouMean(value, dbNames) || undefined);
    }
  }
  if (from === to) report(['forward', 'to'], 'forward.from and forward.to must be different databases');

  const stateSchema = raw.state?.schema ?? 'bisync';
  if (stateSchema === 'public') {
    // SPEC §2.8: bisync's own tables never live in public (on Supabase it is exposed over HTTP).
    report(['state', 'schema'], 'bisync state must not live in the public schema', 'give it its own schema, e.g. schema: bisync');
  }

  checkIdentifiers(raw, dbNames, report);

  const defaults: RawTableSettings = raw.defaults ?? {};
  checkSettings(defaults, ['defaults'], dbNames, report);

  const firstIndex = new Map<string, number>();
  raw.tables.forEach((table, i) => {
    const name = table.name ?? '';
    const seen = firstIndex.get(name);
    if (seen !== undefined) {
      report(['tables', i, 'name'], `table name "${name}" is used twice`, `the first is tables[${seen}] at line ${source.locate(['tables', seen, 'name']).line}; give each table a unique name`);
    } else {
      firstIndex.set(name, i);
    }
  });

  const tables: ResolvedTable[] = [];
  raw.tables.forEach((table, i) => {
    const base: KeyPath = ['tables', i];
    checkSettings(table, base, dbNames, report);
    const merged: RawTableSettings = { ...defaults, ...table };
    const name = table.name ?? '';
    const direction = merged.direction ?? 'both';
    const origin = merged.origin === undefined || merged.origin === false ? null : merged.origin;
    if (direction === 'both' && origin === null) {
      report([...base, 'direction'], `table "${name}" syncs both ways but has no origin rule`, 'add origin: { column: source, forward: D, reverse: M } to the table or to defaults, so each side knows which rows it owns');
    }
    if (origin !== null && origin.forward === origin.reverse) {
      report([...originPath(table, base), 'reverse'], 'origin.forward and origin.reverse must differ', 'use distinct markers such as D and M');
    }
    const edits = merged.edits ?? 'owner';
    const settingPath = (key: 'edits' | 'conflicts'): KeyPath => (table[key] !== undefined ? [...base, key] : ['defaults', key]);
    if (edits === 'both' && direction !== 'both') {
      report(settingPath('edits'), `table "${name}": edits: both needs direction: both (it syncs ${direction} only)`, 'set direction: both, or use edits: owner');
    }
    const conflicts = conflictPolicy(merged.conflicts);
    if (merged.conflicts !== undefined && conflicts === undefined) {
      report(settingPath('conflicts'), `"${merged.conflicts}" is neither park, newest nor one of the databases (${dbNames.join(', ')})`, didYouMean(merged.conflicts, [...dbNames, 'park', 'newest']) || 'write conflicts: park, conflicts: newest, or conflicts: <database name>');
    } else if (conflicts?.kind === 'database' && !dbNames.includes(conflicts.database)) {
      report(settingPath('conflicts'), `"${conflicts.database}" is neither park, newest nor one of the databases (${dbNames.join(', ')})`, didYouMean(conflicts.database, [...dbNames, 'park', 'newest']) || 'write conflicts: park, conflicts: newest, or conflicts: <database name>');
    } else if (conflicts?.kind === 'newest') {
      const missing = dbNames.filter((db) => (merged.timestamps?.[db] ?? []).length === 0);
      if (missing.length > 0) {
        report(settingPath('conflicts'), `table "${name}": conflicts: newest needs cursor columns on both databases; ${missing.join(' and ')} has none`, `add timestamps: { ${missing.map((db) => `${db}: [updated_at]`).join(', ')} }, or use conflicts: park`);
      }
    }
    if (merged.deletes === 'mirror' && edits === 'both') {
      // Deletes travel both ways, each guarded by the base (SPEC §7): no origin rule needed.
    } else if (merged.deletes === 'mirror') {
      const deletesPath = table.deletes !== undefined ? [...base, 'deletes'] : ['defaults', 'deletes'];
      if (direction === 'reverse') {
        report(deletesPath, `table "${name}": deletes: mirror only applies to forward, and this table syncs reverse only`, 'use deletes: keep; reverse never deletes (the desktop has no origin column to prove ownership)');
      } else if (origin === null) {
        report(deletesPath, `table "${name}": deletes: mirror needs an origin rule`, 'bisync only deletes rows it can prove forward owns; add origin, or use deletes: keep');
      }
    }
    const primaryKeyNames = listOf(merged.primary_key);
    if (primaryKeyNames.length === 0) {
      report(base, `table "${name}" has no primary_key`, 'add primary_key: [id_column] (the columns that identify a row on both sides)');
    }
    for (const [j, dep] of listOf(table.after).entries()) {
      if (typeof dep !== 'string') continue; // reported by the schema
      if (dep === name) report([...base, 'after', j], `table "${name}" cannot run after itself`, 'remove it from after');
      else if (!firstIndex.has(dep)) {
        report([...base, 'after', j], `"${dep}" is not a table in this file`, didYouMean(dep, firstIndex.keys()) || 'after lists names of other tables in this file');
      }
    }
    // An unparsable lookback was reported where it is written (checkSettings).
    const lookbackSeconds = typeof merged.lookback === 'string' ? parseDuration(merged.lookback) : parseDuration(DEFAULT_LOOKBACK);
    const lockTimeoutSeconds = parseDuration(typeof merged.lock_timeout === 'string' ? merged.lock_timeout : DEFAULT_LOCK_TIMEOUT);
    const statementTimeoutSeconds = parseDuration(typeof merged.statement_timeout === 'string' ? merged.statement_timeout : DEFAULT_STATEMENT_TIMEOUT);

    const columns = merged.columns === undefined ? null : listOf(merged.columns).map((c) => columnPair(c, dbNames));
    if (columns !== null) {
      const columnsPath = table.columns !== undefined ? [...base, 'columns'] : ['defaults', 'columns'];
      listOf(merged.columns).forEach((c, j) => {
        if (typeof c === 'object' && c !== null) {
          for (const key of Object.keys(c)) {
            if (!dbNames.includes(key)) report([...columnsPath, j, key], `"${key}" is not one of the databases (${dbNames.join(', ')})`, didYouMean(key, dbNames) || undefined, 'key');
          }
        }
      });
    }
    const primaryKey: ColumnPair[] = [];
    for (const [j, keyName] of primaryKeyNames.entries()) {
      const pair = columns === null ? columnPair(keyName, dbNames) : columns.find((c) => Object.values(c).includes(keyName));
      if (pair === undefined) {
        report([...(table.primary_key !== undefined ? base : ['defaults']), 'primary_key', j], `primary key column "${keyName}" is not in the table's columns list`, 'add it to columns, or name it as the columns list does');
      } else {
        primaryKey.push(pair);
      }
    }
    if (origin !== null && columns !== null && columns.some((c) => c[to] === origin.column)) {
      report([...base, 'columns'], `the origin column "${origin.column}" must not be listed in columns`, 'bisync writes the origin column itself; remove it from columns');
    }
    if (origin !== null && primaryKey.some((c) => c[to] === origin.column)) {
      report([...base, 'primary_key'], `the origin column "${origin.column}" cannot be part of the primary key`);
    }

    const tableNames: Record<string, QualifiedName> = {};
    for (const db of dbNames) {
      const block = merged[db] as { table?: string } | undefined;
      tableNames[db] = qualifiedName(String(block?.table ?? name));
    }
    const timestamps: Record<string, string[]> = {};
    const xmin: string[] = [];
    for (const db of dbNames) {
      const given = merged.timestamps?.[db];
      if (given === 'xmin') xmin.push(db);
      timestamps[db] = Array.isArray(given) ? [...given] : [];
    }

    tables.push({
      name,
      fileIndex: i,
      location: source.locate(base),
      tables: tableNames,
      primaryKey,
      columns,
      direction,
      directions: direction === 'both' ? ['forward', 'reverse'] : [direction],
      after: listOf(table.after).filter((d): d is string => typeof d === 'string'),
      timestamps,
      xmin,
      origin: origin === null ? null : ({ column: origin.column, forward: origin.forward, reverse: origin.reverse } satisfies ResolvedOrigin),
      lookbackSeconds: lookbackSeconds ?? 0,
      lockTimeoutSeconds: lockTimeoutSeconds ?? 30,
      statementTimeoutSeconds: statementTimeoutSeconds ?? 3600,
      deletes: merged.deletes ?? 'keep',
      compare: merged.compare ?? 'checksum',
      maxDeleteFraction: merged.max_delete_fraction ?? DEFAULT_MAX_DELETE_FRACTION,
      edits,
      conflicts: conflicts ?? { kind: 'park' },
      write: {
        forward: merged.forward?.write ?? 'upsert',
        reverse: merged.reverse?.write ?? 'upsert',
      } satisfies Record<Direction, string>,
    });
  });

  const ordered = executionOrder(tables, (cycle) => {
    if (cycle.length === 1) return; // a table after itself, reported at its after entry above
    const first = cycle[0] ?? '';
    const index = firstIndex.get(first) ?? 0;
    report(['tables', index, 'after'], `after has a cycle: ${[...cycle, first].join(' → ')}`, 'remove one of these dependencies so the tables can run in an order');
  });

  if (problems.length > 0) return { config: undefined, problems };
  return {
    config: {
      file: source.file,
      databases,
      forward: { from, to },
      reverse: { from: to, to: from },
      stateSchema,
      tables: ordered,
    },
    problems,
  };
}

/** Checks on keys that name databases, shared by `defaults` and tables. */
function checkSettings(
  settings: RawTableSettings,
  base: KeyPath,
  dbNames: readonly string[],
  report: (path: KeyPath, message: string, hint?: string, at?: 'key' | 'value') => void,
): void {
  for (const key of Object.keys(settings.timestamps ?? {})) {
    if (!dbNames.includes(key)) {
      report([...base, 'timestamps', key], `"${key}" is not one of the databases (${dbNames.join(', ')})`, didYouMean(key, dbNames) || 'timestamps is keyed by database name', 'key');
    }
  }
  for (const key of ['lookback', 'lock_timeout', 'statement_timeout'] as const) {
    const value = settings[key];
    if (typeof value === 'string' && parseDuration(value) === undefined) {
      report([...base, key], 'not a duration', `write a number and a unit: ${key === 'lookback' ? '0s, 500ms, 5s, 2m, 1h' : '0s (no limit), 500ms, 30s, 2m, 1h'}`);
    }
  }
}

/**
 * A list the schema says is an array. On a config that already failed the schema, a slip such as
 * `after: orgmaster` must not stop the other rules from being reported, so treat it as empty.
 */
function listOf<T>(value: readonly T[] | undefined): readonly T[] {
  return Array.isArray(value) ? value : [];
}

/** `park`, `newest`, or a database name (checked against the databases by the caller); undefined when not a string. */
function conflictPolicy(value: unknown): ConflictPolicy | undefined {
  if (value === undefined || value === 'park') return { kind: 'park' };
  if (value === 'newest') return { kind: 'newest' };
  return typeof value === 'string' ? { kind: 'database', database: value } : undefined;
}

function originPath(table: RawTableSettings, base: KeyPath): KeyPath {
  return table.origin !== undefined ? [...base, 'origin'] : ['defaults', 'origin'];
}

function columnPair(column: string | Record<string, string>, dbNames: readonly string[]): ColumnPair {
  if (typeof column === 'string') return Object.fromEntries(dbNames.map((db) => [db, column]));
  return Object.fromEntries(dbNames.map((db) => [db, column[db] ?? '']));
}

/** `schema.table` → both parts; a bare name leaves the schema to the search_path. */
export function qualifiedName(text: string): QualifiedName {
  const dot = text.indexOf('.');
  return dot < 0 ? { schema: null, name: text } : { schema: text.slice(0, dot), name: text.slice(dot + 1) };
}

/**
 * Topological order over `after`, breaking ties by file order, so the same file always runs the
 * same way. Tables on a cycle are reported through `onCycle` and appended in file order.
 */
export function executionOrder(tables: readonly ResolvedTable[], onCycle: (cycle: string[]) => void): ResolvedTable[] {
  const byName = new Map(tables.map((t) => [t.name, t]));
  const remaining = new Set(tables.map((t) => t.name));
  const ordered: ResolvedTable[] = [];
  for (;;) {
    const ready = tables.find((t) => remaining.has(t.name) && t.after.every((d) => !remaining.has(d) || !byName.has(d)));
    if (ready === undefined) break;
    ordered.push(ready);
    remaining.delete(ready.name);
  }
  if (remaining.size > 0) {
    const reported = new Set<string>();
    for (const start of tables.filter((t) => remaining.has(t.name))) {
      if (reported.has(start.name)) continue;
      const cycle = findCycle(start.name, byName, remaining);
      if (cycle !== undefined && !cycle.some((n) => reported.has(n))) {
        cycle.forEach((n) => reported.add(n));
        onCycle(cycle);
      }
    }
    ordered.push(...tables.filter((t) => remaining.has(t.name)));
  }
  return ordered;
}

function findCycle(start: string, byName: Map<string, ResolvedTable>, within: Set<string>): string[] | undefined {
  const path: string[] = [];
  const onPath = new Set<string>();
  const visit = (name: string): string[] | undefined => {
    if (onPath.has(name)) return path.slice(path.indexOf(name));
    if (!within.has(name)) return undefined;
    path.push(name);
    onPath.add(name);
    for (const dep of byName.get(name)?.after ?? []) {
      const found = visit(dep);
      if (found !== undefined) return found;
    }
    path.pop();
    onPath.delete(name);
    return undefined;
  };
  return visit(start);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
