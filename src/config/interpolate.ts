import type { ConfigProblem } from '../errors.js';
import type { YamlSource } from './yaml-source.js';

const REFERENCE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?/g;

/**
 * Replace `${VAR}` and `${VAR:-default}` in every string value of the file, in place.
 * `$$` is a literal `$`. An unset or empty variable without a default is a problem at its position.
 * Values are never echoed back: they may hold secrets.
 */
export function interpolateEnv(source: YamlSource, env: NodeJS.ProcessEnv): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  source.forEachStringValue((value, path, replace) => {
    if (!value.includes('$')) return;
    const next = value.replace(REFERENCE, (whole, name: string | undefined, fallback: string | undefined) => {
      if (whole === '$$') return '$';
      if (name === undefined) {
        problems.push(
          source.problem(path, `malformed variable reference "${whole}"`, 'write ${NAME} or ${NAME:-default}; use $$ for a literal $'),
        );
        return whole;
      }
      const set = env[name];
      if (set !== undefined && set !== '') return set;
      if (fallback !== undefined) return fallback;
      problems.push(
        source.problem(
          path,
          `environment variable ${name} is ${set === undefined ? 'not set' : 'empty'}`,
          `set ${name} in the environment (e.g. export ${name}=...), or give a default with \${${name}:-value}`,
        ),
      );
      return whole;
    });
    if (next !== value) replace(next);
  });
  return problems;
}
