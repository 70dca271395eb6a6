import type Handlebars from 'handlebars';
import type { QualifiedName } from '../config/types.js';
import type { PlanParam } from './plan-types.js';
import type { ChecksumColumn } from './bucket-checksum.js';
import { quoteIdent, quoteQualified } from './quote-ident.js';
import { createEngine, loadTemplates, precompiledModule } from './template-store.js';

/** A column as templates see it: its name on the source and target, the target's type and the source's. */
export interface TemplateColumn {
  source: string;
  target: string;
  type: string;
  sourceType?: string;
}

/**
 * A foreign key that references the table a step deletes from, as the `blocked` helper renders it:
 * the referencing relation, the column pairs, the ON DELETE action and the referencing table's
 * origin column (null when it has none, so no row there is provably this direction's).
 */
export interface TemplateReference {
  rel: QualifiedName;
  columns: string[];
  refColumns: string[];
  onDelete: string;
  originColumn: string | null;
  children: TemplateReference[];
}

interface RenderState {
  params: PlanParam[];
}

const engine = createEngine();

// A type name from format_type(): words, digits, quotes, dots, parentheses, commas, brackets, spaces.
// Quoted parts are checked by the database itself; this refuses anything that could end a statement.
const SAFE_TYPE = /^(?:"(?:[^"]|"")+"|[A-Za-z0-9_ .,()[\]])+$/;

// An explicit cast to varchar(n), char(n) or bit(n) silently truncates (or pads) the value, while
// the assignment into the column refuses one that does not fit. So staged values are cast to the
// type without its length, and the column's own length check turns an over-long value into a
// reject instead of a silently shortened row (SPEC §2.6). Numeric and time precisions round the
// same way in both, so they keep theirs.
const LENGTH_BOUND: readonly [RegExp, string][] = [
  [/^character varying\(\d+\)/, 'character varying'],
  [/^character\(\d+\)/, 'bpchar'],
  [/^bit varying\(\d+\)/, 'bit varying'],
  [/^bit\(\d+\)/, 'bit varying'],
];

// Types without a default equality operator: compared through their text form.
const NO_EQUALITY = /^(json|xml|point|line|lseg|box|path|polygon|circle)(\[\])*$/;

// A timestamptz value arrives as text with its UTC offset; cast straight to a type without a zone,
// PostgreSQL would drop the offset. Read back as timestamptz first, it is converted in the target's
// TimeZone, as an assignment of the value to the column would on that server.
const WITH_ZONE = /^timestamp(\(\d\))? with time zone$/;
const WITHOUT_ZONE = /^(timestamp(\(\d\))? without time zone|date|time(\(\d\))? without time zone)$/;

// A staged value is the text F printed for its value (COPY text format; `::text` for a key column).
// For these types, when F's column has exactly T's type (length, precision and scale included), T
// prints the value as the same characters, whatever the server and its session (every session
// sets DateStyle ISO: settings.sql.hbs). So `row(…)::text` of the staged text is the text of the row
// of T-typed values: the fingerprint hashes it as staged, without a parse and a print per value.
// Not here: types whose text depends on the session or the server version (timestamptz, timetz,
// interval, floats, money, bytea), and types whose `::text` differs from their output (boolean,
// character(n), inet): those are cast, as everywhere else.
const PRINTED_ALIKE = /^(smallint|integer|bigint|numeric(\(\d+,\d+\))?|date|uuid|jsonb)$/;
// Text cast to text or to varchar without a length is the same text, whatever F's type was.
const TEXT_TYPE = /^(text|character varying(\(\d+\))?)$/;

/** Whether a column's staged text is already its text as T prints the value (see PRINTED_ALIKE). */
function stagedAsPrinted(c: TemplateColumn): boolean {
  return TEXT_TYPE.test(c.type) || (PRINTED_ALIKE.test(c.type) && c.sourceType === c.type);
}

// Arrays of timestamptz: their text, like a timestamptz's, is printed in the session's TimeZone.
const WITH_ZONE_ARRAY = /^timestamp(\(\d\))? with time zone(\[\])+$/;

/**
 * A value as the fingerprint prints it: a value whose text depends on the session's TimeZone
 * (timestamptz, an array of them, tstzrange) as the same instants in UTC, since each database's
 * sessions run in its own zone and a base recorded on one is compared on the other. An array keeps
 * its dimensions; a range its bounds' inclusivity, infinite bounds and emptiness.
 */
