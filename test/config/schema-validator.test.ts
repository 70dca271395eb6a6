/**
 * The config's JSON Schema validator compiled ahead by `npm run build` (dist/config-schema.precompiled.cjs)
 * saves every run the compile; it is used only when compiled from this very schema, and reports a
 * bad config exactly as the validator compiled at run time does.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { compiledFrom, configValidator, precompiledValidator } from '../../src/config/schema-validator.js';
import type { BuiltValidator } from '../../src/config/schema-validator.js';

/** The module the build writes, evaluated as Node would load it. */
function built(): BuiltValidator {
  const module = { exports: {} as BuiltValidator };
  new Function('module', 'exports', 'require', precompiledValidator())(module, module.exports, createRequire(import.meta.url));
  return module.exports;
}

const BAD = {
  version: 2,
  databases: { desktop: { url: 3 } },
  forward: 'sideways',
  tables: [{ nme: 'job', direction: 'both ways', primary_key: 'job_id', lookback: 5 }],
};

describe('the config validator compiled ahead by the build', () => {
  it('is used when the build compiled it from this schema, with this ajv and these options', () => {
    const fromBuild = built();
    expect(fromBuild.compiledFrom).toBe(compiledFrom());
    expect(configValidator(fromBuild)).toBe(fromBuild);
  });

  it('is not used when compiled from another schema, ajv or options: the schema is compiled instead', () => {
    const stale = Object.assign(() => true, { compiledFrom: 'another schema' }) as unknown as BuiltValidator;
    const validate = configValidator(stale);
    expect(validate).not.toBe(stale);
    expect(validate(BAD)).toBe(false);
  });

  it('reports a bad config with the same errors as the validator compiled at run time (keys, paths, parent schemas)', () => {
    const ahead = configValidator(built());
    const now = configValidator(undefined);
    expect(ahead(BAD)).toBe(false);
    expect(now(BAD)).toBe(false);
    expect(ahead.errors?.length).toBeGreaterThan(3);
    expect(ahead.errors).toEqual(now.errors);
  });
});
