import { chmodSync, existsSync, mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedServer } from '../../src/embedded/embedded-server.js';
import { leaveNothingBehind } from '../../src/embedded/leave-nothing-behind.js';
import { BisyncError, ExitCode } from '../../src/errors.js';

/** Prefix of the run's own temp directory (`bisync-test-run-<pid>-…`), gone when the run ends. */
export const RUN_TMP_PREFIX = 'bisync-test-run-';

/**
 * Everything the tests put in the temp directory (config files, outputs, embedded servers) goes
 * into one directory of this run, via TMPDIR, which the test workers inherit; it is removed when the
 * run ends, also on Ctrl-C. 0755 so that, as root, the "postgres" user can reach the servers' own
 * (0700) directories inside it.
 */
function useRunTmpdir(): () => Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `${RUN_TMP_PREFIX}${process.pid}-`));
  chmodSync(dir, 0o755);
  const guard = leaveNothingBehind(dir);
  process.env.TMPDIR = dir;
  return async () => {
    await rm(dir, { recursive: true, force: true, maxRetries: 5 });
    guard.release();
  };
}

/**
 * Starts one PostgreSQL server for the whole test run; each test file then creates its own fresh
 * databases on it (see `fresh-databases.ts`).
 *
 * Where the server comes from, in order: BISYNC_TEST_DESKTOP_URL / BISYNC_TEST_CLOUD_URL; a
 * testcontainers PostgreSQL when a Docker engine is reachable; otherwise embedded PostgreSQL.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const removeRunTmp = useRunTmpdir();
  const server = await startServer(project);
  return async () => {
    await server.stop();
    await removeRunTmp();
  };
}

async function startServer(project: TestProject): Promise<{ stop(): Promise<void> }> {
  const desktopEnv = process.env.BISYNC_TEST_DESKTOP_URL;
  const cloudEnv = process.env.BISYNC_TEST_CLOUD_URL;
  if (desktopEnv !== undefined && desktopEnv !== '' && cloudEnv !== undefined && cloudEnv !== '') {
    project.provide('desktopAdminUrl', desktopEnv);
    project.provide('cloudAdminUrl', cloudEnv);
    project.provide('serverKind', 'env');
    return { stop: async () => undefined };
  }

  if (dockerReachable()) {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const image = process.env.BISYNC_TEST_PG_IMAGE ?? 'postgres:17-alpine';
    const container = await new PostgreSqlContainer(image).start();
    const url = container.getConnectionUri();
    project.provide('desktopAdminUrl', url);
    project.provide('cloudAdminUrl', url);
    project.provide('serverKind', `testcontainers ${image}`);
    return {
      stop: async () => {
        await container.stop();
      },
    };
  }

  const server = await startEmbeddedServer({ fast: true }).catch((error: unknown) => {
    // As `bisync demo` says it: one line and a hint, exit 2, rather than a stack trace from vitest.
    if (!(error instanceof BisyncError)) throw error;
    process.stderr.write(`error: ${error.message}${error.hint === undefined ? '' : `\n  hint: ${error.hint}`}\n`);
    process.exit(ExitCode.usage);
  });
  project.provide('desktopAdminUrl', server.url('postgres'));
  project.provide('cloudAdminUrl', server.url('postgres'));
  project.provide('serverKind', 'embedded');
  return server;
}

function dockerReachable(): boolean {
  if (process.env.BISYNC_TEST_NO_DOCKER === '1') return false;
  const host = process.env.DOCKER_HOST;
  if (host !== undefined && host !== '') return true;
  return existsSync('/var/run/docker.sock');
}

declare module 'vitest' {
  export interface ProvidedContext {
    desktopAdminUrl: string;
    cloudAdminUrl: string;
    serverKind: string;
  }
}
