import type { ResolvedConfig } from '../config/types.js';
import { displayName } from '../compiler/quote-ident.js';
import type { LiveReport } from '../commands/validate.js';
import { renderTable } from './render.js';

/** The JSON document `validate --json` prints. */
export function validateJson(config: ResolvedConfig, live: LiveReport | undefined): unknown {
  return {
    ok: live === undefined || live.problems.length === 0,
    config: config.file,
    databases: Object.values(config.databases).map((db) => ({
      name: db.name,
      host: db.host,
      port: db.port,
      database: db.database,
      ssl: db.ssl,
      sslSource: db.sslSource,
    })),
    forward: config.forward,
    stateSchema: config.stateSchema,
    tables: config.tables.map((t, i) => ({
      order: i + 1,
      name: t.name,
      direction: t.direction,
      steps: t.directions,
      tables: Object.fromEntries(Object.entries(t.tables).map(([db, n]) => [db, displayName(n)])),
      after: t.after,
      timestamps: t.timestamps,
    })),
    ...(live === undefined ? {} : { live }),
  };
}

/** The human summary of `validate`. */
export function validateText(config: ResolvedConfig, live: LiveReport | undefined): string {
  const { from, to } = config.forward;
  const dbLine = (name: string): string => {
    const db = config.databases[name];
    if (db === undefined) return name;
    return `${db.host}:${db.port}/${db.database}, ssl ${db.ssl}${db.sslSource === 'default' ? ' (default for this host)' : db.sslSource === 'url' ? ' (from the URL)' : ''}`;
  };
  const names = Object.keys(config.databases);
  const rows = [
    ['#', 'table', 'direction', 'after', ...names.map((n) => `${n} table`), 'cursors'],
    ...config.tables.map((t, i) => [
      String(i + 1),
      t.name,
      t.direction,
      t.after.join(', ') || '-',
      ...names.map((n) => {
        const q = t.tables[n];
        return q === undefined ? '-' : displayName(q);
      }),
      Object.entries(t.timestamps)
        .filter(([, cols]) => cols.length > 0)
        .map(([db, cols]) => `${db}: ${cols.join(', ')}`)
        .join('; ') || 'none (full read)',
    ]),
  ];
  const lines = [
    `${config.file}: OK — ${config.tables.length} table${config.tables.length === 1 ? '' : 's'}, forward ${from} → ${to}, reverse ${to} → ${from}`,
    `  ${from}: ${dbLine(from)}`,
    `  ${to}: ${dbLine(to)}`,
    `  state schema: ${config.stateSchema}`,
    '',
    'Execution order:',
    renderTable(rows),
  ];
  if (live !== undefined) {
    lines.push('');
    lines.push(
      `Live check: ${live.databases.map((d) => `${d.name} PostgreSQL ${Math.floor(d.serverVersion / 10000)}.${d.serverVersion % 10000} (TimeZone ${d.timeZone})`).join(', ')}`,
    );
    if (live.problems.length === 0) lines.push('  every table, column, key, cursor and origin column matches the config.');
    if (live.warnings.length > 0) lines.push(`  ${live.warnings.length} warning${live.warnings.length === 1 ? '' : 's'} (on stderr): the config runs, but not as it should.`);
    for (const w of live.roleWarnings) lines.push(`  warning: ${w.database}: ${w.message}`, `    hint: ${w.hint}`);
  }
  return lines.join('\n');
}