function inUtc(type: string, value: string): string {
  if (WITH_ZONE.test(type)) return `timezone('UTC', ${value})`;
  if (WITH_ZONE_ARRAY.test(type)) {
    return `(CASE WHEN ${value} IS NULL THEN NULL ELSE coalesce(array_dims(${value}), '') || (SELECT coalesce(array_agg(timezone('UTC', u.e) ORDER BY u.o)::text, '{}') FROM unnest(${value}) WITH ORDINALITY AS u(e, o)) END)`;
  }
  if (type === 'tstzrange') {
    return `(CASE WHEN ${value} IS NULL THEN NULL::tsrange WHEN isempty(${value}) THEN 'empty'::tsrange
          ELSE tsrange(timezone('UTC', lower(${value})), timezone('UTC', upper(${value})),
                       (CASE WHEN lower_inc(${value}) THEN '[' ELSE '(' END) || (CASE WHEN upper_inc(${value}) THEN ']' ELSE ')' END)) END)`;
  }
  return value;
}

// character(n): T stores a value padded with spaces to n characters (trailing spaces past n cut).
const FIXED_CHAR = /^character\((\d+)\)$/;

/**
 * A staged value as the fingerprint hashes it: cast to T's type. For character(n) on both sides the cast without
 * the length (the `staged` helper) does not pad, and a key column's staged text (its `::text`) has
 * lost its padding, while T's row holds it padded: a value that fits is cast with the length, so it
 * prints padded as T's row does; one that does not fit stays as it is (its write fails into rejects,
 * never truncated into a row that looks equal).
 */
function stagedForFingerprint(c: TemplateColumn, prefix: unknown): string {
  const fixed = FIXED_CHAR.exec(c.type);
  // Only where F's column is character(n) too: from another type the two directions fingerprint in
  // different types anyway, and a text side converges once the padded value has been written to it.
  if (fixed === null || c.sourceType !== c.type) return helpers.staged(c, prefix);
  const value = `${String(prefix)}.${quoteIdent(c.target)}`;
  const n = Number(fixed[1]);
  return `(CASE WHEN char_length(rtrim(${value})) <= ${n} THEN ${value}::character(${n}) ELSE ${value}::bpchar END)`;
}

function state(options: Handlebars.HelperOptions): RenderState {
  return (options.data as { root: { __render: RenderState } }).root.__render;
}

