import type { ErrorObject, ValidateFunction } from 'ajv';
import type { ConfigProblem } from '../errors.js';
import { didYouMean } from './suggest.js';
import { formatPath } from './yaml-source.js';
import type { KeyPath, YamlSource } from './yaml-source.js';
import { configValidator } from './schema-validator.js';

// Loaded on first use: commands that read no config (--version, --help) skip it.
let compiled: ValidateFunction | undefined;

/** The JSON Schema (schema/sync.config.schema.json), every violation located in the YAML source. */
export function checkSchema(value: unknown, source: YamlSource, skipUnder: readonly KeyPath[]): ConfigProblem[] {
  compiled ??= configValidator();
  const validate = compiled;
  if (validate(value)) return [];
  const skip = skipUnder.map(formatPath);
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (const error of validate.errors ?? []) {
    const problem = toProblem(error, source);
    if (problem === undefined) continue;
    if (skip.some((s) => problem.path === s || problem.path.startsWith(`${s}.`) || problem.path.startsWith(`${s}[`))) continue;
    const key = `${problem.path}\0${problem.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.push(problem);
  }
  return problems;
}

function toPath(instancePath: string): (string | number)[] {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((seg) => (/^\d+$/.test(seg) ? Number(seg) : seg));
}

function toProblem(error: ErrorObject, source: YamlSource): ConfigProblem | undefined {
  const path = toPath(error.instancePath);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const known = Object.keys((error.parentSchema?.properties as object | undefined) ?? {});
      const hint = didYouMean(key, known) || (known.length > 0 ? `allowed here: ${known.join(', ')}` : undefined);
      return source.problem([...path, key], `unknown key "${key}"`, hint, 'key');
    }
    case 'required':
      return source.problem(path, `missing key "${String(params.missingProperty)}"`, `add ${String(params.missingProperty)}: ...`);
    case 'enum':
      return source.problem(path, `expected one of: ${(params.allowedValues as unknown[]).map(String).join(', ')}`);
    case 'const':
      // `origin: false` is the one const alternative of a oneOf; the object branch explains better.
      if (params.allowedValue === false) return undefined;
      return source.problem(path, `expected ${JSON.stringify(params.allowedValue)}`, path[0] === 'version' ? 'this bisync reads version: 1' : undefined);
    case 'oneOf':
      return undefined;
    case 'type':
      return source.problem(
        path,
        `expected ${String(params.type).replace(',', ' or ')}`,
        path.at(-1) === 'origin' ? 'write origin: { column: source, forward: D, reverse: M }, or origin: false' : undefined,
      );
    case 'minProperties':
    case 'maxProperties':
      if (path.length === 1 && path[0] === 'databases') {
        return source.problem(path, 'exactly two databases are required', 'declare two databases, e.g. desktop: { url: ... } and cloud: { url: ... }');
      }
      return source.problem(path, `expected a mapping of the two database names to column names`, 'write { desktop: name_there, cloud: name_here }');
    case 'propertyNames':
      return undefined;
    case 'pattern':
      return source.problem(path, 'names a database with characters other than letters, digits, _ and -', undefined, 'key');
    case 'minItems':
      return source.problem(path, Number(params.limit) === 1 ? 'must not be empty' : `must list at least ${String(params.limit)} items`);
    case 'uniqueItems':
      return source.problem(path, 'lists the same item twice', 'remove the duplicate');
    default:
      return source.problem(path, error.message ?? 'is invalid');
  }
}
