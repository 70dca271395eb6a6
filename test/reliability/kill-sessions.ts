import { query } from '../harness/bisync.js';

const databaseOf = (url: string): string => decodeURIComponent(new URL(url).pathname.slice(1));

/** bisync's server sessions (application_name 'bisync') on the database behind `url`. */
export async function bisyncSessions(url: string): Promise<{ pid: number; state: string | null; query: string }[]> {
  return await query(
    url,
    `SELECT pid, state, query FROM pg_stat_activity
      WHERE datname = $1 AND application_name = 'bisync' AND pid <> pg_backend_pid()`,
    [databaseOf(url)],
  );
}

/**
 * Wait until no bisync session is left on the database behind `url`.
 *
 * A killed client's server session ends when the server next touches the socket: at once when it
 * was waiting for the client, after the statement when it was executing one. SPEC §3 promises no
 * lock "once its connection is gone", so tests wait for exactly that — polling, bounded — and fail
 * naming the sessions if one is still there.
 */
export async function waitForNoBisyncSessions(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await bisyncSessions(url);
    if (left.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`bisync sessions still open on ${databaseOf(url)} after ${timeoutMs} ms: ${JSON.stringify(left)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Terminate bisync's backend(s) on the database behind `url`, as an operator or a network fault would. */
export async function killBisyncBackends(url: string): Promise<number> {
  const killed = await query<{ n: number }>(
    url,
    `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n
       FROM pg_stat_activity WHERE datname = $1 AND application_name = 'bisync' AND pid <> pg_backend_pid()`,
    [databaseOf(url)],
  );
  return killed[0]?.n ?? 0;
}