const helpers = {
  /** One identifier, quoted. */
  ident: (name: unknown) => quoteIdent(String(name)),
  /** A schema-qualified relation, each part quoted. */
  rel: (name: unknown) => quoteQualified(name as QualifiedName),
  /** A type name from the catalog, checked, to cast a staged value to (without a length limit). */
  type: (name: unknown) => {
    const text = String(name);
    if (!SAFE_TYPE.test(text)) throw new Error(`unexpected type name from the catalog: ${text}`);
    return LENGTH_BOUND.reduce((t, [limited, unlimited]) => t.replace(limited, unlimited), text);
  },
  /** One staged text value cast to the target column's type (through timestamptz when the zone must be applied). */
  staged: (column: unknown, prefix: unknown) => {
    const c = column as TemplateColumn;
    const via = c.sourceType !== undefined && WITH_ZONE.test(c.sourceType) && WITHOUT_ZONE.test(c.type) ? '::timestamptz' : '';
    return `${String(prefix)}.${quoteIdent(c.target)}${via}::${helpers.type(c.type)}`;
  },
  /** `p."a", p."b"` for a list of columns on one side (`source` or `target`). */
  cols: (columns: unknown, side: unknown, prefix: unknown) =>
    (columns as TemplateColumn[])
      .map((c) => `${typeof prefix === 'string' && prefix !== '' ? `${prefix}.` : ''}${quoteIdent(c[side as 'source' | 'target'])}`)
      .join(', '),
  /** `s."a"::integer, s."b"::text`: staged text values cast to the target's types. */
  casts: (columns: unknown, prefix: unknown) =>
    (columns as TemplateColumn[]).map((c) => helpers.staged(c, prefix)).join(', '),
  /** Target columns for an IS DISTINCT FROM comparison (text form for types without equality). */
  cmpcols: (columns: unknown, prefix: unknown) =>
    (columns as TemplateColumn[])
      .map((c) => `${String(prefix)}.${quoteIdent(c.target)}${NO_EQUALITY.test(c.type) ? '::text' : ''}`)
      .join(', '),
  /** Staged values cast to the target's types, for the same comparison. */
  cmpcasts: (columns: unknown, prefix: unknown) =>
    (columns as TemplateColumn[])
      .map((c) => {
        const cast = helpers.staged(c, prefix);
        return NO_EQUALITY.test(c.type) ? `(${cast})::text` : cast;
      })
      .join(', '),
  /** `t."k" = s."k"::integer AND …`: target row matched to a staged row by key. */
  keymatch: (keys: unknown, target: unknown, staged: unknown) =>
    (keys as TemplateColumn[])
      .map((c) => `${String(target)}.${quoteIdent(c.target)} = ${helpers.staged(c, staged)}`)
      .join(' AND '),
  /** `'a', s."a", 'b', s."b"` for jsonb_build_object: the key of a staged row as JSON. */
  keyjson: (keys: unknown, staged: unknown, options: Handlebars.HelperOptions) =>
    (keys as TemplateColumn[])
      .map((c) => `${helpers.param(`key column name ${c.target}`, c.target, options)}::text, ${String(staged)}.${quoteIdent(c.target)}`)
      .join(', '),
  /**
   * A key as bisync's base stores it: text in the "C" collation (compared byte by byte). A one-column
   * key is its value's text; a key of several columns is the text of the JSON array of the values' texts
   * (`basekeyjson`). `side` says whose names to use: `source` (a row of F), `target` (a row of T) or
   * `staged` (text cast to T's types first).
   */
  basekey: (keys: unknown, prefix: unknown, side: unknown) => {
    const list = keys as TemplateColumn[];
    return list.length === 1 ? `${keytexts(list, prefix, side)} COLLATE "C"` : `${helpers.basekeyjson(keys, prefix, side)}::text COLLATE "C"`;
  },
  /** A key as the conflicts and rejects tables store it: a JSON array of the key values' text forms. */
  basekeyjson: (keys: unknown, prefix: unknown, side: unknown) => `jsonb_build_array(${keytexts(keys as TemplateColumn[], prefix, side)})`,
  /**
   * A key stored as a JSON array (`basekeyjson`, the conflicts table, bisync resolve's key) as the base
   * stores it (`basekey`), whatever the table: its one element's text, or the array's text.
   */
  basekeyfromjson: (json: unknown) => {
    const j = String(json);
    return `(CASE WHEN jsonb_array_length(${j}) = 1 THEN ${j} ->> 0 ELSE ${j}::text END) COLLATE "C"`;
  },
  /** `b.key`, or `b.key::jsonb ->> 0, b.key::jsonb ->> 1`: the key values (text) of a base row, in key order. */
  basekeycols: (keys: unknown, prefix: unknown) => {
    const list = keys as TemplateColumn[];
    return list.map((_c, i) => basekeypart(list.length, String(prefix), i)).join(', ');
  },
  /**
   * The fingerprint of a row's synced columns: md5 of the text of the row of T-typed values. `staged`
   * casts staged text to T's types first, so F's and T's versions of equal rows fingerprint alike;
   * a column whose staged text is already T's text of the value (stagedAsPrinted) is hashed as it is:
   * the row's text, and so the fingerprint, is the same (a record's text quotes a field by its text
   * alone, not by its type). A timestamptz is fingerprinted as its UTC time: each database's sessions
   * run in its own TimeZone, and a base recorded on one is compared on the other; for the same reason
   * the text is hashed as UTF-8, whatever the database's encoding. `source` fingerprints a row of F by
   * F's names, over F's own values: the same text only where each column has T's type (checksum-step.ts
   * checks that).
   */
  fingerprint: (columns: unknown, prefix: unknown, side: unknown) =>
    `md5(convert_to(row(${(columns as TemplateColumn[])
      .map((c) => {
        if (side === 'staged' && stagedAsPrinted(c)) return `${String(prefix)}.${quoteIdent(c.target)}`;
        const value =
          side === 'staged' ? stagedForFingerprint(c, prefix) : `${String(prefix)}.${quoteIdent(side === 'source' ? c.source : c.target)}`;
        return inUtc(c.type, value);
      })
      .join(', ')})::text, 'UTF8'))`,
  /**
   * md5 of the text of a row of checksum columns (bucket-checksum.ts): each column's own text, after
   * its casts, or converted through a zone (`zone` names the zone of the database written to).
   */
  rowhash: (columns: unknown, prefix: unknown, options: Handlebars.HelperOptions) => `md5(convert_to(ROW(${helpers.rowvalues(columns, prefix, options)})::text, 'UTF8'))`,
  /** The values `rowhash` hashes, one per line (for a row constructor with more fields after them). */
  rowvalues: (columns: unknown, prefix: unknown, options: Handlebars.HelperOptions) =>
    (columns as ChecksumColumn[]).map((c) => checksumValue(c, String(prefix), options)).join(`,\n${' '.repeat(23)}`),
  /**
   * The buckets whose checksums differ (set-buckets.sql.hbs), as an int[] for `= ANY (…)`: read in a
   * scalar subquery, so the setting is parsed once per statement, not once per row (with 1,024
   * buckets that parse cost 0.95 s of CPU on 24,562 rows, the subquery 0.07 s).
   */
  differingbuckets: () => `(SELECT current_setting('bisync.buckets')::int[])::int[]`,
  /** The bucket of a key hash: its first `bits` bits (at most 16) as an integer. */
  bucketof: (hash: unknown, bits: unknown) => {
    const n = Number(bits);
    if (!Number.isInteger(n) || n < 1 || n > 16) throw new Error(`bucket bits must be 1 to 16, got ${String(bits)}`);
    return n === 16 ? `('x' || left(${String(hash)}, 4))::bit(16)::int` : `(('x' || left(${String(hash)}, 4))::bit(16)::int >> ${16 - n})`;
  },
  /**
   * The bucket of a key as the base stores it (a jsonb array, `basekey`): the first `bits` bits of the
   * md5 of its text as UTF-8. A row's key and a base or conflict key land in the same bucket. Given
   * several key expressions, the first that is not NULL.
   */
  keybucket: (bits: unknown, ...rest: unknown[]) => {
    // The key expressions, then Handlebars' options: the first that is not NULL is the key.
    const keys = rest.slice(0, -1).map(String);
    const key = keys.length === 1 ? String(keys[0]) : `coalesce(${keys.join(', ')})`;
    return helpers.bucketof(`md5(convert_to((${key})::text, 'UTF8'))`, bits);
  },
  /**
   * The columns F sends for a three-way step, by F's names: a key column falls back to the key in
   * F's base (`b`), so a key F deleted still arrives, with every other column NULL.
   */
  readcols: (columns: unknown, keys: unknown, prefix: unknown, base: unknown) =>
    (columns as TemplateColumn[])
      .map((c) => {
        const position = (keys as TemplateColumn[]).findIndex((k) => k.target === c.target);
        const column = `${String(prefix)}.${quoteIdent(c.source)}`;
        return position < 0 ? column : `coalesce(${column}::text, ${basekeypart((keys as TemplateColumn[]).length, String(base), position)})`;
      })
      .join(', '),
  /** `s."a" = p.key ->> $1 AND …`: a staged row matched to a key stored as JSON by keyjson. */
  keyfromjson: (keys: unknown, staged: unknown, json: unknown, options: Handlebars.HelperOptions) =>
    (keys as TemplateColumn[])
      .map((c) => `${String(staged)}.${quoteIdent(c.target)} = ${String(json)} ->> ${helpers.param(`key column name ${c.target}`, c.target, options)}`)
      .join('\n   AND '),
  /** A `$n` placeholder; the value goes to the statement's parameters, never into the text. */
  param: (name: unknown, value: unknown, options: Handlebars.HelperOptions) => {
    const render = state(options);
    const text = value === null || value === undefined ? null : String(value);
    const existing = render.params.findIndex((p) => p.name === name);
    if (existing >= 0) {
      if (render.params[existing]?.value !== text) throw new Error(`template parameter "${String(name)}" given two values`);
      return `$${existing + 1}`;
    }
    render.params.push({ name: String(name), value: text, runtime: false });
    return `$${render.params.length}`;
  },
  /** A `$n` placeholder for a value the executor supplies while running. */
  runtime: (name: unknown, options: Handlebars.HelperOptions) => {
    const render = state(options);
    const existing = render.params.findIndex((p) => p.name === name);
    if (existing >= 0) return `$${existing + 1}`;
    render.params.push({ name: String(name), value: null, runtime: true });
    return `$${render.params.length}`;
  },
  /**
   * `EXISTS (…) OR EXISTS (…)`: whether a row of `parent` is still needed by rows this direction
   * does not own, so deleting it would remove them (CASCADE, recursively), change them (SET NULL,
   * SET DEFAULT) or fail (NO ACTION, RESTRICT: any referencing row). Owned means the referencing
   * row carries this direction's origin marker; a table without the origin column owns nothing.
   */
  blocked: (refs: unknown, parent: unknown, mine: unknown, options: Handlebars.HelperOptions): string => {
    const marker = helpers.param('origin value this direction writes', mine, options);
    const render = (list: readonly TemplateReference[], alias: string, depth: number): string =>
      list
        .map((ref) => {
          const r = `r${depth}`;
          const pad = '  '.repeat(depth + 3);
          const match = ref.columns.map((c, i) => `${r}.${quoteIdent(c)} = ${alias}.${quoteIdent(ref.refColumns[i] ?? '')}`).join(' AND ');
          const notOwned = ref.originColumn === null ? 'true' : `${r}.${quoteIdent(ref.originColumn)}::text IS DISTINCT FROM ${marker}`;
          let needed: string;
          if (ref.onDelete === 'c') {
            needed = ref.children.length === 0 || notOwned === 'true' ? notOwned : `${notOwned}
${pad}  OR ${render(ref.children, r, depth + 1)}`;
          } else if (ref.onDelete === 'n' || ref.onDelete === 'd') {
            needed = notOwned;
          } else {
            needed = 'true';
          }
          return `EXISTS (SELECT 1 FROM ${quoteQualified(ref.rel)} AS ${r}  -- ON DELETE ${ACTION_NAMES[ref.onDelete] ?? ref.onDelete}\n${pad} WHERE ${match}${needed === 'true' ? '' : `\n${pad}   AND (${needed})`})`;
        })
        .join(`\n${'  '.repeat(depth + 2)}OR `);
    return render(refs as TemplateReference[], String(parent), 1);
  },
  /**
   * Target key = staged key, for the mirror-delete checks: where the two sides' key types differ
   * the comparison happens in a type both values fit (numeric, or text), so a staged key the
   * target's type cannot hold matches nothing instead of failing the step (SPEC §2.6).
   */
  stagedkey: (keys: unknown, target: unknown, staged: unknown) =>
    (keys as (TemplateColumn & { compareAs: string })[])
      .map((c) => {
        const t = `${String(target)}.${quoteIdent(c.target)}`;
        const s = `${String(staged)}.${quoteIdent(c.target)}`;
        if (c.compareAs === 'numeric') return `${t}::numeric = ${s}::numeric`;
        if (c.compareAs === 'text') return `${t}::text = ${s}`;
        return `${t} = ${s}::${helpers.type(c.type)}`;
      })
      .join(' AND '),
  /**
   * `"a" = convert_from(convert_to(s."a", $n), 'UTF8'), …`: staged values that arrived as raw UTF-8
   * bytes (see client-encoding) decoded into the target's encoding; fails on a character it cannot hold.
   */
  decoded: (columns: unknown, prefix: unknown, encoding: unknown, options: Handlebars.HelperOptions) =>
    (columns as TemplateColumn[]).map((c) => `${quoteIdent(c.target)} = ${decode(c, prefix, encoding, options)}`).join(',\n       '),
  /**
   * For a row that cannot be decoded: its key columns decoded (when `keyDecoded`), every other
   * non-ASCII value as octal UTF-8 bytes, which any encoding holds (`encode(…, 'escape')`).
   */
  escaped: (columns: unknown, prefix: unknown, encoding: unknown, keys: unknown, keyDecoded: unknown, options: Handlebars.HelperOptions) =>
    (columns as TemplateColumn[])
      .map((c) => {
        const isKey = (keys as TemplateColumn[]).some((k) => k.target === c.target);
        if (isKey && keyDecoded === true) return `${quoteIdent(c.target)} = ${decode(c, prefix, encoding, options)}`;
        const value = `${String(prefix)}.${quoteIdent(c.target)}`;
        const raw = `convert_to(${value}, ${helpers.param('target encoding', encoding, options)})`;
        return `${quoteIdent(c.target)} = CASE WHEN ${value} ~ '[^\\x01-\\x7f]' THEN encode(${raw}, 'escape') ELSE ${value} END`;
      })
      .join(',\n       '),
  eq: (a: unknown, b: unknown) => a === b,
  /** `{{#if (or a b c)}}`: true when any argument is, as `{{#if}}` would judge it (an empty list is false); the last argument is Handlebars' options. */
  or: (...args: unknown[]) => args.slice(0, -1).some((a) => (Array.isArray(a) ? a.length > 0 : Boolean(a))),
};

