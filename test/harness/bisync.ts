import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { applyCommand } from '../../src/commands/apply.js';
import type { ApplyOptions, ApplyReport } from '../../src/commands/apply.js';
import { loadConfig } from '../../src/config/load-config.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { createSampleSchema, loadSampleData } from '../fixtures/sample-dataset.js';
import type { TestDatabases } from './fresh-databases.js';
import { withClient } from './fresh-databases.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const EXAMPLE_CONFIG = join(ROOT, 'sync.config.yaml');

/** Environment that points the example config (and any `${DESKTOP_DATABASE_URL}` config) at the test databases. */
export function envFor(dbs: TestDatabases): NodeJS.ProcessEnv {
  return { ...process.env, DESKTOP_DATABASE_URL: dbs.desktopUrl, CLOUD_DATABASE_URL: dbs.cloudUrl };
}

/** The start of a config for the test databases (URLs from the environment, state schema `bisync`): add `tables:`. */
export function configHead(forward = '{ from: desktop, to: cloud }'): string {
  return ['version: 1', 'databases:', '  desktop:', '    url: ${DESKTOP_DATABASE_URL}', '  cloud:', '    url: ${CLOUD_DATABASE_URL}', `forward: ${forward}`, 'state: { schema: bisync }', ''].join('\n');
}

/** Write a config file into a fresh temp dir; returns its path. */
export function writeConfig(yaml: string, name = 'sync.config.yaml'): string {
  const dir = mkdtempSync(join(tmpdir(), 'bisync-test-'));
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

/** Load a config with the test databases' URLs in the environment. */
export async function testConfig(file: string, dbs: TestDatabases): Promise<ResolvedConfig> {
  return await loadConfig(file, envFor(dbs));
}

const silent = pino({ level: 'silent' });

/** `bisync apply` in-process (same entry the CLI uses), with test hooks available. */
export async function apply(
  config: ResolvedConfig,
  options: Partial<Omit<ApplyOptions, 'logger'>> = {},
): Promise<ApplyReport> {
  return await applyCommand(config, {
    direction: 'both',
    tables: [],
    mode: 'auto',
    dryRun: false,
    allowDeletes: false,
    logger: silent,
    // The probe runs in tests as over a slow link (--probe always), so every test exercises it; the
    // tests of what a running step does pass probe: false, and probe-auto.test.ts tests auto.
    probe: true,
    ...options,
  });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the built CLI (`node bin/bisync.js …`) as a user would. `npm test` builds first. */
export async function runCli(args: readonly string[], env: NodeJS.ProcessEnv = process.env, cwd = ROOT): Promise<CliResult> {
  return await new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin/bisync.js'), ...args], { env, cwd, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Create the sample schema on both sides and load the desktop at `scale`. */
export async function loadSample(dbs: TestDatabases, scale: number): Promise<void> {
  await withClient(dbs.desktopUrl, async (c) => {
    await createSampleSchema(c, 'desktop');
    await loadSampleData(c, 'desktop', { scale });
  });
  await withClient(dbs.cloudUrl, async (c) => {
    await createSampleSchema(c, 'cloud');
  });
}

/** Run one SQL statement (with `$n` parameters) and return its rows. */
export async function query<R = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  return await withClient(url, async (c) => (await c.query(sql, params)).rows as R[]);
}
