import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_PATH, configPath, loadConfig } from '../../src/config/load-config.js';
import { BisyncError, ConfigError, ExitCode } from '../../src/errors.js';
import { ENV, SPEC_EXAMPLE, SPEC_EXAMPLE_PATH } from './helpers.js';

describe('configPath', () => {
  it('--config wins over BISYNC_CONFIG', () => {
    expect(configPath('from-flag.yaml', { BISYNC_CONFIG: 'from-env.yaml' })).toBe('from-flag.yaml');
  });

  it('BISYNC_CONFIG is used when there is no --config', () => {
    expect(configPath(undefined, { BISYNC_CONFIG: 'conf/from-env.yaml' })).toBe('conf/from-env.yaml');
  });

  it('./sync.config.yaml is the default', () => {
    expect(configPath(undefined, {})).toBe('./sync.config.yaml');
    expect(DEFAULT_CONFIG_PATH).toBe('./sync.config.yaml');
  });

  it('an empty BISYNC_CONFIG counts as unset', () => {
    expect(configPath(undefined, { BISYNC_CONFIG: '' })).toBe('./sync.config.yaml');
  });

  it('the path is kept as given, not resolved', () => {
    expect(configPath('../other/./sync.yaml', {})).toBe('../other/./sync.yaml');
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bisync-config-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a missing file is exit 2 with the path as given and a hint', async () => {
    const missing = join(dir, 'nope', 'sync.config.yaml');
    const err: unknown = await loadConfig(missing, ENV).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BisyncError);
    const e = err as BisyncError;
    expect(e.exitCode).toBe(ExitCode.usage);
    expect(e.exitCode).toBe(2);
    expect(e.code).toBe('CONFIG_UNREADABLE');
    expect(e.message).toBe(`${missing}: no such file`);
    expect(e.hint).toMatch(/--config PATH or set BISYNC_CONFIG/);
    expect(e.hint).toMatch(/bisync init/);
  });

  it('a path that cannot be read as a file (a directory) is exit 2', async () => {
    const err: unknown = await loadConfig(dir, ENV).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BisyncError);
    expect((err as BisyncError).exitCode).toBe(2);
    expect((err as BisyncError).message).toBe(`${dir}: is not a regular file`);
  });

  it('problems name the file as the user gave it (relative stays relative)', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, SPEC_EXAMPLE.replace('deletes: keep', 'deletes: never'));
    const given = relative(process.cwd(), file);
    const err: unknown = await loadConfig(given, ENV).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems.map((p) => [p.file, p.path])).toEqual([[given, 'tables[3].deletes']]);
    expect((err as ConfigError).message).toContain(`${given}:${problems[0]?.line}:${problems[0]?.column}: tables[3].deletes:`);
  });

  it('reads the environment it is given, not process.env', async () => {
    const err: unknown = await loadConfig(SPEC_EXAMPLE_PATH, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems.map((p) => p.message)).toEqual([
      'environment variable DESKTOP_DATABASE_URL is not set',
      'environment variable CLOUD_DATABASE_URL is not set',
    ]);
  });
});