/** One checksum column's value on one side (see `rowhash`). */
function checksumValue(c: ChecksumColumn, prefix: string, options: Handlebars.HelperOptions): string {
  const column = `${prefix}.${quoteIdent(c.name)}`;
  const zone = (): string => helpers.param('time zone of the database written to', (options.data as { root: { checksumZone?: unknown } }).root.checksumZone, options);
  if (c.zone === 'utc') return `timezone('UTC', ${column})`;
  if (c.zone === 'local-to-utc') return `timezone('UTC', timezone(${zone()}, ${column}))`;
  if (c.zone === 'utc-to-local') return `timezone(${zone()}, ${column})`;
  return c.casts.length === 0 ? column : `${column}${c.casts.map((t) => `::${helpers.type(t)}`).join('')}::text`;
}

/** One staged column's raw UTF-8 bytes decoded into the target database's encoding. */
function decode(column: TemplateColumn, prefix: unknown, encoding: unknown, options: Handlebars.HelperOptions): string {
  return `convert_from(convert_to(${String(prefix)}.${quoteIdent(column.target)}, ${helpers.param('target encoding', encoding, options)}), 'UTF8')`;
}

const ACTION_NAMES: Readonly<Record<string, string>> = { c: 'CASCADE', n: 'SET NULL', d: 'SET DEFAULT', a: 'NO ACTION', r: 'RESTRICT' };

