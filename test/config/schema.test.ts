import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { SPEC_EXAMPLE } from './helpers.js';

const SCHEMA_PATH = fileURLToPath(new URL('../../schema/sync.config.schema.json', import.meta.url));

describe('schema/sync.config.schema.json', () => {
  const text = readFileSync(SCHEMA_PATH, 'utf8');
  const schema = JSON.parse(text) as Record<string, unknown>;

  it('is a valid draft-07 JSON Schema', () => {
    const ajv = new Ajv({ strict: true, allowUnionTypes: true, strictTypes: false });
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(ajv.validateSchema(schema), JSON.stringify(ajv.errors)).toBe(true);
  });

  it('compiles with ajv in strict mode (no unknown keywords, formats or ignored constructs)', () => {
    const ajv = new Ajv({ strict: true, allowUnionTypes: true, strictTypes: false });
    expect(() => ajv.compile(schema)).not.toThrow();
  });

  it('accepts the SPEC §1 example as written (before interpolation)', () => {
    const ajv = new Ajv({ strict: true, allowUnionTypes: true, strictTypes: false, allErrors: true });
    const validate = ajv.compile(schema);
    const valid = validate(parse(SPEC_EXAMPLE));
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('rejects what the contract rejects: an unknown key, a third database, a bad enum, an empty primary_key', () => {
    const ajv = new Ajv({ strict: true, allowUnionTypes: true, strictTypes: false, allErrors: true });
    const validate = ajv.compile(schema);
    const example = parse(SPEC_EXAMPLE) as Record<string, unknown>;
    expect(validate({ ...example, colour: 'blue' })).toBe(false);
    expect(validate({ ...example, databases: { ...(example.databases as object), third: { url: 'postgres://x/y' } } })).toBe(false);
    const tables = example.tables as Record<string, unknown>[];
    expect(validate({ ...example, tables: [{ ...tables[0], direction: 'sideways' }] })).toBe(false);
    expect(validate({ ...example, tables: [{ ...tables[0], primary_key: [] }] })).toBe(false);
  });
});
