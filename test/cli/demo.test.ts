import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/bisync.js';

const dataDirs = (): Set<string> => new Set(readdirSync(tmpdir()).filter((d) => d.startsWith('bisync-pg-')));

const listening = async (port: number): Promise<boolean> =>
  await new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

describe('bisync demo', () => {
  it('runs end to end: the mobile row reaches the desktop and survives on the cloud, the desktop edit reaches the cloud, and everything is removed', async () => {
    const before = dataDirs();
    const result = await runCli(['demo']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/the mobile job reached the desktop:\s+yes/);
    expect(result.stdout).toMatch(/the mobile job survived on the cloud, still 'M':\s+yes/);
    expect(result.stdout).toMatch(/the desktop edit \(job 1 Completed\) reached the cloud: yes/);
    expect(result.stdout).toMatch(/Demo finished: every row reached the other side and nothing was lost/);
    const ports = [...result.stdout.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    expect(ports).toHaveLength(2);
    for (const port of ports) expect(await listening(port)).toBe(false);
    const left = [...dataDirs()].filter((d) => !before.has(d));
    expect(left).toEqual([]);
  }, 120_000);

  it('Ctrl-C stops both servers and removes their data', async () => {
    const before = dataDirs();
    const bin = fileURLToPath(new URL('../../bin/bisync.js', import.meta.url));
    const child = spawn(process.execPath, [join(bin), 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const loaded = new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('2. Loaded')) resolve();
      });
    });
    await loaded;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    const ports = [...out.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    expect(ports).toHaveLength(2);
    for (const port of ports) expect(await listening(port)).toBe(false);
    expect([...dataDirs()].filter((d) => !before.has(d))).toEqual([]);
  }, 120_000);
});