/** The key values' texts of a row, in key order (see `basekey`). */
function keytexts(keys: readonly TemplateColumn[], prefix: unknown, side: unknown): string {
  return keys
    .map((c) => {
      if (side === 'source') return `${String(prefix)}.${quoteIdent(c.source)}::text`;
      if (side === 'target') return `${String(prefix)}.${quoteIdent(c.target)}::text`;
      return `(${String(prefix)}.${quoteIdent(c.target)}::${helpers.type(c.type)})::text`;
    })
    .join(', ');
}

/** The text of key column `i` of `n` in a base key `<prefix>.key` (see `basekey`). */
function basekeypart(n: number, prefix: string, i: number): string {
  return n === 1 ? `${prefix}.key` : `(${prefix}.key::jsonb ->> ${i})`;
}

for (const [name, fn] of Object.entries(helpers)) engine.registerHelper(name, fn as Handlebars.HelperDelegate);
const templates = loadTemplates(engine, Object.keys(helpers));

/** Every template compiled ahead, as the module `npm run build` writes (scripts/precompile.mjs). */
export function precompiledTemplates(): string {
  return precompiledModule(Object.keys(helpers));
}

/** The names of every statement template (templates/*.sql.hbs). */
export function templateNames(): string[] {
  return [...templates.keys()];
}

/**
 * Render one template: SQL text with `$n` placeholders, and the parameters in order. `inherited`:
 * the parameters of a statement the template wraps (its text passed in the context), numbered first.
 */
export function renderSql(kind: string, context: Record<string, unknown>, inherited: readonly PlanParam[] = []): { sql: string; params: PlanParam[] } {
  const template = templates.get(kind);
  if (template === undefined) throw new Error(`no SQL template named ${kind}`);
  const render: RenderState = { params: [...inherited] };
  const sql = template({ ...context, __render: render })
    .replace(/[ \t]+$/gm, '')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  return { sql, params: render.params };
}
