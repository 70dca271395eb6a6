import { execFile } from 'node:child_process';
import { BisyncError, ExitCode } from '../errors.js';

/** The unprivileged account an embedded server runs as when bisync runs as root. */
export interface RunAs {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** PostgreSQL refuses to run as root; this is the account it runs as instead (created if missing). */
export const SERVER_USER = 'postgres';

let found: Promise<RunAs> | undefined;

/**
 * The `postgres` account, created as a system account without a home when this machine has none
 * (a fresh container). One lookup per process: the demo starts two servers at once.
 */
export async function serverUser(): Promise<RunAs> {
  found ??= findOrCreate().catch((error: unknown) => {
    found = undefined;
    throw error;
  });
  return await found;
}

async function findOrCreate(): Promise<RunAs> {
  const existing = await lookup(SERVER_USER);
  if (existing !== undefined) return existing;
  const groupExists = (await run('getent', ['group', SERVER_USER]).catch(() => undefined)) !== undefined;
  const attempts: Array<[string, string[]]> = [
    ['useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', ...(groupExists ? ['--gid', SERVER_USER] : ['--user-group']), SERVER_USER]],
    ['adduser', ['-S', '-D', '-H', SERVER_USER]], // busybox (Alpine)
  ];
  const failures: string[] = [];
  for (const [command, args] of attempts) {
    try {
      await run(command, args);
      break;
    } catch (error) {
      failures.push(`${command}: ${firstLine(error)}`);
    }
  }
  // Another process may have created it meanwhile; either way, it exists now or we say why not.
  const created = await lookup(SERVER_USER);
  if (created !== undefined) return created;
  throw new BisyncError(
    'EMBEDDED_NO_USER',
    `cannot start the embedded PostgreSQL server as root: PostgreSQL must run as an unprivileged user "${SERVER_USER}", which does not exist and could not be created (${failures.join('; ')})`,
    { exitCode: ExitCode.usage, hint: `create it (useradd --system --user-group ${SERVER_USER}) or run bisync as a normal user` },
  );
}

async function lookup(name: string): Promise<RunAs | undefined> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { name, uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) };
  } catch {
    return undefined;
  }
}

async function run(command: string, args: readonly string[]): Promise<string> {
  return await new Promise((resolve, reject) => {
    execFile(command, args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error === null) resolve(stdout.trim());
      else reject(new Error(stderr.trim() === '' ? error.message : stderr.trim(), { cause: error }));
    });
  });
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}
