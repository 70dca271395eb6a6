import { existsSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { startEmbeddedServer } from '../../src/embedded/embedded-server.js';

/**
 * Starts one PostgreSQL server for the whole test run; each test file then creates its own fresh
 * databases on it (see `fresh-databases.ts`).
 *
 * Where the server comes from, in order: BISYNC_TEST_DESKTOP_URL / BISYNC_TEST_CLOUD_URL; a
 * testcontainers PostgreSQL when a Docker engine is reachable; otherwise embedded PostgreSQL.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const desktopEnv = process.env.BISYNC_TEST_DESKTOP_URL;
  const cloudEnv = process.env.BISYNC_TEST_CLOUD_URL;
  if (desktopEnv !== undefined && desktopEnv !== '' && cloudEnv !== undefined && cloudEnv !== '') {
    project.provide('desktopAdminUrl', desktopEnv);
    project.provide('cloudAdminUrl', cloudEnv);
    project.provide('serverKind', 'env');
    return async () => undefined;
  }

  if (dockerReachable()) {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const image = process.env.BISYNC_TEST_PG_IMAGE ?? 'postgres:17-alpine';
    const container = await new PostgreSqlContainer(image).start();
    const url = container.getConnectionUri();
    project.provide('desktopAdminUrl', url);
    project.provide('cloudAdminUrl', url);
    project.provide('serverKind', `testcontainers ${image}`);
    return async () => {
      await container.stop();
    };
  }

  const server = await startEmbeddedServer({ fast: true });
  project.provide('desktopAdminUrl', server.url('postgres'));
  project.provide('cloudAdminUrl', server.url('postgres'));
  project.provide('serverKind', 'embedded');
  return async () => {
    await server.stop();
  };
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
