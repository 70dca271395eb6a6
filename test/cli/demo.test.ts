import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/bisync.js', import.meta.url));

/** Data directories the demo process with this pid left behind (embedded-server names them bisync-pg-<pid>-…). */
const dataDirsOf = (pid: number | undefined): string[] => readdirSync(tmpdir()).filter((d) => d.startsWith(`bisync-pg-${pid}-`));

const listening = async (port: number): Promise<boolean> =>
  await new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

/** Run `bisync demo`; with `interruptWhen`, send SIGINT as soon as stdout contains that text. */
async function runDemo(interruptWhen?: string, extra: readonly string[] = []): Promise<{ code: number | null; stdout: string; stderr: string; pid: number | undefined }> {
  const child = spawn(process.execPath, [BIN, 'demo', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (interruptWhen !== undefined && stdout.includes(interruptWhen)) child.kill('SIGINT');
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  return { code, stdout, stderr, pid: child.pid };
}

const portsIn = (text: string): number[] => [...text.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));

describe('bisync demo', () => {
  it('runs end to end: the mobile row reaches the desktop and survives on the cloud, the desktop edit reaches the cloud, and everything is removed', async () => {
    const result = await runDemo();
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/the mobile job reached the desktop:\s+yes/);
    expect(result.stdout).toMatch(/the mobile job survived on the cloud, still 'M':\s+yes/);
    expect(result.stdout).toMatch(/the desktop edit \(job 1 Completed\) reached the cloud: yes/);
    expect(result.stdout).toMatch(/the phone edit of an office job \(job 2 Completed\) reached the desktop: yes/);
    expect(result.stdout).toMatch(/job 3, edited on both sides, was parked, not overwritten: yes/);
    expect(result.stdout).toMatch(/bisync resolve --keep desktop put the office note on both sides: yes/);
    expect(result.stdout).toMatch(/Demo finished: every row reached the other side and nothing was lost/);
    const ports = portsIn(result.stdout);
    expect(ports).toHaveLength(2);
    for (const port of ports) expect(await listening(port)).toBe(false);
    expect(dataDirsOf(result.pid)).toEqual([]);
  }, 120_000);

  it('Ctrl-C stops both servers and removes their data', async () => {
    const result = await runDemo('2. Loaded');
    expect(result.code).toBe(130);
    const ports = portsIn(result.stdout);
    expect(ports).toHaveLength(2);
    for (const port of ports) expect(await listening(port)).toBe(false);
    expect(dataDirsOf(result.pid)).toEqual([]);
  }, 120_000);

  it('demo --json prints one JSON document: ok, what it checked, and the narrative', async () => {
    const result = await runDemo(undefined, ['--json', '--scale', '0.01']);
    expect(result.code).toBe(0);
    const doc = JSON.parse(result.stdout) as { ok: boolean; mobileRowReachedDesktop: boolean; secondRunExitCode: number; narrative: string[] };
    expect(doc).toMatchObject({ ok: true, mobileRowReachedDesktop: true, secondRunExitCode: 0 });
    expect(doc.narrative.length).toBeGreaterThan(3);
    expect(dataDirsOf(result.pid)).toEqual([]);
  });
});
